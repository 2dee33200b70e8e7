"""Parallel subcalls under one hard budget, and the response cache with $0 replay."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlm import (
    GuardConfig,
    parallel_map,
    publish,
    run_task,
    semantic_subcall,
    semantic_subcall_json,
)
from rlm.cache import CacheWarning, ResponseCache, clear_cache
from rlm.loopback import LoopbackServer, Reply
from tests.support import ROOT, Cli


def echo_index(body: dict[str, Any]) -> Reply:
    content = body["messages"][1]["content"]
    return Reply(content.split("item ")[1].split("\n")[0], latency=random.uniform(0, 0.03))


# -- parallel -------------------------------------------------------------------------

def test_results_come_back_in_input_order(llm: LoopbackServer) -> None:
    llm.responder = echo_index
    result = run_task(lambda c: parallel_map(lambda i: semantic_subcall(f"item {i}", "chunk"), range(30)), "x")
    assert result["result"] == [str(i) for i in range(30)]


def test_concurrency_is_reached_and_bounded(llm: LoopbackServer) -> None:
    llm.latency = 0.2
    start = time.monotonic()
    run_task(lambda c: parallel_map(lambda i: semantic_subcall(f"q{i}", "c"), range(16), max_workers=8), "x")
    assert llm.max_in_flight == 8
    assert time.monotonic() - start < 0.2 * 16 / 2  # far faster than one at a time
    llm.reset()
    run_task(lambda c: parallel_map(lambda i: semantic_subcall(f"q{i}", "c"), range(9), max_workers=8), "x",
             GuardConfig(max_workers=3))
    assert llm.max_in_flight == 3  # the run's cap wins


def test_the_default_worker_count_follows_the_run(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    def full_house(wanted: int) -> Callable[[dict[str, Any]], str]:
        reached = threading.Event()

        def answer(body: dict[str, Any]) -> str:  # hold every call until `wanted` were in flight (or 3 s pass)
            deadline = time.monotonic() + 3
            while not reached.is_set() and time.monotonic() < deadline:
                if llm.in_flight >= wanted:
                    reached.set()
                reached.wait(0.005)
            return "ok"
        return answer

    llm.responder = full_house(12)
    run_task(lambda c: parallel_map(lambda i: semantic_subcall(f"q{i}", "c"), range(12)), "x",
             GuardConfig(max_workers=12))
    assert llm.max_in_flight == 12  # the run's workers, not a default of parallel_map's own
    llm.reset()
    llm.responder = full_house(16)
    task = tmp_path / "fan_out.py"
    task.write_text("from rlm import parallel_map, semantic_subcall\n"
                    "def fan_out(context):\n"
                    "    return len(parallel_map(lambda i: semantic_subcall(f'q{i}', 'c'), range(16)))\n")
    ran = cli(str(ROOT / "examples" / "server.log"), "--task", f"{task}:fan_out", "--workers", "16", "--no-cache")
    assert ran.code == 0 and ran.result["result"] == 16 and llm.max_in_flight == 16


def test_all_four_subcall_kinds_work_through_parallel_map(llm: LoopbackServer) -> None:
    llm.responder = lambda body: '{"v": 1}' if "response_format" in body else "yes"
    from rlm import semantic_subcall_bool, semantic_subcall_choice

    fns = [lambda: semantic_subcall("a", "c"), lambda: semantic_subcall_json("a", "c"),
           lambda: semantic_subcall_bool("a", "c"), lambda: semantic_subcall_choice("a", "c", ["yes", "no"])]
    result = run_task(lambda c: parallel_map(lambda f: f(), fns), "x")
    assert result["result"] == ["yes", {"v": 1}, True, "yes"]


def test_cost_limit_mid_map_keeps_results_and_starts_nothing_new(llm: LoopbackServer) -> None:
    llm.latency = 0.02
    llm.responder = lambda body: Reply("done", prompt_tokens=3000, completion_tokens=800)
    started: list[int] = []

    def task(ctx: Any) -> Any:
        done = publish("done", [])

        def one(i: int) -> str:
            started.append(i)
            answer = semantic_subcall(f"q{i}", "x" * 3000)
            done.append(i)
            return answer

        return parallel_map(one, range(40), max_workers=4)

    result = run_task(task, "x", GuardConfig(max_cost=0.006))
    s = result["budget_summary"]
    assert result["status"] == "partial" and "CostLimitError" in result["error"]
    assert s["total_cost_usd"] <= 0.006
    assert len(result["result"]["done"]) == s["total_calls"] == len(llm.chat_requests) > 0
    assert len(started) <= s["total_calls"] + 4  # at most the calls in flight when it tripped


def test_runtime_limit_mid_map_keeps_results(llm: LoopbackServer) -> None:
    llm.latency = 0.3

    def task(ctx: Any) -> Any:
        done = publish("done", [])
        return parallel_map(lambda i: done.append(semantic_subcall(f"q{i}", "c")), range(20), max_workers=2)

    start = time.monotonic()
    result = run_task(task, "x", GuardConfig(max_runtime_seconds=1.0))
    assert time.monotonic() - start < 1.5
    assert result["status"] == "partial" and "RuntimeLimitError" in result["error"]
    assert len(result["result"]["done"]) >= 4


def test_one_failure_does_not_fail_its_neighbours(llm: LoopbackServer) -> None:
    calls: list[int] = []

    def one(i: int) -> str:
        calls.append(i)
        if i == 3:
            raise ValueError("item 3 is bad")
        return semantic_subcall(f"q{i}", "c")

    result = run_task(lambda c: parallel_map(one, range(8), return_exceptions=True), "x")
    assert result["result"][3] == "ValueError('item 3 is bad')" or "item 3 is bad" in result["result"][3]
    assert [r for i, r in enumerate(result["result"]) if i != 3] == ["ok"] * 7
    calls.clear()
    result = run_task(lambda c: parallel_map(one, range(8)), "x")
    assert result["status"] == "error" and result["error"].startswith("ValueError: item 3 is bad (at tests/test_parallel_cache.py:")
    assert sorted(calls) == list(range(8))  # every neighbour still ran


def test_unparseable_json_with_a_default_only_affects_its_item(llm: LoopbackServer) -> None:
    llm.responder = lambda body: "garbage" if "q2" in body["messages"][1]["content"] else '{"ok": true}'
    result = run_task(lambda c: parallel_map(lambda i: semantic_subcall_json(f"q{i}", "c", default={"ok": False}),
                                             range(4)), "x")
    assert result["result"] == [{"ok": True}, {"ok": True}, {"ok": False}, {"ok": True}]


def test_depth_and_token_limits_hold_in_every_worker(llm: LoopbackServer) -> None:
    class Nested:
        def __str__(self) -> str:
            return semantic_subcall("inner", "x")

    result = run_task(lambda c: parallel_map(lambda i: semantic_subcall("outer", Nested()), range(3)), "x")  # type: ignore[arg-type]
    assert "RecursionDepthError" in result["error"]
    result = run_task(lambda c: parallel_map(lambda i: semantic_subcall("x", "y" * 9000), range(3)), "x")
    assert "TokenLimitError" in result["error"]
    assert llm.chat_requests == []


def test_bad_max_workers() -> None:
    result = run_task(lambda c: parallel_map(len, ["a"], max_workers=0), "x", GuardConfig(dry_run=True))
    assert result["status"] == "error" and "max_workers" in result["error"]


# -- cache ----------------------------------------------------------------------------

def cached(tmp_path: Path, **kw: Any) -> GuardConfig:
    return GuardConfig(cache=True, cache_path=str(tmp_path / "cache.sqlite3"), **kw)


def three_questions(ctx: Any) -> list[str]:
    return [semantic_subcall(f"question {i}", "the same chunk") for i in range(3)]


def test_warm_cache_replays_with_zero_requests_and_zero_cost(llm: LoopbackServer, tmp_path: Path) -> None:
    llm.responder = lambda body: Reply(body["messages"][1]["content"][:10], prompt_tokens=100, completion_tokens=5)
    cold = run_task(three_questions, "x", cached(tmp_path))
    assert len(llm.chat_requests) == 3 and cold["budget_summary"]["cache"] == {
        "hits": 0, "misses": 3, "saved_usd": 0.0, "replayed_calls": 0, "new_calls": 3}
    warm = run_task(three_questions, "x", cached(tmp_path))
    assert len(llm.chat_requests) == 3  # nothing new was sent
    assert warm["result"] == cold["result"]
    s = warm["budget_summary"]
    assert s["total_cost_usd"] == 0 and s["total_calls"] == 0 and s["http_attempts"] == 0
    assert s["cache"]["hits"] == 3 and s["cache"]["saved_usd"] == pytest.approx(cold["budget_summary"]["total_cost_usd"])


def test_a_replay_makes_no_request_at_all_not_even_for_the_model(llm: LoopbackServer, tmp_path: Path) -> None:
    run_task(three_questions, "x", cached(tmp_path))
    asked = len(llm.requests)
    warm = run_task(three_questions, "x", cached(tmp_path))
    assert len(llm.requests) == asked  # no GET /models either: the cache remembers which model the server serves
    assert warm["budget_summary"]["model"] == "gpt-4o-mini" and warm["budget_summary"]["cache"]["hits"] == 3


def test_a_server_that_changed_its_model_is_asked_before_a_new_call(llm: LoopbackServer, tmp_path: Path) -> None:
    free = {"price_input_per_mtok": 0, "price_output_per_mtok": 0}
    run_task(three_questions, "x", cached(tmp_path, **free))
    llm.models = ["llama-3.2"]
    llm.reset()
    result = run_task(lambda c: semantic_subcall("a new question", "chunk"), "x", cached(tmp_path, **free))
    assert result["status"] == "completed" and result["budget_summary"]["model"] == "llama-3.2"
    assert [r.path.rsplit("/", 1)[-1] for r in llm.requests] == ["models", "completions"]
    assert llm.chat_requests[0].body["model"] == "llama-3.2"
    replay = run_task(three_questions, "x", cached(tmp_path, **free))  # the new model's answers are not the old one's
    assert replay["budget_summary"]["cache"]["hits"] == 0 and replay["budget_summary"]["model"] == "llama-3.2"


def test_cache_hits_reserve_nothing_even_with_a_tiny_budget(llm: LoopbackServer, tmp_path: Path) -> None:
    run_task(three_questions, "x", cached(tmp_path))
    warm = run_task(three_questions, "x", cached(tmp_path, max_cost=0.0000001))
    assert warm["status"] == "completed"


def test_cache_is_keyed_by_model_messages_and_sampling(llm: LoopbackServer, tmp_path: Path) -> None:
    run_task(three_questions, "x", cached(tmp_path))
    run_task(three_questions, "x", cached(tmp_path, model="gpt-4o"))
    run_task(three_questions, "x", cached(tmp_path, max_output_tokens=10))
    assert len(llm.chat_requests) == 9


def test_nonzero_temperature_is_not_cached_unless_asked(llm: LoopbackServer, tmp_path: Path) -> None:
    for _ in range(2):
        run_task(three_questions, "x", cached(tmp_path, temperature=0.7))
    assert len(llm.chat_requests) == 6
    for _ in range(2):
        run_task(three_questions, "x", cached(tmp_path, temperature=0.7, cache_nonzero_temperature=True))
    assert len(llm.chat_requests) == 9


def test_cache_hits_are_marked_in_the_trace(llm: LoopbackServer, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    run_task(three_questions, "x", cached(tmp_path))
    run_task(three_questions, "x", cached(tmp_path, trace_path=str(trace)))
    subcalls = [json.loads(line) for line in trace.read_text().splitlines() if '"subcall"' in line]
    assert [e["cached"] for e in subcalls] == [True] * 3 and all(e["cost_usd"] == 0 for e in subcalls)


def test_parallel_map_with_the_cache(llm: LoopbackServer, tmp_path: Path) -> None:
    llm.responder = echo_index
    task = lambda c: parallel_map(lambda i: semantic_subcall(f"item {i}", "c"), range(24), max_workers=8)  # noqa: E731
    cold = run_task(task, "x", cached(tmp_path))
    warm = run_task(task, "x", cached(tmp_path))
    assert warm["result"] == cold["result"] == [str(i) for i in range(24)]
    assert len(llm.chat_requests) == 24 and warm["budget_summary"]["cache"]["hits"] == 24


def test_corrupt_cache_is_set_aside_with_one_warning(llm: LoopbackServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_task(three_questions, "x", cached(tmp_path))
    assert result["status"] == "completed"
    assert [w.category for w in caught] == [CacheWarning]
    assert "moved to" in str(caught[0].message)
    assert list(tmp_path.glob("cache.sqlite3.corrupt-*"))
    assert ResponseCache(path).stats()["entries"] == 3  # rebuilt and filled


def test_unusable_cache_location_degrades_to_no_cache(llm: LoopbackServer, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_task(three_questions, "x", GuardConfig(cache=True, cache_path=str(blocker / "c.sqlite3")))
    assert result["status"] == "completed" and len(caught) == 1


def test_clear_cache(llm: LoopbackServer, tmp_path: Path) -> None:
    run_task(three_questions, "x", cached(tmp_path))
    assert "Cleared" in clear_cache(tmp_path / "cache.sqlite3")
    assert "No response cache" in clear_cache(tmp_path / "cache.sqlite3")
    run_task(three_questions, "x", cached(tmp_path))
    assert len(llm.chat_requests) == 6


def test_cli_caches_by_default_and_replays_with_zero_requests(llm: LoopbackServer, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm.cli import main

    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path))
    log = str(ROOT / "examples" / "server.log")

    def run(*extra: str) -> dict[str, Any]:
        assert main([log, "--task", "find_errors_in_log", *extra]) == 0
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]

    first = run()
    assert len(llm.chat_requests) == 4  # one per kind of problem in the example log
    asked = len(llm.requests)
    second = run()
    assert len(llm.requests) == asked  # a replay asks nothing, not even which model the server serves
    assert first["result"] == second["result"] and second["budget_summary"]["cache"]["hits"] == 4
    run("--no-cache")
    assert len(llm.chat_requests) == 8
    assert main(["--clear-cache"]) == 0 and "Cleared the response cache" in capsys.readouterr().out


JUDGED = '{"severity": "error", "summary": "It broke."}'


def test_two_processes_share_one_cache(llm: LoopbackServer, cli: Cli, tmp_path: Path,
                                       child_env: Callable[..., dict[str, str]]) -> None:
    llm.latency = 0.3
    llm.default = JUDGED
    log = str(ROOT / "examples" / "server.log")
    other = subprocess.Popen([sys.executable, str(ROOT / "run.py"), log, "--task", "find_errors_in_log"], cwd=ROOT,
                             env=child_env(RLM_CACHE_DIR=str(tmp_path)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not llm.chat_requests and time.monotonic() < deadline:
        time.sleep(0.01)
    ours = cli(log, "--task", "find_errors_in_log", RLM_CACHE_DIR=str(tmp_path))  # while the other one runs
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0 and ours.code == 0, err
    assert "warning" not in err and "warning" not in ours.stderr
    before = len(llm.chat_requests)
    third = cli(log, "--task", "find_errors_in_log", RLM_CACHE_DIR=str(tmp_path))
    assert len(llm.chat_requests) == before and third.result["budget_summary"]["cache"]["hits"] == 4


def test_corrupt_cache_warning_is_one_line_in_the_cli(llm: LoopbackServer, cli: Cli, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    llm.default = JUDGED  # an answer in the task's format: the cache's warning is the only one
    (tmp_path / "responses.sqlite3").write_bytes(b"garbage" * 500)
    monkeypatch.setattr(sys, "argv", ["run.py"])
    ran = cli(str(ROOT / "examples" / "server.log"), "--task", "find_errors_in_log", RLM_CACHE_DIR=str(tmp_path))
    assert ran.code == 0
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("run.py: warning: The response cache")


# -- a cache on a disk that fills up or turns read-only ------------------------------------------------

def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True, capture_output=True)


def test_a_full_disk_stops_storing_but_never_sets_the_cache_aside(llm: LoopbackServer, small_disk: Any) -> None:
    disk = small_disk(1024)
    run_task(three_questions, "x", cached(disk))
    with contextlib.suppress(OSError), open(disk / "filler", "wb") as fill:
        while True:
            fill.write(b"\0" * 65536)
            fill.flush()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_task(lambda c: [*three_questions(c), *[semantic_subcall(f"new {i}", "c") for i in range(30)]],
                          "x", cached(disk))
    assert result["status"] == "completed" and result["budget_summary"]["cache"]["hits"] == 3
    assert any("cannot be written" in str(w.message) for w in caught)
    assert not list(disk.glob("*.corrupt-*")) and all("moved to" not in str(w.message) for w in caught)
    (disk / "filler").unlink()  # space is back: what was stored before is still there
    replay = run_task(three_questions, "x", cached(disk))
    assert replay["budget_summary"]["cache"]["hits"] == 3


def test_a_read_only_cache_still_replays(llm: LoopbackServer, small_disk: Any) -> None:
    disk = small_disk(1024)
    cold = run_task(three_questions, "x", cached(disk))
    remount(disk, "ro")
    asked = len(llm.chat_requests)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warm = run_task(lambda c: [*three_questions(c), semantic_subcall("new", "c")], "x", cached(disk))
    assert warm["status"] == "completed" and warm["result"][:3] == cold["result"]
    assert warm["budget_summary"]["cache"]["hits"] == 3 and len(llm.chat_requests) == asked + 1
    assert any("cannot be written" in str(w.message) for w in caught)
    assert not list(disk.glob("*.corrupt-*"))


def test_a_bad_cache_row_is_skipped(llm: LoopbackServer, tmp_path: Path) -> None:
    import sqlite3

    cold = run_task(three_questions, "x", cached(tmp_path))
    with sqlite3.connect(tmp_path / "cache.sqlite3") as db:
        keys = [k for (k,) in db.execute("SELECT key FROM responses")]
        db.execute("UPDATE responses SET cost_usd = 'not a number' WHERE key = ?", (keys[0],))
        db.execute("UPDATE responses SET cost_usd = 'NaN' WHERE key = ?", (keys[1],))
    warm = run_task(three_questions, "x", cached(tmp_path))
    assert warm["status"] == "completed" and warm["result"] == cold["result"]
    assert warm["budget_summary"]["cache"]["hits"] == 1  # the two bad rows were asked afresh
    json.dumps(warm, allow_nan=False)  # no NaN reached the result
