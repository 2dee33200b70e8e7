"""The long-context benchmarks' parts: seeded generators, the oracle model, and the generic tasks end to end."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.longcontext.baselines import (
    read_whole_context_answer,
    sniah_regex,
    whole_context,
)
from benchmarks.longcontext.generators import (
    generate_oolong,
    generate_pairs,
    generate_sniah,
    load,
    target_bytes,
)
from benchmarks.longcontext.oracle import Oracle, estimate_tokens
from benchmarks.longcontext.pool import TREC_LABELS, instance_labels, instance_pool
from benchmarks.longcontext.questions import (
    DATE_FORMAT,
    answer_oolong,
    oolong_text,
    pair_f1,
    pairs_question,
    parse_oolong_question,
    parse_pairs_question,
    score_oolong,
)
from rlm import GuardConfig, run_task
from rlm.loopback import Fault, LoopbackServer, Reply
from rlm.subcalls import SYSTEM_PROMPT
from rlm.tasks.generic import (
    _tile,
    count_by_label,
    find_answer,
    find_pairs,
    parse_condition,
)

CLASSIFY = "Each record is a question someone asked. Label it by the kind of answer its question seeks."
FIELDS = {"user": r"User: (\d+)", "date": r"Date: (.+?) \|\|"}


@pytest.fixture
def oracle(llm: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """The loopback server answering as the error-free oracle; token counts are the UTF-8 byte bound."""
    monkeypatch.setenv("RLM_TOKEN_COUNTING", "bytes")
    llm.responder = Oracle(instance_labels())
    return llm


def config(**overrides: Any) -> GuardConfig:
    return GuardConfig(**{"max_cost": 5.0, "max_runtime_seconds": 60, "max_workers": 8, "model": "gpt-5-mini",
                          "price_input_per_mtok": 0.25, "price_output_per_mtok": 2.0, **overrides})


def request(instruction: str, excerpt: str, **body: Any) -> dict[str, Any]:
    """A chat body shaped exactly as rlm.subcalls sends it."""
    user = f"{instruction}\n\nExcerpt:\n<<<\n{excerpt}\n>>>"
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}], **body}


def labelled_records(result: dict[str, Any]) -> list[tuple[str, dt.date, str | None]]:
    return [(r["fields"]["user"], dt.datetime.strptime(r["fields"]["date"], DATE_FORMAT).date(), r["label"])
            for r in result["records"]]


def oolong_score(gold: dict[str, Any], result: dict[str, Any]) -> float:
    records = labelled_records(result)
    return sum(score_oolong(q, answer_oolong(q, records, TREC_LABELS)) for q in gold["questions"]) / 10


# -- generators ------------------------------------------------------------------------

GENERATE = [generate_sniah, generate_oolong, generate_pairs]


@pytest.mark.parametrize("generate", GENERATE)
def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(generate: Any, tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 12, 7)
    b = generate(tmp_path / "b", 12, 7)
    c = generate(tmp_path / "c", 12, 8)
    assert a.path.read_bytes() == b.path.read_bytes() and a.gold == b.gold
    assert a.manifest["sha256"] == b.manifest["sha256"] != c.manifest["sha256"]


@pytest.mark.parametrize("generate", GENERATE)
def test_the_manifest_records_seed_size_and_sha256_next_to_the_input(generate: Any, tmp_path: Path) -> None:
    gen = generate(tmp_path, 12, 3)
    manifest = json.loads(gen.manifest_path.read_text())
    assert gen.manifest_path.parent == gen.path.parent == gen.gold_path.parent
    assert manifest["seed"] == 3 and manifest["exp"] == 12
    assert manifest["sha256"] == hashlib.sha256(gen.path.read_bytes()).hexdigest()
    assert manifest["bytes"] == gen.path.stat().st_size and manifest["approx_tokens"] == manifest["bytes"] // 4
    assert target_bytes(12) <= manifest["bytes"] < target_bytes(12) + 2000
    assert load(gen.manifest_path).gold == gen.gold
    gen.gold_path.write_text(gen.gold_path.read_text().replace("1", "2"))
    with pytest.raises(ValueError, match="does not match"):
        load(gen.manifest_path)


@pytest.mark.parametrize("generate", [generate_oolong, generate_pairs])
def test_records_never_show_their_labels_and_the_gold_stays_in_its_own_file(generate: Any, tmp_path: Path) -> None:
    gen = generate(tmp_path, 13, 1)
    text = gen.path.read_text().lower()
    assert not [label for label in TREC_LABELS if label in text]
    assert "label" not in text
    lines = text.splitlines()
    assert all(re.fullmatch(r"date: \w{3} \d{2}, \d{4} \|\| user: \d{5} \|\| instance: .+", line) for line in lines)
    assert gen.gold["records"] == len(lines) and gen.gold["questions"]


def test_sniah_hides_exactly_one_needle_and_the_filler_never_forms_one(tmp_path: Path) -> None:
    gen = generate_sniah(tmp_path, 16, 5)
    data = gen.path.read_bytes()
    start, end = gen.gold["needle_span"]
    assert data[start:end].decode() == gen.gold["needle"]
    text = data.decode()
    assert text.count("special") == text.count("magic") == 1
    assert len(re.findall(r"One of the special magic \w+ for \S+ is: ", text)) == 1
    assert text.count(gen.gold["answer"]) == 1
    assert len(data[:start]) > len(data[:start].decode())  # multi-byte text before the needle: bytes != chars


def test_the_instance_pool_has_a_few_hundred_distinct_questions_per_label() -> None:
    pool = instance_pool()
    assert list(pool) == TREC_LABELS
    assert all(200 <= len(qs) <= 400 for qs in pool.values())
    assert len(instance_labels()) == sum(len(qs) for qs in pool.values())  # no question under two labels


# -- questions and scoring -----------------------------------------------------------------

def test_questions_read_back_from_their_english(tmp_path: Path) -> None:
    for q in generate_oolong(tmp_path, 13, 2).gold["questions"]:
        parsed = parse_oolong_question(q["text"])
        assert parsed == {k: v for k, v in q.items() if k not in ("text", "answer")}
        assert oolong_text(q) == q["text"]
    for q in generate_pairs(tmp_path, 13, 2).gold["questions"]:
        assert parse_pairs_question(pairs_question(q["condition"])) == q["condition"]


def test_scores_follow_oolong_and_f1() -> None:
    q = {"kind": "count", "label": "entity", "answer": 10}
    assert score_oolong(q, 10) == 1.0 and score_oolong(q, "12") == 0.75**2 and score_oolong(q, "ten") == 0.0
    assert score_oolong({"kind": "most", "answer": "human being"}, "Human being.") == 1.0
    assert pair_f1([["1", "2"], ["1", "3"]], [["2", "1"]]) == pytest.approx(2 / 3)
    assert pair_f1([], []) == 1.0 and pair_f1([["1", "2"]], []) == 0.0


# -- the oracle ------------------------------------------------------------------------

def test_the_oracle_refuses_a_request_above_its_window_with_400() -> None:
    small = Oracle(window_tokens=100)
    reply = small(request("Question: anything?", "x" * 2000))
    assert isinstance(reply, Fault) and reply.status == 400 and reply.code == "context_length_exceeded"
    assert isinstance(small(request("Question: anything?", "x" * 100)), Reply)


def test_a_refusal_reaches_the_task_as_an_error_over_real_http(oracle: LoopbackServer) -> None:
    oracle.responder = Oracle(instance_labels(), window_tokens=1000)
    result = run_task(functools.partial(whole_context, prompts=["Question: what?"]), "filler text. " * 1000,
                      config(max_tokens_per_subcall=1 << 20))
    [answer] = result["result"]["answers"]
    assert "SubcallError" in answer["error"] and "HTTP 400" in answer["error"]
    assert result["budget_summary"]["total_cost_usd"] == 0  # a refusal is not billed


def test_the_oracle_cuts_its_answer_at_the_requests_output_cap() -> None:
    lines = "\n".join(f"[{i}] Date: Jan 01, 2022 || User: 10000 || Instance: {q}"
                      for i, q in enumerate(instance_pool()["entity"][:20], 1))
    body = request(f'Label them.\nLabels: {json.dumps(TREC_LABELS)}', lines)
    full = Oracle(instance_labels())(body)
    cut = Oracle(instance_labels())({**body, "max_completion_tokens": 50, "max_tokens": 5})
    assert isinstance(full, Reply) and isinstance(cut, Reply) and full.completion_tokens is not None
    assert full.completion_tokens > 5 and cut.completion_tokens == 5
    assert len(cut.content.encode()) <= 20 and full.content.startswith(cut.content)


def test_the_oracle_reports_usage_of_about_a_token_per_four_bytes() -> None:
    body = request("Question: What is the special magic number for amber-falcon mentioned in the provided text?",
                   "One of the special magic numbers for amber-falcon is: 1234567.")
    reply = Oracle()(body)
    assert isinstance(reply, Reply)
    size = sum(len(m["content"].encode()) for m in body["messages"])
    assert reply.prompt_tokens == estimate_tokens(body["messages"]) and abs(reply.prompt_tokens - size / 4) < 12
    assert reply.completion_tokens == math.ceil(len(reply.content.encode()) / 4)
    assert json.loads(reply.content) == {"answer": "1234567",
                                         "quote": "One of the special magic numbers for amber-falcon is: 1234567."}


def test_the_oracle_answers_only_from_what_it_is_sent() -> None:
    known = instance_pool()["location"][0]
    excerpt = f"[1] Instance: {known}\n[2] Instance: Who keeps the lighthouse on the moon?"
    reply = Oracle(instance_labels())(request(f"Labels: {json.dumps(TREC_LABELS)}", excerpt))
    assert isinstance(reply, Reply) and json.loads(reply.content) == {"labels": {"1": "location"}}
    question = "Question: What is the special magic word for amber-falcon mentioned in the provided text?"
    assert json.loads(Oracle()(request(question, "nothing here")).content)["answer"] is None  # type: ignore[union-attr]


def test_the_oracles_mistakes_are_seeded_and_repeatable() -> None:
    questions = [q for qs in instance_pool().values() for q in qs[:60]]
    excerpt = "\n".join(f"[{i}] Instance: {q}" for i, q in enumerate(questions, 1))
    body = request(f"Labels: {json.dumps(TREC_LABELS)}", excerpt)
    truth = json.loads(Oracle(instance_labels())(body).content)["labels"]  # type: ignore[union-attr]
    first = json.loads(Oracle(instance_labels(), error_rate=0.3, seed=1)(body).content)["labels"]  # type: ignore[union-attr]
    again = json.loads(Oracle(instance_labels(), error_rate=0.3, seed=1)(body).content)["labels"]  # type: ignore[union-attr]
    other = json.loads(Oracle(instance_labels(), error_rate=0.3, seed=2)(body).content)["labels"]  # type: ignore[union-attr]
    wrong = sum(first[k] != truth[k] for k in truth) / len(truth)
    assert first == again != other and 0.2 < wrong < 0.4
    needle = "One of the special magic numbers for amber-falcon is: 1234567."
    ask = request("Question: What is the special magic number for amber-falcon mentioned in the provided text?", needle)
    bad = json.loads(Oracle(error_rate=1.0)(ask).content)  # type: ignore[union-attr]
    assert bad == {"answer": "1234568", "quote": needle}  # a wrong value; the quote stays the excerpt's own


# -- the generic tasks, end to end -------------------------------------------------------------

def test_find_answer_finds_the_needle_with_its_byte_span_in_a_file(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_sniah(tmp_path, 14, 4)
    result = run_task(functools.partial(find_answer, question=gen.gold["question"]), gen.path, config())
    assert result["status"] == "completed", result["error"]
    found = result["result"]
    assert found["answer"] == gen.gold["answer"] and found["verified"]
    assert found["span"] == gen.gold["needle_span"] and found["quote"] == gen.gold["needle"]
    assert found["candidates_examined"] == len(found["evidence"]) == result["budget_summary"]["total_calls"] >= 1
    assert found["evidence"][0]["window"][0] <= found["span"][0] < found["span"][1] <= found["evidence"][0]["window"][1]


def test_find_answer_on_text_reports_a_character_span(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_sniah(tmp_path, 13, 4)
    text = gen.path.read_text()
    found = run_task(functools.partial(find_answer, question=gen.gold["question"]), text, config())["result"]
    start, end = found["span"]
    assert text[start:end] == gen.gold["needle"] and start != gen.gold["needle_span"][0]  # chars, not bytes


def test_count_by_label_labels_every_record_once_in_bounded_batches(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_oolong(tmp_path, 13, 1)
    task = functools.partial(count_by_label, instruction=CLASSIFY, labels=TREC_LABELS, fields=FIELDS)
    result = run_task(task, gen.path, config())
    assert result["status"] == "completed", result["error"]
    out = result["result"]
    assert out["counts"] == gen.gold["label_counts"] and out["unlabelled"] == [] and not out["truncated"]
    assert out["total_records"] == out["labelled"] == gen.gold["records"]
    assert oolong_score(gen.gold, out) == 1.0
    # Every record went to the model exactly once, in requests that fit the default 4000-token limit.
    sent = [r.body["messages"][1]["content"] for r in oracle.chat_requests]
    assert len(sent) == out["batches"] == result["budget_summary"]["total_calls"]
    assert all(len((SYSTEM_PROMPT + s).encode()) < 4000 for s in sent)
    seen = [line.split("] ", 1)[1] for s in sent for line in s.split("<<<\n", 1)[1].splitlines() if line[:1] == "["]
    assert sorted(seen) == sorted(gen.path.read_text().splitlines())  # requests run in parallel, in any order
    spans = [r["span"] for r in out["records"]]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


def test_count_by_label_asks_again_for_records_the_model_skipped(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_oolong(tmp_path, 12, 1)
    honest = Oracle(instance_labels())
    asked: set[str] = set()

    def forgetful(body: dict[str, Any]) -> Reply | Fault:
        """Leaves out every second record the first time it is asked about it."""
        reply = honest(body)
        assert isinstance(reply, Reply)
        records = dict(re.findall(r"^\[(\d+)\] (.*)$", body["messages"][1]["content"], re.MULTILINE))
        labels = json.loads(reply.content)["labels"]
        kept = {}
        for k, label in labels.items():
            if records[k] in asked or int(k) % 2:
                kept[k] = label
            asked.add(records[k])
        return Reply(json.dumps({"labels": kept}))

    task = functools.partial(count_by_label, instruction=CLASSIFY, labels=TREC_LABELS)
    one_pass = run_task(task, gen.path, config())["result"]["batches"]
    oracle.responder = forgetful
    out = run_task(task, gen.path, config())["result"]
    assert out["counts"] == gen.gold["label_counts"] and out["unlabelled"] == []
    assert one_pass < out["batches"] <= 2 * one_pass


def test_answers_that_do_not_parse_leave_records_unlabelled(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_oolong(tmp_path, 12, 1)
    oracle.responder = lambda body: Reply("I cannot help with that.")
    task = functools.partial(count_by_label, instruction=CLASSIFY, labels=TREC_LABELS, retries=0)
    result = run_task(task, gen.path, config())
    out = result["result"]
    assert result["status"] == "completed" and out["labelled"] == 0
    assert len(out["unlabelled"]) == out["total_records"] == gen.gold["records"]
    assert set(out["counts"].values()) == {0} and out["batches"] == result["budget_summary"]["total_calls"]


def test_find_pairs_forms_every_pair_in_python(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_pairs(tmp_path, 13, 1)
    for q in gen.gold["questions"]:
        task = functools.partial(find_pairs, instruction=CLASSIFY, condition=q["grammar"], labels=TREC_LABELS)
        oracle.reset()
        result = run_task(task, gen.path, config())
        assert result["status"] == "completed", result["error"]
        out = result["result"]
        assert out["pairs"] == q["answer"] and out["count"] == len(q["answer"]) and not out["truncated"]
        assert not any("pair" in r.body["messages"][1]["content"].lower() for r in oracle.chat_requests)
        for a, b in out["pairs"][:20]:
            assert out["users"][a]["records"] and out["users"][b]["records"]
            assert all(end > start for start, end, _label in out["users"][a]["records"])


def test_pair_conditions_are_read_in_python_and_refused_before_any_call(oracle: LoopbackServer) -> None:
    form, preds = parse_condition("one:has:entity&lacks:location;other:at_least:2:human being|location", TREC_LABELS)
    assert form == "one_other" and [len(p) for p in preds] == [2, 1] and preds[1][0].n == 2
    for bad in ("both:has:colour", "either:has:entity", "both:at_least:x:entity", "both:maybe:entity"):
        with pytest.raises(ValueError):
            parse_condition(bad, TREC_LABELS)
    task = functools.partial(find_pairs, instruction=CLASSIFY, condition="both:has:colour", labels=TREC_LABELS)
    result = run_task(task, "Date: Jan 01, 2022 || User: 10000 || Instance: x\n", config())
    assert result["status"] == "error" and "unknown labels" in result["error"] and not oracle.chat_requests


@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=300), st.integers(min_value=1, max_value=4000),
       st.integers(min_value=1, max_value=60))
def test_batches_tile_the_records_with_no_gap_and_no_overlap(sizes: list[int], budget: int, cap: int) -> None:
    ranges = _tile(sizes, budget, cap)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(sizes)))
    for a, b in ranges:
        assert 0 < b - a <= cap
        assert b - a == 1 or sum(sizes[a:b]) + (b - a) <= budget


def test_oracle_mistakes_lower_the_score_and_the_tasks_still_return_evidence(
        oracle: LoopbackServer, tmp_path: Path) -> None:
    oracle.responder = Oracle(instance_labels(), error_rate=0.3, seed=1)
    gen = generate_oolong(tmp_path, 13, 1)
    task = functools.partial(count_by_label, instruction=CLASSIFY, labels=TREC_LABELS, fields=FIELDS)
    out = run_task(task, gen.path, config())["result"]
    assert out["counts"] != gen.gold["label_counts"] and oolong_score(gen.gold, out) < 0.9
    assert out["labelled"] == out["total_records"] and all(r["span"] and r["label"] for r in out["records"])

    oracle.responder = Oracle(instance_labels(), error_rate=1.0, seed=1)
    niah = generate_sniah(tmp_path, 13, 4)
    found = run_task(functools.partial(find_answer, question=niah.gold["question"]), niah.path, config())["result"]
    assert found["answer"] != niah.gold["answer"] and not found["verified"]
    assert found["span"] == niah.gold["needle_span"]  # the quote it gave is still located and reported
    assert found["evidence"] and found["evidence"][0]["quote_found"]


def test_the_baselines_read_answers_as_a_base_model_would_give_them(oracle: LoopbackServer, tmp_path: Path) -> None:
    gen = generate_sniah(tmp_path, 13, 4)
    found = run_task(functools.partial(sniah_regex, question=gen.gold["question"]), gen.path, config())["result"]
    assert found == {"answer": gen.gold["answer"], "span": gen.gold["needle_span"]}
    cut = '{"answer": [["10001", "10002"], ["10001", "10003"], ["100'  # an answer cut at the output cap
    assert read_whole_context_answer("pairs", cut) == [["10001", "10002"], ["10001", "10003"]]
    assert read_whole_context_answer("oolong", '{"answer": 12}') == 12
