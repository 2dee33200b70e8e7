"""The example tasks against ground truth: generated logs and documents with known content, and a model
(the loopback server) that answers only from the chunk it is sent."""

from __future__ import annotations

import inspect
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from rlm import GuardConfig, run_task
from rlm.context_access import context_slice, open_context
from rlm.errors import TaskError
from rlm.loopback import LoopbackServer
from rlm.tasks import builtin_task
from tests.support import ROOT

analyze_document, find_errors_in_log = builtin_task("analyze_document"), builtin_task("find_errors_in_log")


# -- the template -----------------------------------------------------------------------

def test_the_example_tasks_are_one_file_the_template_at_the_top_of_the_project() -> None:
    template = ROOT / "tasks" / "example_task.py"
    for task in (analyze_document, find_errors_in_log):
        assert Path(inspect.getsourcefile(task) or "").resolve() == template
    assert not list((ROOT / "rlm").rglob("example_task.py"))  # no second copy inside the package


@pytest.mark.parametrize("name", ["analyze_document", "find_errors_in_log"])
def test_each_example_task_is_short_and_shows_its_three_phases_in_order(name: str) -> None:
    source = inspect.getsource(builtin_task(name))
    phases = ["# ===== PHASE 1: Programmatic Narrowing =====", "# ===== PHASE 2: Semantic Interpretation =====",
              "# ===== AGGREGATION ====="]
    assert all(phase in source for phase in phases), source
    assert [source.index(p) for p in phases] == sorted(source.index(p) for p in phases)
    assert len(source.splitlines()) <= 45  # the helpers sit beside it, below


def test_an_unknown_built_in_task_is_refused_naming_the_built_ins() -> None:
    with pytest.raises(TaskError, match="No built-in task 'nope'. The built-in tasks: analyze_document, "
                                        "count_by_label, find_answer, find_errors_in_log, find_pairs."):
        builtin_task("nope")


# -- logs -------------------------------------------------------------------------------

# Each family: how its lines look (with what varies), how severe it is, and how often it occurs.
FAMILIES = {
    "refused": ("ERROR [worker-{n}] database connection refused: connect ECONNREFUSED 10.0.{n}.{m}:5432",
                "error", 123),
    "timeout": ("ERROR [worker-{n}] payment gateway timeout after {m}s (order {big}); request will be retried",
                "warning", 57),
    "oom": ("FATAL [worker-{n}] out of memory: killed worker-{m} (rss {n}.{m}GB)", "critical", 5),
    "keyerror": ("ERROR [worker-{n}] unhandled Exception in handler: KeyError 'customer_{m}'", "error", 9),
}
LATE = ("CRITICAL [disk] /dev/sda{n} is read-only: writes to /var/lib/app/{big}.db refused", "critical", 2)
NOISE = ["INFO  [worker-{n}] GET /api/v1/items 200 {m}ms", "DEBUG [pool] active={n} idle={m}",
         "WARN  [worker-{n}] slow query on orders took {big}ms"]


def stamp(i: int) -> str:
    return f"2026-03-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"


