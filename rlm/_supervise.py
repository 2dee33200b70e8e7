"""A hard stop for a run stuck where no thread can interrupt it: the task loads and runs in a child process.

``run_task`` stops a task at its deadline from another thread, which works for
Python code and for calls blocked in I/O, but not for C code that holds the
GIL (a catastrophic ``re.match`` of the task's own, a C extension): no other
thread runs until it returns. The command line therefore runs the task in a
child process and waits in the parent, which holds no GIL of the child's.

The child is forked from multiprocessing's fork server, a fresh interpreter
started once per process: it starts clean whatever threads the parent holds
(a task module that starts a thread on import, a test's server), and it loads
the task itself, by its name. It runs in a session of its own, so that at the
end of the run (normal, limit, kill, signal) the parent kills the whole group:
nothing the task started (a subprocess that keeps stdout open) outlives it.

The child reports after every reservation and every subcall (what the task
published, the budget summary, the trace's position) and sends its result at
the end; if it is not done by the limit plus a grace period, the parent kills
it and reports the run from the last checkpoint: the partial result, the
spend (calls in flight kept as spent, as the ledger would), the real elapsed
time, and a closed trace.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any

from rlm import errors
from rlm.errors import RLMError
from rlm.guards import GuardConfig
from rlm.runtime import unstarted_result
from rlm.trace import TraceWriter

__all__ = ["supervise", "Channel", "KILL_GRACE_SECONDS", "STOP_GRACE_SECONDS"]

#: After the runtime limit, the child gets this long to report by itself before it is killed.
KILL_GRACE_SECONDS = 1.0
#: A stopped child gets this long to report its partial result before it is killed.
STOP_GRACE_SECONDS = 1.0
#: Until the child says when its run started (the task's module is imported first), the parent allows this much more.
_STARTUP_SECONDS = 30.0
#: A child that sent its result gets this long to exit by itself before its group is killed.
_EXIT_SECONDS = 2.0
_SIGNAL_NAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Channel:
    """The child's side of the pipe to the parent: checkpoints, notices for stderr, and the outcome."""

    def __init__(self, connection: multiprocessing.connection.Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # parallel subcalls checkpoint from several threads

    def checkpoint(self, payload: dict[str, Any]) -> None:
        """What the run has so far: the parent reports the run from the last one if it must kill the child."""
        self._send({"kind": "checkpoint", **payload})

    def notice(self, text: str) -> None:
        """A line for the user's stderr (a warning), printed by the parent."""
        self._send({"kind": "notice", "text": text})

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str).encode()
        with self._lock:
            self._connection.send_bytes(data)


#: ``work(job, channel)`` runs in the child and returns a run_task result; it must be a module-level function.
Work = Callable[[Any, Channel], dict[str, Any]]


def supervise(work: Work, job: Any, config: GuardConfig, *,
              progress: Callable[[dict[str, Any]], None] | None = None,
              notice: Callable[[str], None] | None = None, pending: list[int] | None = None) -> dict[str, Any]:
    """Run ``work(job, channel)`` in a clean child process so that it ends by ``config``'s limit plus 1 s.

    ``job`` must pickle (it names the task; the child loads it). ``progress`` gets the budget summary after
    every subcall, ``notice`` the child's warnings. SIGINT and SIGTERM received meanwhile stop the run: the
    child gets one second to report its partial result (a second Ctrl-C ends it at once); the result then
    carries ``"signal"``. ``pending`` holds the signals received already (the run then stops before its task
    starts); those received while it waits are added to it. Raises the RLMError the child raised before its
    task ran.
    """
    context = _context([work.__module__, *([] if config.dry_run else ["openai"])])
    ours, theirs = context.Pipe(duplex=True)
    # Descriptors pass over the pipe on POSIX only; elsewhere the child keeps its own stdio.
    stdio = tuple(_fileno(stream) if os.name == "posix" else None for stream in (sys.stdout, sys.stderr))
    sys.stdout.flush()
    sys.stderr.flush()
    # From before the child exists: no signal goes unanswered.
    with _signal_pipe(pending if pending is not None else []) as (wake_r, pending):
        process = context.Process(target=_child, name="rlm-task",
                                  args=(work, job, theirs, dict(os.environ), tuple(fd is not None for fd in stdio)))
        with _main_module_hidden():
            process.start()
        theirs.close()
        watch = _Watch(process, ours, config, time.monotonic())
        try:
            for fd in stdio:
                if fd is not None:
                    with contextlib.suppress(OSError):  # the child is gone already: the wait reports it
                        send_handle(ours, fd, process.pid)
            return watch.wait(wake_r, pending, progress, notice)
        finally:
            _end(process, gently=watch.reported)
            ours.close()


