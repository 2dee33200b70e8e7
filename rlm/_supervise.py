"""A hard stop for a run stuck where no thread can interrupt it: the task runs in a forked child.

``run_task`` stops a task at its deadline from another thread, which works for
Python code and for calls blocked in I/O, but not for C code that holds the
GIL (a catastrophic ``re.match`` of the task's own, a C extension): no other
thread runs until it returns. The command line therefore runs the task in a
child process and waits in the parent, which holds no GIL of the child's.
The child reports after every reservation and every subcall (what the task
published, the budget summary, the trace's position) and sends its result at
the end; if it is not done by the limit plus a grace period, the parent kills
it and reports the run from the last checkpoint: the partial result, the
spend (calls in flight kept as spent, as the ledger would), and a closed
trace. Where ``fork`` is unavailable (Windows) or threads already run, the
task runs in this process instead, without the hard stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rlm.errors import ConfigError, RLMError
from rlm.trace import TraceWriter

__all__ = ["supervise", "KILL_GRACE_SECONDS"]

#: After the runtime limit, the child gets this long to report by itself before it is killed.
KILL_GRACE_SECONDS = 1.0
#: Until the child says when its run started (imports come first), the parent allows this much more.
_STARTUP_SECONDS = 30.0
_HEADER = struct.Struct("!I")

Work = Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]]


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def supervise(work: Work, *, limit_seconds: float, trace_path: str | None = None) -> dict[str, Any]:
    """Run ``work(checkpoint)`` (which returns a run_task result) so that it ends by the limit plus 2 s."""
    if not _can_fork():
        return work(lambda payload: None)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: run, report, and leave without running the parent's exit handlers
        os.close(read_fd)
        _die_with(parent)
        code = 0
        try:
            channel = os.fdopen(write_fd, "wb")

            def send(payload: dict[str, Any]) -> None:
                data = json.dumps(payload, default=str).encode()
                channel.write(_HEADER.pack(len(data)) + data)
                channel.flush()

            try:
                result = work(lambda payload: send({"kind": "checkpoint", **payload}))
            except RLMError as exc:  # refused before the task ran (a bad config, an unwritable trace)
                send({"kind": "raised", "type": type(exc).__name__, "message": str(exc)})
            else:
                send({"kind": "result", "result": result})
        except BaseException:  # the parent reports what the last checkpoint said
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    return _wait(pid, read_fd, started + _STARTUP_SECONDS + limit_seconds + KILL_GRACE_SECONDS, trace_path)


def _die_with(parent: int) -> None:
    """End this child when its parent ends, however it ends (even SIGKILL): no orphan goes on spending."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent was gone before the request took hold
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="rlm-orphan-watch", daemon=True).start()


#: A stopped child gets this long to report its partial result before it is killed.
STOP_GRACE_SECONDS = 1.0
_SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


