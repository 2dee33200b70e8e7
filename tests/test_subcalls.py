"""The four subcalls: what they send, what they read back, and what they record."""

from __future__ import annotations

import gc
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from rlm import (
    ConfigError,
    GuardConfig,
    context_head,
    context_search,
    context_slice,
    init_guards,
    parallel_map,
    run_task,
    semantic_subcall,
    semantic_subcall_bool,
    semantic_subcall_choice,
    semantic_subcall_json,
)
from rlm.guards import current_run
from rlm.loopback import LoopbackServer, Reply
from rlm.subcalls import parse_bool, parse_choice, parse_json

CHOICES = ["critical", "warning", "info"]


def run(fn: Any, context: Any = "ctx", **config: Any) -> dict[str, Any]:
    return run_task(fn, context, GuardConfig(**config))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes.", True), ("yes", True), ("YES!", True), ("TRUE", True), ("true", True), ("**Yes**", True),
        ("Y", True), ("Correct.", True), ("yes, it does", True), ("Yeah", True),
        ("No.", False), ("no, because the log is clean", False), ("FALSE", False), ("n", False),
        ("Nope", False), ("The answer is no.", False), ("I'd say yes", True), ('"no"', False),
        ("maybe", None), ("", None), ("It depends", None), ("yes or no? hard to say: no and yes", True),
        ("I cannot tell; true and false both", None),
    ],
)
def test_parse_bool_table(answer: str, expected: bool | None) -> None:
    assert parse_bool(answer) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("critical", "critical"), ("Critical.", "critical"), ("'WARNING'", "warning"), ('"info"', "info"),
        ("**warning**", "warning"), ("Severity: critical", "critical"), ("warning - the disk is filling", "warning"),
        ("not critical, it's a warning", "warning"), ("It is not critical but a warning", "warning"),
        ("warning (not critical)", "warning"), ("This is info, not a warning", "info"),
        ("critical or warning", None), ("critical, warning, info", None), ("none of these", None),
        ("neither critical nor warning", None), ("", None), ("criticality unknown", None),
        ("I'd rate it critical.", "critical"), ("Not sure. critical", "critical"),
    ],
)
def test_parse_choice_table(answer: str, expected: str | None) -> None:
    assert parse_choice(answer, CHOICES) == expected


def test_parse_choice_prefers_the_longer_overlapping_choice() -> None:
    assert parse_choice("very high", ["high", "very high", "low"]) == "very high"
    assert parse_choice("HIGH priority", ["high", "very high", "low"]) == "high"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ('Sure! Here it is: {"sentiment": "pos"} Hope that helps.', {"sentiment": "pos"}),
        ("```\n[1, 2, 3]\n```", [1, 2, 3]),
        ("The list: [\"x\"] done", ["x"]),
        ("42", 42),
    ],
)
def test_parse_json_accepts_fences_and_prose(answer: str, expected: Any) -> None:
    assert parse_json(answer) == (True, expected)


@pytest.mark.parametrize("answer", ["no json here", "{broken: json", "", "```json\n{oops\n```"])
def test_parse_json_rejects_garbage(answer: str) -> None:
    assert parse_json(answer) == (False, None)


def test_text_subcall_sends_one_instruction_and_one_chunk(llm: LoopbackServer) -> None:
    llm.script("a summary")
    result = run(lambda c: semantic_subcall("Summarize the main point.", context_slice(c, 0, 11)), "hello world and more")
    assert result["result"] == "a summary"
    body = llm.chat_requests[0].body
    assert len(body["messages"]) == 2 and body["messages"][0]["role"] == "system"
    user = body["messages"][1]["content"]
    assert "Summarize the main point." in user and "hello world" in user and "and more" not in user
    assert body["temperature"] == 0 and body["model"] == "gpt-4o-mini"


def test_json_subcall_uses_json_mode_and_parses(llm: LoopbackServer) -> None:
    llm.script('```json\n{"sentiment": "pos", "confidence": 0.9}\n```')
    result = run(lambda c: semantic_subcall_json('Extract {"sentiment": ...}', "I love it"))
    assert result["result"] == {"sentiment": "pos", "confidence": 0.9}
    assert llm.chat_requests[0].body["response_format"] == {"type": "json_object"}


def test_json_mode_refusal_falls_back_cleanly(llm: LoopbackServer) -> None:
    llm.refuse_json_mode = True
    llm.script('{"x": 1}', '{"x": 2}')

    def task(c: Any) -> Any:
        return [semantic_subcall_json("x", "chunk"), semantic_subcall_json("x", "chunk")]

    result = run(task)
    assert result["result"] == [{"x": 1}, {"x": 2}]
    sent = [("response_format" in r.body) for r in llm.chat_requests]
    assert sent == [True, False, False]  # refused once, then never asked again
    assert result["budget_summary"]["total_cost_usd"] > 0


def test_json_default_on_garbage_and_error_without_default(llm: LoopbackServer) -> None:
    llm.script("I don't know", "still not json")
    default = {"sentiment": "neutral", "confidence": 0.0}
    assert run(lambda c: semantic_subcall_json("x", "chunk", default=default))["result"] == default
    result = run(lambda c: semantic_subcall_json("x", "chunk"))
    assert result["status"] == "error" and "SubcallParseError" in result["error"] and "default=" in result["error"]