def _context(preload: list[str]) -> ForkServerContext | SpawnContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # Windows: a fresh interpreter per run
    context = multiprocessing.get_context("forkserver")
    # Imported once, by the fork server, rather than by every child (the SDK's import takes a second).
    # Ignored once the server runs.
    context.set_forkserver_preload(preload)
    _start_server_without_stdio()
    return context


def _start_server_without_stdio() -> None:
    """Start the fork server (if it is not running) with /dev/null for stdout and stderr.

    It lives as long as this process and exits after it: holding this process's stdout, it would keep a
    pipeline (``rlm ... | jq``) open until then. Children get this process's stdout and stderr themselves.
    """
    from multiprocessing import forkserver

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved: dict[int, int] = {}
    streams = sys.stdout, sys.stderr
    quiet = open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):  # a closed descriptor stays closed
                saved[fd] = os.dup(fd)
                os.dup2(devnull, fd)
        # The resource tracker, started with it, keeps whatever sys.stderr is (a terminal a test opened, say).
        sys.stdout = sys.stderr = quiet
        forkserver.ensure_running()  # the server gets these descriptors when it starts, not later
    finally:
        sys.stdout, sys.stderr = streams
        quiet.close()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start the child without multiprocessing's habit of running the parent's main script again in it.

    The child needs nothing of the script that called the command line, and a script that calls it without
    an ``if __name__ == "__main__":`` guard would run its whole self again there (and in the fork server).
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__ and no __spec__: nothing to re-run
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):  # a stream with no descriptor (a test's capture)
        return None


def _child(work: Work, job: Any, connection: multiprocessing.connection.Connection, environ: dict[str, str],
           stdio: tuple[bool, bool]) -> None:
    """The child: a session of its own, the parent's stdio and environment, then the work; it leaves at once."""
    if hasattr(os, "setsid"):
        os.setsid()
    _die_with_parent()
    for wanted, target in zip(stdio, (1, 2)):
        if wanted:
            fd = recv_handle(connection)
            os.dup2(fd, target)
            os.close(fd)
    if os.name == "posix":
        _watch_the_command(connection)
    os.environ.clear()
    os.environ.update(environ)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    channel = Channel(connection)
    code = 0
    try:
        try:
            result = work(job, channel)
        except RLMError as exc:  # refused before the task ran (a bad config, an unwritable trace)
            channel._send({"kind": "raised", "type": type(exc).__name__, "message": str(exc)})
        else:
            channel._send({"kind": "result", "result": result})
    except BaseException:  # the parent reports what the last checkpoint said
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # no exit handlers: they would wait for the task's abandoned threads


def _die_with_parent() -> None:
    """End this child when the process that started it ends, however it ends (even SIGKILL): no orphan spends.

    The fork server is the parent here, and it exits as soon as the command line does.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent was gone before the request took hold
        os._exit(1)


def _watch_the_command(connection: multiprocessing.connection.Connection) -> None:
    """End this child's group as soon as the command line is gone (killed, say): it sends nothing more after
    the descriptors, so the pipe reads as ready only at its end. (A task stuck in C holds up this thread; the
    fork server's exit ends the child then, a moment later.)"""

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            select.select([connection.fileno()], [], [])
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="rlm-lifeline", daemon=True).start()


@contextlib.contextmanager
def _signal_pipe(pending: list[int]) -> Iterator[tuple[int, list[int]]]:
    """While the parent waits, SIGINT and SIGTERM are noted in ``pending`` and wake its wait (a self-pipe)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
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


def _end(process: BaseProcess, *, gently: bool) -> None:
    """Kill the child's whole group (what the task started too); a child that reported gets a moment to exit."""
    if gently:
        process.join(_EXIT_SECONDS)
    pid = process.pid
    if pid is not None and not hasattr(os, "killpg"):
        process.kill()
    elif pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # not yet its own group (killed while starting), or nothing is left of it
            with contextlib.suppress(ProcessLookupError):
                if process.exitcode is None:
                    os.kill(pid, signal.SIGKILL)
        except PermissionError:
            pass
    process.join()