@contextlib.contextmanager
def _signal_pipe() -> Iterator[tuple[int, list[int]]]:
    """While the parent waits, SIGINT and SIGTERM are noted and wake its select (a self-pipe)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    pending: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def note(signum: int, frame: object) -> None:
            pending.append(signum)
            with contextlib.suppress(OSError):
                os.write(wake_w, b"!")

        previous = {signum: signal.signal(signum, note) for signum in _SIGNAL_NAMES}
    try:
        yield wake_r, pending
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        os.close(wake_r)
        os.close(wake_w)


def _wait(pid: int, read_fd: int, kill_at: float, trace_path: str | None) -> dict[str, Any]:
    buffer = bytearray()
    last: dict[str, Any] = {}
    published: Any = None
    stopped: int | None = None  # the signal that stopped the run, if one did
    try:
        with _signal_pipe() as (wake_r, pending):
            while True:
                while pending:
                    signum = pending.pop(0)
                    if stopped is not None and signum == signal.SIGINT:  # a second Ctrl-C: end at once
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        return _interrupted(last, published, trace_path, stopped, killed=True)
                    if stopped is None:
                        stopped = signum
                        # The child may not have seen it (kill -TERM of this process only): pass it on.
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signum)
                        kill_at = min(kill_at, time.monotonic() + STOP_GRACE_SECONDS)
                timeout = kill_at - time.monotonic()
                if timeout <= 0:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    if stopped is not None:
                        return _interrupted(last, published, trace_path, stopped, killed=True)
                    return _killed(last, published, trace_path)
                ready, _, _ = select.select([read_fd, wake_r], [], [], timeout)
                if wake_r in ready:
                    os.read(wake_r, 1024)
                if read_fd not in ready:
                    continue
                data = os.read(read_fd, 1 << 16)
                if not data:  # the child is gone
                    _, status = os.waitpid(pid, 0)
                    return _died(last, published, status, trace_path)
                buffer += data
                while len(buffer) >= _HEADER.size:
                    (size,) = _HEADER.unpack_from(buffer)
                    if len(buffer) < _HEADER.size + size:
                        break
                    message = json.loads(bytes(buffer[_HEADER.size:_HEADER.size + size]))
                    del buffer[:_HEADER.size + size]
                    if message.get("kind") == "result":
                        os.waitpid(pid, 0)
                        return message["result"]  # type: ignore[no-any-return]
                    if message.get("kind") == "raised":
                        os.waitpid(pid, 0)
                        kind = ConfigError if message.get("type") == "ConfigError" else RLMError
                        raise kind(str(message.get("message")))
                    last = message
                    published = message.get("result", published)
                    if stopped is None and isinstance(message.get("deadline_monotonic"), (int, float)):
                        # CLOCK_MONOTONIC is one clock for every process of the machine.
                        kill_at = float(message["deadline_monotonic"]) + KILL_GRACE_SECONDS
    finally:
        os.close(read_fd)


def _interrupted(last: dict[str, Any], published: Any, trace_path: str | None, signum: int,
                 *, killed: bool) -> dict[str, Any]:
    """The result of a run stopped by a signal whose process had to be killed, from its last checkpoint."""
    name = _SIGNAL_NAMES.get(signal.Signals(signum), str(signum))
    summary = _final_summary(last)
    how = "it was killed after a second Ctrl-C" if killed else "it was killed"
    error = (f"InterruptError: Stopped by {name}; the task did not stop in time, so {how}. "
             "Results published up to its last subcall are kept.")
    if summary is not None and "interrupt" not in summary.get("guard_trips", []):
        summary["guard_trips"] = [*summary.get("guard_trips", []), "interrupt"]
    _close_trace(last, trace_path, "partial", error, published, summary, None)
    return {"status": "partial", "result": published, "error": error, "budget_summary": summary,
            "signal": name}


def _final_summary(last: dict[str, Any]) -> dict[str, Any] | None:
    """The last budget summary with the calls in flight counted as spent (the provider may bill them)."""
    summary = last.get("budget_summary")
    if not isinstance(summary, dict):
        return None
    summary = dict(summary)
    in_flight = float(summary.get("reserved_in_flight_usd") or 0.0)
    summary["total_cost_usd"] = float(summary.get("total_cost_usd") or 0.0) + in_flight
    summary["kept_reservations_usd"] = float(summary.get("kept_reservations_usd") or 0.0) + in_flight
    summary["reserved_in_flight_usd"] = 0.0
    budget = float(summary.get("cost_budget_usd") or 0.0)
    summary["cost_remaining_usd"] = max(budget - summary["total_cost_usd"], 0.0)
    return summary


def _close_trace(last: dict[str, Any], trace_path: str | None, status: str, error: str, result: Any,
                 summary: dict[str, Any] | None, limit: str | None) -> None:
    run_id, seq = last.get("run_id"), last.get("trace_seq")
    if trace_path is None or run_id is None:
        return
    try:
        writer = TraceWriter(trace_path, str(run_id), seq=int(seq or 0))
    except Exception:  # an unwritable trace was refused at the start already
        return
    try:
        if limit is not None:
            writer.emit("guard_trip", limit=limit, error="RuntimeLimitError", message=error)
        writer.emit("run_end", status=status, error=error, result=result, budget_summary=summary)
    finally:
        writer.close()


def _killed(last: dict[str, Any], published: Any, trace_path: str | None) -> dict[str, Any]:
    summary = _final_summary(last)
    limit = summary.get("runtime_limit_seconds") if summary else None
    message = (
        f"Runtime limit of {limit:g}s reached and the task did not stop: it was stuck in code that cannot be "
        "interrupted (a C extension, or a catastrophic re.match on its own), so its process was killed. "
        "Results published up to its last subcall are kept."
        if isinstance(limit, (int, float)) else "The task did not stop at its runtime limit and was killed."
    )
    if summary is not None and "runtime" not in summary.get("guard_trips", []):
        summary["guard_trips"] = [*summary.get("guard_trips", []), "runtime"]
    error = f"RuntimeLimitError: {message}"
    _close_trace(last, trace_path, "partial", error, published, summary, "runtime")
    return {"status": "partial", "result": published, "error": error, "budget_summary": summary}


def _died(last: dict[str, Any], published: Any, status: int, trace_path: str | None) -> dict[str, Any]:
    how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
           else f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"status {status}")
    error = (f"TaskError: the task's process ended unexpectedly ({how}) before it returned; "
             "results published up to its last subcall are kept.")
    summary = _final_summary(last)
    _close_trace(last, trace_path, "error", error, published, summary, None)
    return {"status": "error", "result": published, "error": error, "budget_summary": summary}