def make_log(path: Path, lines: int = 20_000, seed: int = 7) -> dict[str, Any]:
    """A log with the families above at random places (the late one only after 90%), and its gold answers."""
    rng = random.Random(seed)
    slots = rng.sample(range(lines // 20, int(lines * 0.9)), sum(f[2] for f in FAMILIES.values()))
    late = sorted(rng.sample(range(int(lines * 0.92), lines - 10), LATE[2]))
    where: dict[int, str] = {}
    for name, (_, _, count) in FAMILIES.items():
        for _ in range(count):
            where[slots.pop()] = name
    for i in late:
        where[i] = "late"
    gold: dict[str, dict[str, Any]] = {name: {"count": 0, "lines": []} for name in [*FAMILIES, "late"]}
    out, line_no, problem_lines = [], 0, 0
    for i in range(lines):
        fill = {"n": rng.randint(1, 9), "m": rng.randint(10, 99), "big": rng.randint(10_000, 99_999)}
        name = where.get(i)
        template = (LATE[0] if name == "late" else FAMILIES[name][0]) if name else rng.choice(NOISE)
        out.append(f"{stamp(i)} {template.format(**fill)}")
        line_no += 1
        if name:
            gold[name]["count"] += 1
            gold[name]["lines"].append(line_no)
            problem_lines += 1
        if name == "keyerror":  # a stack trace under it: one event, two problem lines
            out += ["Traceback (most recent call last):", '  File "app/handlers.py", line 88, in handle',
                    f"KeyError: 'customer_{fill['m']}'"]
            line_no += 3
            problem_lines += 1
    path.write_text("\n".join(out) + "\n")
    return {"families": gold, "problem_lines": problem_lines}


def severity_from_the_chunk(body: dict[str, Any]) -> str:
    """A model that knows only what it is shown: it judges the event named in the instruction."""
    content = body["messages"][1]["content"]
    instruction, excerpt = content.split("\n\nExcerpt:\n<<<\n", 1)
    event = re.search(r"its line is:\n(.*)\nHow severe", instruction)
    if not event or event.group(1) not in excerpt:  # it can only judge what the chunk it reads shows
        return json.dumps({"severity": "info", "summary": "The excerpt does not show that line."})
    text = event.group(1)
    for needle, severity in (("refused: connect", "error"), ("timeout", "warning"), ("out of memory", "critical"),
                             ("KeyError", "error"), ("read-only", "critical")):
        if needle in text:
            return json.dumps({"severity": severity, "summary": f"The excerpt shows: {needle}."})
    return json.dumps({"severity": "info", "summary": "Unrecognised."})


def test_every_signature_is_counted_exactly_and_a_late_rare_failure_is_explained(llm: LoopbackServer,
                                                                                tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    gold = make_log(log)
    llm.responder = severity_from_the_chunk
    result = run_task(find_errors_in_log, log, GuardConfig(max_workers=4))
    assert result["status"] == "completed", result["error"]
    out = result["result"]
    assert out["count"] == len(out["findings"]) == 5
    meta = out["metadata"]
    assert meta["bytes_scanned"] == log.stat().st_size and meta["problem_lines"] == gold["problem_lines"]
    assert meta["events"] == sum(f["count"] for f in gold["families"].values())
    assert meta["signatures"] == 5 and meta["classified"] == 5 and meta["unclassified"] == 0
    needles = {"refused": "refused: connect", "timeout": "gateway timeout", "oom": "out of memory",
               "keyerror": "KeyError", "late": "read-only"}
    for name, family in gold["families"].items():
        finding = next(f for f in out["findings"] if needles[name] in f["signature"])
        assert finding["count"] == family["count"], name
        assert finding["first_line"] == {"file": str(log), "line": family["lines"][0]}
        assert finding["last_line"] == {"file": str(log), "line": family["lines"][-1]}
        with open_context(log) as ctx:  # the example's span is exactly the line it quotes
            assert str(context_slice(ctx, *finding["example"]["span"])) == finding["example"]["text"]
        expected = LATE[1] if name == "late" else FAMILIES[name][1]
        assert finding["severity"] == expected and finding["summary"]
    late = next(f for f in out["findings"] if "read-only" in f["signature"])
    assert late["first_line"]["line"] > 0.9 * 20_000  # past 90% of the file, and still explained
    assert len(llm.chat_requests) == 5  # one call per kind, not per line


def test_a_folder_of_rotated_logs_is_counted_as_one_log(llm: LoopbackServer, tmp_path: Path) -> None:
    whole = tmp_path / "whole.log"
    gold = make_log(whole, lines=6000, seed=3)
    lines = whole.read_text().splitlines(keepends=True)
    folder = tmp_path / "logs"
    folder.mkdir()
    cuts = [0, 2500, 4100, len(lines)]
    names = ["app.log.2", "app.log.1", "app.log"]
    for name, a, b in zip(names, cuts, cuts[1:]):
        (folder / name).write_text("".join(lines[a:b]))
    llm.responder = severity_from_the_chunk
    result = run_task(find_errors_in_log, [folder / n for n in names])
    out = result["result"]
    assert out["metadata"]["files"] == 3 and out["metadata"]["problem_lines"] == gold["problem_lines"]
    refused = next(f for f in out["findings"] if "refused" in f["signature"])
    assert refused["count"] == gold["families"]["refused"]["count"]
    first = gold["families"]["refused"]["lines"][0]
    index = max(i for i, cut in enumerate(cuts[:-1]) if first > cut)
    assert refused["first_line"] == {"file": str(folder / names[index]), "line": first - cuts[index]}
    example = refused["example"]  # its file_span slices the file it names
    a, b = example["file_span"]
    assert Path(example["file"]).read_bytes()[a:b].decode() == example["text"]


def test_a_limit_keeps_every_count_and_the_kinds_explained_so_far(llm: LoopbackServer, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    gold = make_log(log, lines=5000, seed=11)
    llm.responder = severity_from_the_chunk
    llm.latency = 0.4
    result = run_task(find_errors_in_log, log, GuardConfig(max_runtime_seconds=1.0, max_workers=1))
    assert result["status"] == "partial" and "RuntimeLimitError" in result["error"]
    findings = result["result"]["findings"]
    assert sorted(f["count"] for f in findings) == sorted(f["count"] for f in gold["families"].values())
    assert 1 <= sum(f["severity"] is not None for f in findings) < 5


# -- documents -------------------------------------------------------------------------

CLAIMS = {
    "beginning": "Results show that CLAIM-BEGIN delivery throughput rose by eleven percent.",
    "middle": "We found that CLAIM-MIDDLE review latency doubled in the second quarter.",
    "end": "In conclusion, CLAIM-END remote work did not harm reliability at all.",
}


def make_document(path: Path, size: int = 600_000, seed: int = 5) -> None:
    rng = random.Random(seed)
    words = "team cohort quarter metric change review office remote engineer incident focus week".split()
    sections, positions = [], {"beginning": 0.04, "middle": 0.5, "end": 0.96}
    placed = {name: False for name in CLAIMS}
    written, n = 0, 0
    while written < size:
        n += 1
        heading = f"## Section {n}\n\n"
        body = []
        for _ in range(rng.randint(8, 20)):
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "."
            body.append(sentence)
            for name, at in positions.items():
                if not placed[name] and written + len(heading) + sum(map(len, body)) >= at * size:
                    body.append(CLAIMS[name])
                    placed[name] = True
        text = heading + " ".join(body) + "\n\n"
        sections.append(text)
        written += len(text.encode())
    path.write_text("# A Long Report\n\n" + "".join(sections))
    assert all(placed.values())


def claims_from_the_chunk(body: dict[str, Any]) -> str:
    content = body["messages"][1]["content"]
    if "response_format" not in body:
        return "The report concludes that remote work did not harm reliability."
    excerpt = content.split("\n\nExcerpt:\n<<<\n", 1)[1]
    found = [c for c in CLAIMS.values() if c in excerpt]
    return json.dumps({"claims": [{"claim": c.split("CLAIM-")[1], "quote": c, "confidence": "high"} for c in found]})


def test_claims_at_the_beginning_middle_and_end_reach_the_model_and_cite_their_spans(
        llm: LoopbackServer, tmp_path: Path) -> None:
    doc = tmp_path / "report.md"
    make_document(doc)
    llm.responder = claims_from_the_chunk
    result = run_task(analyze_document, doc)
    assert result["status"] == "completed", result["error"]
    out = result["result"]
    points = out["analysis"]["key_points"]
    assert {p["claim"].split()[0] for p in points} == {"BEGIN", "MIDDLE", "END"}
    text = doc.read_text()
    with open_context(doc) as ctx:
        for point in points:
            assert point["verified"]
            quote = str(context_slice(ctx, *point["span"]))
            assert quote in CLAIMS.values() and text.encode().index(quote.encode()) == point["span"][0]
    meta = out["metadata"]
    assert meta["coverage"] == {"beginning": True, "middle": True, "end": True}
    assert len(meta["windows"]) <= 8 and meta["sections"] > 50
    assert out["analysis"]["title"] == "A Long Report" and out["analysis"]["conclusion"]
    assert len(llm.chat_requests) <= 9  # 8 windows and the conclusion, whatever the length


@pytest.mark.parametrize("size", [20_000, 2_000_000])
def test_the_model_work_is_bounded_whatever_the_size(llm: LoopbackServer, tmp_path: Path, size: int) -> None:
    doc = tmp_path / "report.md"
    make_document(doc, size=size)
    result = run_task(analyze_document, doc, GuardConfig(dry_run=True))
    assert result["budget_summary"]["dry_run"]["subcalls"] <= 9


def test_a_severity_outside_the_vocabulary_is_read_as_its_synonym_or_named_and_counted(llm: LoopbackServer,
                                                                                       tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("10:00 INFO up\n10:01 ERROR disk full on /var\n10:02 FATAL kernel panic\n")
    words = {"disk": "high", "kernel": "apocalyptic"}
    llm.responder = lambda body: json.dumps({
        "severity": next(w for k, w in words.items() if k in body["messages"][1]["content"].split("Excerpt")[0]),
        "summary": "Something broke."})
    result = run_task(find_errors_in_log, log)
    by_text = {f["example"]["text"].split()[-1]: f for f in result["result"]["findings"]}
    assert by_text["/var"]["severity"] == "error"  # "high" is a synonym
    panic = by_text["panic"]
    assert panic["severity"] is None and panic["severity_answer"] == "apocalyptic" and panic["summary"]
    assert result["budget_summary"]["answers_defaulted"] == 1  # named, never dropped in silence
