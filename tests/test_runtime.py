"""run_task and TaskBuilder: statuses, partial results, the hard wall clock and the audit trail."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rlm import (
    ConfigError,
    GuardConfig,
    RuntimeLimitError,
    TaskBuilder,
    context_head,
    context_search,
    context_slice,
    publish,
    run_task,
    semantic_subcall,
)
from rlm.loopback import Fault, LoopbackServer, Reply


def test_result_shape_and_completed_status(llm: LoopbackServer) -> None:
    result = run_task(lambda c: {"head": context_head(c, 5), "n": 1}, "hello world")
    assert set(result) >= {"status", "result", "error", "budget_summary"}
    assert result["status"] == "completed" and result["error"] is None
    assert result["result"] == {"head": "hello", "n": 1}
    s = result["budget_summary"]
    for key in ("total_cost_usd", "cost_budget_usd", "cost_remaining_usd", "total_calls", "elapsed_seconds",
                "input_tokens", "output_tokens", "model", "token_counting", "retries"):
        assert key in s
    json.dumps(result)


def test_results_are_made_json_ready(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("a ERROR b\n")
    result = run_task(lambda c: {"matches": context_search(c, "ERROR"), "chunk": context_slice(c, 0, 1)}, path)
    match = {"start": 2, "end": 7, "line": 1, "text": "ERROR", "file": str(path)}
    assert result["result"] == {"matches": [match], "chunk": "a"}


def test_exception_in_task_is_an_error_with_one_line_and_the_traceback_in_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"

    def broken(ctx: Any) -> Any:
        raise ValueError("bad\nthing")

    line = broken.__code__.co_firstlineno + 1  # the raise
    result = run_task(broken, "x", GuardConfig(trace_path=str(trace)))
    assert result["status"] == "error"
    assert result["error"] == f"ValueError: bad thing (at tests/test_runtime.py:{line} in broken)"
    assert "traceback" not in result
    assert f"line {line}, in broken" in run_task(broken, "x", include_traceback=True)["traceback"]
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    (err,) = [e for e in events if e["event"] == "error"]
    assert "Traceback" in err["traceback"] and "broken" in err["traceback"]


def test_missing_context_file_is_an_error_result(tmp_path: Path) -> None:
    result = run_task(lambda c: 1, tmp_path / "missing.txt")
    assert result["status"] == "error" and "No such file" in result["error"]
    assert "budget_summary" in result


def test_partial_after_cost_limit_keeps_published_work(llm: LoopbackServer) -> None:
    def task(ctx: Any) -> Any:
        done = publish("done", [])
        for i in range(1000):
            done.append(semantic_subcall(f"q{i}", "chunk"))
        return {"done": done}

    result = run_task(task, "x", GuardConfig(max_cost=0.001))  # about 40 calls
    assert result["status"] == "partial" and result["error"].startswith("CostLimitError")
    assert len(result["result"]["done"]) == result["budget_summary"]["total_calls"] > 0


def test_partial_after_runtime_limit_keeps_published_work(llm: LoopbackServer) -> None:
    llm.latency = 0.1

    def task(ctx: Any) -> Any:
        done = publish("done", [])
        while True:
            done.append(semantic_subcall("q", "chunk"))

    start = time.monotonic()
    result = run_task(task, "x", GuardConfig(max_runtime_seconds=1))
    assert time.monotonic() - start < 1.5
    assert result["status"] == "partial" and "RuntimeLimitError" in result["error"]
    assert len(result["result"]["done"]) >= 5


def test_hard_wall_clock_with_a_task_stuck_in_pure_python() -> None:
    state: dict[str, Any] = {}

    def stuck(ctx: Any) -> Any:
        publish("progress", state.setdefault("items", []))
        state["items"].append(1)
        n = 0
        while True:
            n += 1

    start = time.monotonic()
    result = run_task(stuck, "x", GuardConfig(max_runtime_seconds=0.5))
    assert time.monotonic() - start < 0.5 + 0.5
    assert result["status"] == "partial" and result["result"] == {"progress": [1]}


def test_abandoned_task_cannot_touch_the_context_or_the_model_afterwards(llm: LoopbackServer) -> None:
    after: list[BaseException] = []
    release = threading.Event()

    def task(ctx: Any) -> Any:
        try:
            release.wait(5)  # blocked in C, so it outlives the run
        except RuntimeLimitError:
            pass  # the exception raised inside it at the deadline, ignored by a stubborn task
        for action in (lambda: context_head(ctx, 3), lambda: semantic_subcall("late", "chunk")):
            try:
                action()
            except BaseException as exc:
                after.append(exc)

    result = run_task(task, "text", GuardConfig(max_runtime_seconds=0.3))
    assert result["status"] == "partial"
    release.set()
    time.sleep(0.3)
    assert len(after) == 2 and all(isinstance(e, RuntimeLimitError) for e in after)
    assert llm.chat_requests == []


def test_token_and_depth_limits_are_errors_not_partial(llm: LoopbackServer) -> None:
    result = run_task(lambda c: semantic_subcall("x", "y" * 5000), "x", GuardConfig(max_tokens_per_subcall=100))
    assert result["status"] == "error" and "TokenLimitError" in result["error"]


def test_task_builder_sets_every_field_and_is_immutable(llm: LoopbackServer, tmp_path: Path) -> None:
    base = TaskBuilder(lambda c: semantic_subcall("x", context_head(c, 3)))
    built = (base.with_cost_budget(0.25).with_runtime_limit(30.0).with_token_limit(2000).with_output_limit(50)
             .with_model("gpt-4o").with_max_depth(2).with_temperature(0.0).with_retries(1).with_max_workers(3)
             .with_trace(str(tmp_path / "t.jsonl")).with_cache(True, str(tmp_path / "c.sqlite3")))
    config = built.config()
    assert (config.max_cost, config.max_runtime_seconds, config.max_tokens_per_subcall, config.max_output_tokens,
            config.model, config.max_depth, config.max_retries, config.max_workers, config.cache) == (
        0.25, 30.0, 2000, 50, "gpt-4o", 2, 1, 3, True)
    assert base.config().max_cost == 0.5  # the original builder is unchanged
    result = built.run("abcdef")
    assert result["status"] == "completed" and result["budget_summary"]["cost_budget_usd"] == 0.25
    assert llm.chat_requests[0].body["max_completion_tokens"] == 50


def test_builder_refuses_bad_values_when_run() -> None:
    with pytest.raises(ConfigError, match="max_cost"):
        TaskBuilder(lambda c: 1).with_cost_budget(-1).run("x")


def test_progress_callback_sees_each_subcall(llm: LoopbackServer) -> None:
    seen: list[int] = []
    run_task(lambda c: [semantic_subcall("a", "b") for _ in range(3)], "x", progress=lambda s: seen.append(s["total_calls"]))
    assert seen == [1, 2, 3]


def test_dry_run_needs_no_api_and_reports_worst_case() -> None:
    def task(ctx: Any) -> Any:
        return [semantic_subcall("a", "chunk one"), semantic_subcall("b", "chunk two")]

    result = run_task(task, "x", GuardConfig(dry_run=True))
    assert result["status"] == "completed"
    assert all("dry-run" in answer for answer in result["result"])
    dry = result["budget_summary"]["dry_run"]
    assert dry["subcalls"] == 2 and dry["worst_case_cost_usd"] > 0 and dry["fits_budget"] is True
    assert result["budget_summary"]["total_cost_usd"] == 0


# -- the audit trail --------------------------------------------------------------------

def test_trace_records_every_step_and_no_secret(llm: LoopbackServer, tmp_path: Path, api_key: str) -> None:
    trace = tmp_path / "trace.jsonl"
    llm.script(Reply("the disk", prompt_tokens=40, completion_tokens=3), Fault.rate_limit(retry_after_ms=10), "x")

    def task(ctx: Any) -> Any:
        m = context_search(ctx, "ERROR")[0]
        chunk = context_slice(ctx, m.start, m.end + 5)
        return [semantic_subcall("What failed?", chunk), semantic_subcall("Again?", chunk)]

    result = run_task(task, "ok\nERROR disk\n", GuardConfig(trace_path=str(trace), max_cost=0.4))
    text = trace.read_text()
    assert api_key not in text
    events = [json.loads(line) for line in text.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("context_access") == 2 and kinds.count("subcall") == 2
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    start = events[0]
    assert start["config"]["max_cost"] == 0.4 and start["context"]["length"] == len("ok\nERROR disk\n")
    sub = [e for e in events if e["event"] == "subcall"]
    assert sub[0]["chunk_start"] == 3 and sub[0]["answer"] == "the disk" and sub[0]["input_tokens"] == 40
    assert len(sub[0]["chunk_sha256"]) == 64 and sub[0]["reserved_usd"] >= sub[0]["cost_usd"]
    assert sub[1]["retries"] == 1
    assert events[-1]["budget_summary"] == result["budget_summary"]


def test_trace_records_guard_trips(llm: LoopbackServer, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    run_task(lambda c: semantic_subcall("x", "y"), "x", GuardConfig(trace_path=str(trace), max_cost=0.000001))
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    trips = [e for e in events if e["event"] == "guard_trip"]
    assert trips and trips[0]["limit"] == "cost"


def test_secrets_echoed_by_the_server_are_scrubbed(llm: LoopbackServer, tmp_path: Path, api_key: str) -> None:
    trace = tmp_path / "trace.jsonl"
    llm.script(f"your key is {api_key}", Fault("status", status=400, message=f"bad key {api_key}"))
    ok = run_task(lambda c: semantic_subcall("x", "y"), "x", GuardConfig(trace_path=str(trace)))
    bad = run_task(lambda c: semantic_subcall("x", "y"), "x", GuardConfig())
    assert api_key not in trace.read_text() and api_key not in str(bad)
    assert "***" in trace.read_text() and bad["status"] == "error"
    assert ok["status"] == "completed"


def test_a_result_that_cannot_be_made_json_is_an_error() -> None:
    result = run_task(lambda c: {"context": c}, "secret text")
    assert result["status"] == "error" and "not JSON-ready" in result["error"] and "secret" not in result["error"]


def test_each_guard_trip_is_traced_once(llm: LoopbackServer, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    run_task(lambda c: semantic_subcall("x", "y"), "x", GuardConfig(trace_path=str(trace), max_cost=1e-9))
    assert trace.read_text().count('"guard_trip"') == 1


def test_a_task_can_ask_what_is_left_and_shrink_its_plan(llm: LoopbackServer) -> None:
    from rlm import remaining_budget

    seen: list[Any] = []

    def task(ctx: Any) -> int:
        done = 0
        while True:
            left = remaining_budget(chunk_size=500)
            seen.append(left)
            if not left.calls:
                return done  # stop before a limit would
            semantic_subcall("Summarize.", "x" * 500)
            done += 1

    config = GuardConfig(max_cost=0.004, price_input_per_mtok=1.0, price_output_per_mtok=1.0,
                         max_output_tokens=500, max_runtime_seconds=30)
    result = run_task(task, "x", config)
    assert result["status"] == "completed" and result["result"] >= 3
    assert seen[0].usd == pytest.approx(0.004) and seen[0].calls >= 3 and 0 < seen[0].seconds <= 30
    assert seen[-1].calls == 0 and result["budget_summary"]["guard_trips"] == []