class _Watch:
    """The parent's view of one child: what it reported last, and when it must be killed."""

    def __init__(self, process: BaseProcess, connection: multiprocessing.connection.Connection,
                 config: GuardConfig, started: float) -> None:
        self.process = process
        self.connection = connection
        self.config = config
        self.kill_at = started + _STARTUP_SECONDS + config.max_runtime_seconds + KILL_GRACE_SECONDS
        self.last: dict[str, Any] = {}
        self.published: Any = None
        self.stopped: int | None = None  # the signal that stopped the run, if one did
        self.reported = False
        self.mapped_files: list[tuple[str, int]] = []  # (path, bytes) the child maps, from its first checkpoint

    def wait(self, wake_r: int, pending: list[int], progress: Callable[[dict[str, Any]], None] | None,
             notice: Callable[[str], None] | None) -> dict[str, Any]:
        sentinel = self.process.sentinel
        while True:
            while pending:
                outcome = self._on_signal(pending.pop(0))
                if outcome is not None:
                    return outcome
            timeout = self.kill_at - time.monotonic()
            if timeout <= 0:
                return self._kill()
            ready = multiprocessing.connection.wait([self.connection, sentinel, wake_r], timeout)
            if wake_r in ready:
                os.read(wake_r, 1024)
            gone = False
            while self.connection.poll():
                try:
                    message = json.loads(self.connection.recv_bytes())
                except (EOFError, OSError):  # the child is gone: its end of the pipe is closed (EOF stays readable)
                    gone = True
                    break
                outcome = self._on_message(message, progress, notice)
                if outcome is not None:
                    return outcome
            if gone or (sentinel in ready and not self.connection.poll()):
                return self._died()

    def _on_signal(self, signum: int) -> dict[str, Any] | None:
        if not self.last:  # the task has not started: nothing to wait for
            self.stopped = signum
            _end(self.process, gently=False)
            name = _SIGNAL_NAMES.get(signum, str(signum))
            return {**unstarted_result(self.config, f"InterruptError: Stopped by {name} while the task was "
                                                    "loading, before it started; nothing was run or spent."),
                    "signal": name}
        if self.stopped is not None and signum == signal.SIGINT:  # a second Ctrl-C: end at once
            return self._kill(second=True)
        if self.stopped is None:
            self.stopped = signum
            # The child runs in a session of its own: a terminal's Ctrl-C reaches only this process.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid or 0, signum)
            self.kill_at = min(self.kill_at, time.monotonic() + STOP_GRACE_SECONDS)
        return None

    def _on_message(self, message: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None,
                    notice: Callable[[str], None] | None) -> dict[str, Any] | None:
        kind = message.get("kind")
        if kind == "result":
            self.reported = True
            return message["result"]  # type: ignore[no-any-return]
        if kind == "raised":
            self.reported = True
            raised = getattr(errors, str(message.get("type")), RLMError)
            if not (isinstance(raised, type) and issubclass(raised, RLMError)):
                raised = RLMError
            raise raised(str(message.get("message")))
        if kind == "notice":
            if notice is not None:
                notice(str(message.get("text")))
            return None
        self.last = message
        self.mapped_files = message.get("mapped_files", self.mapped_files)
        self.published = message.get("result", self.published)
        if self.stopped is None and isinstance(message.get("deadline_monotonic"), (int, float)):
            # CLOCK_MONOTONIC is one clock for every process of the machine.
            self.kill_at = float(message["deadline_monotonic"]) + KILL_GRACE_SECONDS
        if progress is not None and message.get("event") == "subcall" and message.get("budget_summary"):
            progress(message["budget_summary"])
        return None

    def _died(self) -> dict[str, Any]:
        self.process.join()
        exitcode = self.process.exitcode
        how = (f"signal {-exitcode}" if exitcode is not None and exitcode < 0
               else f"exit code {exitcode}" if exitcode is not None else "an unknown status")
        error = (f"TaskError: the task's process ended unexpectedly ({how}) before it returned; "
                 "results published up to its last subcall are kept.")
        if exitcode == -signal.SIGBUS and self.last:
            return self._changed_under_the_reader()
        if not self.last:
            return unstarted_result(self.config, error, status="error")
        if self.stopped is not None:  # a signal to the whole group (kill -TERM -PGID) ends the fork server too
            return _interrupted(self.last, self.published, self.config.trace_path, self.stopped, time.monotonic(),
                                _ENDED_TOO)
        summary = _final_summary(self.last, time.monotonic())
        _close_trace(self.last, self.config.trace_path, "error", error, self.published, summary, None)
        return {"status": "error", "result": self.published, "error": error, "budget_summary": summary}

    def _changed_under_the_reader(self) -> dict[str, Any]:
        """A mapped file shrank while the task read it (logrotate's copytruncate): the fault ends the child, not
        rlm; the run is reported partial from its last checkpoint, naming the file."""
        shrunk = []
        for path, length in self.mapped_files:
            try:
                now = os.stat(path).st_size
            except OSError:
                now = 0
            if now < length:
                shrunk.append(f"{path} ({length:,} bytes when opened, {now:,} now)")
        which = ", ".join(shrunk[:3]) if shrunk else "an input file"
        error = (f"ContextAccessError: {which} was truncated while it was read (logrotate's copytruncate does "
                 "this), so reading it stopped. Results published up to the last subcall are kept; copy the file "
                 "first, or read the rotated copy.")
        summary = _final_summary(self.last, time.monotonic())
        _close_trace(self.last, self.config.trace_path, "partial", error, self.published, summary, None)
        return {"status": "partial", "result": self.published, "error": error, "budget_summary": summary}

    def _kill(self, *, second: bool = False) -> dict[str, Any]:
        killed_at = time.monotonic()
        _end(self.process, gently=False)
        if not self.last:
            return unstarted_result(self.config, (
                f"RuntimeLimitError: The task did not even start within {_STARTUP_SECONDS + KILL_GRACE_SECONDS:g}s "
                f"plus its {self.config.max_runtime_seconds:g}s limit (its module took that long to import), so "
                "its process was killed; nothing was run or spent."), status="partial")
        if self.stopped is not None:
            return _interrupted(self.last, self.published, self.config.trace_path, self.stopped, killed_at,
                                _SECOND_CTRL_C if second else _GRACE_EXPIRED)
        return _killed(self.last, self.published, self.config.trace_path, killed_at)