def test_every_answer_that_falls_back_to_its_default_is_counted(llm: LoopbackServer) -> None:
    llm.script("{\"a\": 1}", "nonsense", "yes", "perhaps", "info", "all of them")
    result = run(lambda c: [semantic_subcall_json("x", "c", default={}), semantic_subcall_json("x", "c", default={}),
                            semantic_subcall_bool("x", "c"), semantic_subcall_bool("x", "c"),
                            semantic_subcall_choice("x", "c", CHOICES, default="info"),
                            semantic_subcall_choice("x", "c", CHOICES, default="info")])
    assert result["result"] == [{"a": 1}, {}, True, False, "info", "info"]
    assert result["budget_summary"]["answers_defaulted"] == 3


def test_bool_subcall(llm: LoopbackServer) -> None:
    llm.script("Yes, it does.", "no.", "perhaps")
    result = run(lambda c: [semantic_subcall_bool("Error?", "x"), semantic_subcall_bool("Error?", "x"),
                            semantic_subcall_bool("Error?", "x", default=True)])
    assert result["result"] == [True, False, True]


def test_choice_subcall_returns_exactly_one_choice(llm: LoopbackServer) -> None:
    llm.script("Not critical - it's a Warning.", "critical or info", "critical or info")
    assert run(lambda c: semantic_subcall_choice("Severity?", "x", choices=CHOICES))["result"] == "warning"
    assert run(lambda c: semantic_subcall_choice("Severity?", "x", CHOICES, default="info"))["result"] == "info"
    result = run(lambda c: semantic_subcall_choice("Severity?", "x", CHOICES))
    assert result["status"] == "error" and "SubcallParseError" in result["error"]
    assert "critical, warning, info" in llm.chat_requests[0].body["messages"][1]["content"]


@pytest.mark.parametrize(
    ("choices", "default", "message"),
    [([], None, "non-empty"), ("abc", None, "non-empty list"), (["a", "A"], None, "differ only"),
     (["a", "b"], "c", "must be one of")],
)
def test_choice_arguments_are_validated(choices: Any, default: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        semantic_subcall_choice("x", "y", choices, default)


def test_passing_the_whole_context_is_refused(llm: LoopbackServer) -> None:
    result = run(lambda c: semantic_subcall("Analyze", c), "secret document")
    assert result["status"] == "error" and "ContextAccessError" in result["error"] and "rule 1" in result["error"]
    assert llm.chat_requests == []


def test_each_subcall_records_span_hash_tokens_cost_and_answer(llm: LoopbackServer, tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("intro\nERROR disk full\noutro\n")
    llm.script(Reply("disk", prompt_tokens=50, completion_tokens=2))
    records: list[Any] = []

    def task(c: Any) -> Any:
        m = context_search(c, "ERROR")[0]
        chunk = context_slice(c, m.start, m.end + 10)
        semantic_subcall("What failed?", chunk)
        records.extend(current_run().records)  # type: ignore[union-attr]
        return chunk.span

    result = run(task, path)
    (rec,) = records
    assert (rec.chunk_start, rec.chunk_end) == tuple(result["result"])
    assert rec.chunk_sha256 == hashlib.sha256(b"ERROR disk full").hexdigest()
    assert (rec.input_tokens, rec.output_tokens, rec.answer, rec.model) == (50, 2, "disk", "gpt-4o-mini")
    assert rec.cost_usd > 0 and rec.reserved_usd >= rec.cost_usd and rec.latency_seconds > 0
    assert rec.counted_tokens >= 50


def test_a_subcall_outside_any_run_leaves_no_run_behind(llm: LoopbackServer) -> None:
    """A script's bare subcall gets fresh default guards for that call only; the next run_task is unaffected."""
    assert semantic_subcall("Summarize.", "a paragraph") == "ok"
    assert current_run() is None
    assert parallel_map(lambda c: semantic_subcall("Summarize.", c), ["a", "b"]) == ["ok", "ok"]
    assert current_run() is None
    assert run_task(lambda ctx: semantic_subcall("q", context_head(ctx, 5)), "text")["status"] == "completed"


def test_init_guards_puts_a_script_under_one_budget_for_the_block(llm: LoopbackServer) -> None:
    with init_guards(GuardConfig(max_cost=0.2)) as run_:
        assert current_run() is run_
        semantic_subcall("Summarize.", "a paragraph")
        semantic_subcall("Summarize.", "another")
        assert run_.budget_summary()["total_calls"] == 2
        assert run_.budget_summary()["cost_budget_usd"] == 0.2
    assert current_run() is None and run_.closed


def test_init_guards_never_entered_warns_that_it_guarded_nothing() -> None:
    with pytest.warns(RuntimeWarning, match="never entered"):
        init_guards(GuardConfig())
        gc.collect()


def test_garbage_answers_never_swallow_guard_errors(llm: LoopbackServer) -> None:
    result = run(lambda c: semantic_subcall_json("x", "chunk", default={"a": 1}), max_cost=0.000001)
    assert result["status"] == "partial" and "CostLimitError" in result["error"]


def test_answers_are_json_serialisable(llm: LoopbackServer) -> None:
    llm.script('{"k": [1, {"z": null}]}')
    result = run(lambda c: semantic_subcall_json("x", "chunk"))
    assert result["status"] == "completed"
    assert json.loads(json.dumps(result))["result"] == {"k": [1, {"z": None}]}
