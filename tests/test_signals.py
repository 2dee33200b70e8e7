"""Interrupts lose nothing: real SIGINT and SIGTERM sent to a real run.py (and to a script that calls
run_task) while calls are in flight at the loopback server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm.loopback import LoopbackServer
from tests.support import ROOT

RUN = str(ROOT / "run.py")
LOG = str(ROOT / "examples" / "server.log")


def start(env: dict[str, str], args: list[str], *, group: bool = False) -> subprocess.Popen[str]:
    """A child Python on ``args`` from the project root (importing this rlm), in its own session if ``group``."""
    env = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=group)


def wait_for_calls(server: LoopbackServer, n: int, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while len(server.chat_requests) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.chat_requests) >= n, "the run never reached the server"


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str, float]:
    started = time.monotonic()
    out, err = proc.communicate(timeout=20)
    return proc.returncode, json.loads(out), err, time.monotonic() - started


@pytest.mark.parametrize(("signum", "code", "name", "group"), [
    (signal.SIGINT, 130, "SIGINT", True),    # Ctrl-C at a terminal: the whole process group
    (signal.SIGINT, 130, "SIGINT", False),   # kill -INT of run.py alone
    (signal.SIGTERM, 143, "SIGTERM", False),  # a scheduler, a container stop, `timeout`
])
def test_a_signal_ends_the_run_within_a_second_with_the_partial_result(
        llm: LoopbackServer, tmp_path: Path, signum: int, code: int, name: str, group: bool,
        child_env: Callable[..., dict[str, str]]) -> None:
    llm.responder = lambda body: '{"severity": "error", "summary": "It broke."}'
    llm.latency = 2.0
    trace = tmp_path / "t.jsonl"
    proc = start(child_env(), [RUN, LOG, "--task", "find_errors_in_log", "--trace", str(trace), "--no-cache"],
                 group=group)
    wait_for_calls(llm, 4)  # four calls in flight, each for 2 s
    time.sleep(0.3)
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    returncode, result, err, _ = finish(proc)
    took = time.monotonic() - sent
    assert returncode == code, err
    assert took < 1.0 + 0.5  # within a second of the signal (plus the interpreter's exit)
    assert result["status"] == "partial" and name in result["error"] and "InterruptError" in result["error"]
    assert len(result["result"]["findings"]) == 4  # every count the scan made is kept
    summary = result["budget_summary"]
    assert summary["kept_reservations_usd"] > 0 and summary["reserved_in_flight_usd"] == 0  # in-flight as spent
    assert summary["total_cost_usd"] == pytest.approx(summary["kept_reservations_usd"])
    assert "interrupt" in summary["guard_trips"]
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[-1]["event"] == "run_end" and events[-1]["status"] == "partial"
    assert "Traceback" not in err
    time.sleep(0.3)
    assert len(llm.chat_requests) == 4  # nothing new started after the signal


def test_a_second_ctrl_c_exits_at_once_even_from_code_that_cannot_be_interrupted(
        llm: LoopbackServer, stuck_task: str, child_env: Callable[..., dict[str, str]]) -> None:
    proc = start(child_env(), [RUN, LOG, "--task", stuck_task, "--no-cache", "--timeout", "60"])
    wait_for_calls(llm, 2)
    time.sleep(0.3)  # inside re.match now
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    returncode, result, err, _ = finish(proc)
    assert returncode == 130 and time.monotonic() - sent < 0.5 + 0.5
    assert result["status"] == "partial" and "second Ctrl-C" in result["error"]
    assert result["result"] == {"seen": ["ok"]} and result["budget_summary"]["total_calls"] == 2


def test_a_script_that_calls_run_task_gets_the_partial_result_with_the_keyboard_interrupt(
        llm: LoopbackServer, tmp_path: Path, child_env: Callable[..., dict[str, str]]) -> None:
    llm.latency = 2.0
    trace = tmp_path / "t.jsonl"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import json
        from rlm import GuardConfig, RunInterrupted, context_head, parallel_map, publish, run_task, semantic_subcall

        def task(ctx):
            done = publish("done", [])
            parallel_map(lambda i: done.append(semantic_subcall(f"q{{i}}", context_head(ctx, 20))), range(4))
            return done

        try:
            run_task(task, "some text", GuardConfig(trace_path={str(trace)!r}))
        except KeyboardInterrupt as stopped:
            assert isinstance(stopped, RunInterrupted)
            print(json.dumps(stopped.result))
    """))
    proc = start(child_env(), [str(script)])
    wait_for_calls(llm, 4)
    proc.send_signal(signal.SIGINT)
    returncode, result, err, took = finish(proc)
    assert returncode == 0, err
    assert took < 1.0 + 0.5
    assert result["status"] == "partial" and "SIGINT" in result["error"]
    assert result["budget_summary"]["kept_reservations_usd"] > 0
    assert [json.loads(line)["event"] for line in trace.read_text().splitlines()][-1] == "run_end"


@pytest.fixture
def stalled_server() -> Iterator[tuple[str, threading.Event]]:
    """A base URL whose server accepts connections and never answers, and an event set once one arrives."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            held.append(listener.accept()[0])
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", connected
    listener.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_before_the_task_starts_still_gives_the_json_result(
        stalled_server: tuple[str, threading.Event], signum: int, code: int, name: str,
        child_env: Callable[..., dict[str, str]]) -> None:
    base_url, connected = stalled_server
    env = child_env(PYTHONPATH=str(ROOT), OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-test-0123456789abcdef")
    proc = subprocess.Popen([sys.executable, RUN, LOG, "--task", "find_errors_in_log", "--no-cache"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert connected.wait(20), "the command never asked the server for its model"
    sent = time.monotonic()
    proc.send_signal(signum)  # while it waits for GET /models
    returncode, result, err, _ = finish(proc)
    assert returncode == code, err
    assert time.monotonic() - sent < 1.0 + 0.5
    assert result["status"] == "partial" and result["result"] is None
    assert f"Stopped by {name}" in result["error"] and "before the task started" in result["error"]
    summary = result["budget_summary"]  # the shape of any run's summary, with nothing spent
    assert summary["total_cost_usd"] == 0 and summary["total_calls"] == 0 and summary["guard_trips"] == []
    assert "Traceback" not in err


def test_a_single_ctrl_c_on_a_stuck_task_says_it_was_killed_after_the_grace_period(
        llm: LoopbackServer, stuck_task: str, child_env: Callable[..., dict[str, str]]) -> None:
    proc = start(child_env(), [RUN, LOG, "--task", stuck_task, "--no-cache", "--timeout", "60"])
    wait_for_calls(llm, 2)
    time.sleep(0.3)  # inside re.match now
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    returncode, result, err, _ = finish(proc)
    assert returncode == 130 and time.monotonic() - sent < 1.0 + 1.0
    assert "second Ctrl-C" not in result["error"]
    assert "did not stop by itself within the 1s grace period" in result["error"]
    assert result["result"] == {"seen": ["ok"]}
    assert result["budget_summary"]["elapsed_seconds"] >= 0.3 + 1.0  # the real time, not the last checkpoint's