_GRACE_EXPIRED = (f"it did not stop by itself within the {STOP_GRACE_SECONDS:g}s grace period (stuck in code "
                  "that cannot be interrupted), so its process was killed")
_SECOND_CTRL_C = "a second Ctrl-C ended it at once, so its process was killed"
_ENDED_TOO = "its process ended before it reported (the signal reached the processes that serve it too)"


def _interrupted(last: dict[str, Any], published: Any, trace_path: str | None, signum: int, killed_at: float,
                 how: str) -> dict[str, Any]:
    """The result of a run stopped by a signal whose process did not report, from its last checkpoint."""
    name = _SIGNAL_NAMES.get(signum, str(signum))
    summary = _final_summary(last, killed_at)
    error = f"InterruptError: Stopped by {name}; {how}. Results published up to its last subcall are kept."
    if summary is not None and "interrupt" not in summary.get("guard_trips", []):
        summary["guard_trips"] = [*summary.get("guard_trips", []), "interrupt"]
    _close_trace(last, trace_path, "partial", error, published, summary, None)
    return {"status": "partial", "result": published, "error": error, "budget_summary": summary,
            "signal": name}


def _final_summary(last: dict[str, Any], killed_at: float) -> dict[str, Any] | None:
    """The last budget summary with the calls in flight counted as spent (the provider may bill them), and
    the run's real elapsed time up to the kill."""
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
    started = last.get("started_monotonic")
    if isinstance(started, (int, float)):
        summary["elapsed_seconds"] = round(killed_at - float(started), 3)
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


def _killed(last: dict[str, Any], published: Any, trace_path: str | None, killed_at: float) -> dict[str, Any]:
    summary = _final_summary(last, killed_at)
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


