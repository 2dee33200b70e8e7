"""rlm as an MCP server: any agent explores a huge input through bounded tools, under one session budget.

``rlm mcp [--root DIR ...] [--cost USD] [--timeout S] [--max-result-chars N]`` (also ``python run.py mcp``)
serves the Model Context Protocol over stdio with the official ``mcp`` SDK, an optional extra
(``pip install "rlm[mcp]"``) imported here only. Its tools are a contract, named by clients, docs and
prompts: ``list_tasks``, ``describe``, ``search``, ``read``, ``check_task``, ``run_task`` and ``budget``.

What the server promises, whoever calls it:

* every tool result is one JSON text of at most ``--max-result-chars`` characters that says when it was
  cut and how to see the rest (a narrower range, pattern or ``start``);
* nothing outside the roots is read: a path is resolved (symlinks, ``..``) before the check, every file
  of a directory or glob is checked too, and task files must lie under a root;
* every run shares one session budget: a run reserves its whole cost limit (at most what the session
  has left) before it starts and settles to what it spent, so concurrent runs can never together spend
  more than ``--cost``; once it is spent a run is refused;
* a run's trace is written to the trace directory and read back as the resources
  ``rlm://runs/{id}/trace`` and ``rlm://runs/{id}/report``; the server writes nowhere else (but the
  response cache);
* an error is a tool error with a one-line message: never a traceback, never the API key;
* a client that goes away mid-run stops the run: its spend is kept and its trace ends with ``run_end``.

The tools call the library (``open_context`` and the ``context_*`` functions, ``run_task``,
``check_path``, ``discover_tasks`` / ``load_task``, ``render_report``); what is here is bounds, roots and
the session ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rlm._deps import missing_dependency
from rlm._exits import EXIT_COMPLETED, EXIT_INTERNAL, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE
from rlm.errors import (
    ConfigError,
    ContextAccessError,
    CostLimitError,
    InterruptError,
    RLMError,
    RuntimeLimitError,
)
from rlm.trace import redact

if TYPE_CHECKING:
    from rlm.context_access import Context
    from rlm.guards import GuardConfig, Run

__all__ = ["TOOL_NAMES", "DEFAULT_MAX_RESULT_CHARS", "MAX_HITS", "OutsideRootsError", "ToolInputError",
           "SessionBudgetError", "ServerSettings", "Session", "main"]

log = logging.getLogger(__name__)

#: The tools' names: a contract that clients, docs and prompts rely on.
TOOL_NAMES = ("list_tasks", "describe", "search", "read", "check_task", "run_task", "budget")
#: The default cap on every tool result, in characters.
DEFAULT_MAX_RESULT_CHARS = 8000
#: The most hits one search returns (a narrower pattern or range, or ``start``, shows more).
MAX_HITS = 200
#: A hit's line is shown up to this many characters, with the match in view.
_LINE_CHARS = 240
#: ``describe`` estimates lines from this much of the first file.
_SAMPLE_BYTES = 1 << 20
#: Files listed by ``describe`` (the count is always given).
_LISTED_FILES = 20
#: Open single-file contexts kept between calls, so a line number deep in a big file is counted once.
_KEPT_CONTEXTS = 8
#: A run stopped because its client went away gets this long to close its trace.
_STOP_GRACE_SECONDS = 5.0
_RUN_ID = re.compile(r"^[0-9a-f]{6,40}$")
_MIN_RUN_USD = Decimal("0.000001")


class OutsideRootsError(ContextAccessError):
    """A path resolves outside every ``--root``: ``path`` is what was asked, ``resolved`` where it leads."""

    def __init__(self, message: str, *, path: str, resolved: str, roots: tuple[str, ...]) -> None:
        super().__init__(message)
        self.path = path
        self.resolved = resolved
        self.roots = roots


class ToolInputError(ConfigError):
    """A tool argument was refused: ``argument`` names it, ``value`` is what was given."""

    def __init__(self, message: str, *, argument: str, value: object) -> None:
        super().__init__(message)
        self.argument = argument
        self.value = value


class SessionBudgetError(CostLimitError):
    """The session's budget is spent (or reserved by runs in flight): no new run can start."""


# -- settings and the session ledger ---------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """What ``rlm mcp`` was started with; resolved once, no I/O."""

    roots: tuple[Path, ...]
    session_budget_usd: Decimal
    run_timeout_seconds: float
    max_result_chars: int
    trace_dir: Path
    cache: bool = True
    model: str | None = None
    max_tokens_per_subcall: int | None = None
    max_output_tokens: int | None = None
    max_workers: int | None = None


@dataclass
class _RunEntry:
    run_id: str
    task: str
    path: str
    reserved: Decimal
    started: float
    status: str = "running"
    cost: Decimal = Decimal(0)
    run: Run | None = None
    stop_requested: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Session:
    """The session ledger: one budget in Decimal dollars, one lock, every run the session made.

    A run reserves its whole cost limit before it starts (``reserve``) and settles to its
    ``budget_summary.total_cost_usd`` when it ends (``settle``), so runs in flight can never
    together exceed the budget.
    """

    def __init__(self, budget: Decimal) -> None:
        self.budget = budget
        self.spent = Decimal(0)
        self.reserved = Decimal(0)
        self.runs: OrderedDict[str, _RunEntry] = OrderedDict()
        self._lock = threading.Lock()

    def remaining(self) -> Decimal:
        with self._lock:
            return max(self.budget - self.spent - self.reserved, Decimal(0))

    def reserve(self, wanted: Decimal, *, task: str, path: str, dry_run: bool) -> _RunEntry:
        """Reserve ``wanted`` dollars (at most what is left) for a new run, or refuse if nothing is left."""
        with self._lock:
            free = max(self.budget - self.spent - self.reserved, Decimal(0))
            if dry_run:  # a dry run spends nothing: it needs no reservation, only a limit to compare with
                amount = Decimal(0)
            elif free < _MIN_RUN_USD:
                raise SessionBudgetError(
                    f"The session budget of ${self.budget} is spent (${self.spent} spent, ${self.reserved} reserved "
                    "by runs in flight); no run can start. Restart the server with a larger --cost, or use "
                    "dry_run to preview.", needed_usd=float(wanted), remaining_usd=float(free),
                    budget_usd=float(self.budget))
            else:
                amount = min(wanted, free)
                self.reserved += amount
            entry = _RunEntry(run_id=uuid.uuid4().hex[:12], task=task, path=path, reserved=amount,
                              started=time.time())
            self.runs[entry.run_id] = entry
            return entry

    def rename(self, entry: _RunEntry, run_id: str) -> None:
        """Know a run by the id its trace gives it, once it has one."""
        with self._lock:
            self.runs.pop(entry.run_id, None)
            entry.run_id = run_id
            self.runs[run_id] = entry

    def settle(self, entry: _RunEntry, spent: Decimal, status: str) -> None:
        """End a run: release its reservation and count what it spent (even past the reservation)."""
        with self._lock:
            self.reserved -= entry.reserved
            self.spent += spent
            entry.reserved = Decimal(0)
            entry.cost = spent
            entry.status = status

    def summary(self, last: int = 20) -> dict[str, Any]:
        with self._lock:
            runs = list(self.runs.values())
            return {
                "budget_usd": float(self.budget),
                "spent_usd": float(self.spent),
                "reserved_usd": float(self.reserved),
                "remaining_usd": float(max(self.budget - self.spent - self.reserved, Decimal(0))),
                "runs": len(runs),
                "runs_in_flight": sum(1 for r in runs if r.status == "running"),
                "recent_runs": [{"run_id": r.run_id, "task": r.task, "path": r.path, "status": r.status,
                                 "cost_usd": float(r.cost)} for r in runs[-last:]],
                "recent_runs_cut": max(len(runs) - last, 0),
            }

    def stop_all(self, reason: str) -> None:
        """Stop every run in flight (the client went away) and wait, a little, for each to close its trace."""
        with self._lock:
            running = [e for e in self.runs.values() if e.status == "running"]
        for entry in running:
            _stop(entry, reason)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for entry in running:
            entry.done.wait(max(deadline - time.monotonic(), 0.0))


def _stop(entry: _RunEntry, reason: str) -> None:
    entry.stop_requested = True
    if entry.run is not None:
        entry.run.stop(InterruptError(f"Stopped: {reason}; no new call was started and calls in flight were "
                                      "abandoned (their cost is kept). Results published so far are kept.",
                                      signal_name="client-disconnect"))


# -- roots ---------------------------------------------------------------------------------------------


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _resolve(given: str, settings: ServerSettings, *, argument: str = "path") -> Path:
    """``given`` (relative to the first root) resolved through symlinks and ``..``, refused outside the roots."""
    if not isinstance(given, str) or not given.strip():
        raise ToolInputError(f"{argument} must be a non-empty path (got {given!r}).", argument=argument, value=given)
    if "\0" in given:
        raise ToolInputError(f"{argument} holds a NUL character.", argument=argument, value=given)
    raw = Path(os.path.expanduser(given))
    resolved = (raw if raw.is_absolute() else settings.roots[0] / raw).resolve(strict=False)
    if not _inside(resolved, settings.roots):
        shown = ", ".join(str(r) for r in settings.roots)
        raise OutsideRootsError(  # where it leads is not said: that is outside the roots too
            f"{given} is outside the server's roots ({shown}) once symlinks and '..' are resolved. Pass a path "
            "under a root, or restart the server with --root for that folder.",
            path=given, resolved=str(resolved), roots=tuple(str(r) for r in settings.roots))
    return resolved


def _check_files(context: Context, given: str, settings: ServerSettings) -> None:
    """Every file of a directory or glob must resolve under a root too (a symlink inside may lead out)."""
    info = context.describe()
    files = info.get("files")
    entries = [f for f in files if isinstance(f, dict)] if isinstance(files, list) else [info]
    for entry in entries:
        path, name = entry.get("path"), entry.get("name")
        if isinstance(path, str) and not _inside(Path(path).resolve(), settings.roots):
            shown = ", ".join(str(r) for r in settings.roots)
            raise OutsideRootsError(
                f"{given} holds {name}, a symlink that leads outside the server's roots ({shown}). Pass a path "
                "whose files all lie under a root.", path=given, resolved=path,
                roots=tuple(str(r) for r in settings.roots))


# -- bounded results -----------------------------------------------------------------------------------


def _text(payload: dict[str, Any]) -> str:
    return redact(json.dumps(payload, ensure_ascii=False, default=str))


def _fit_list(payload: dict[str, Any], key: str, cap: int, how_to_see_more: str,
              after_cut: Callable[[list[Any]], dict[str, Any]] | None = None) -> str:
    """``payload`` as JSON under ``cap`` characters, dropping items of ``payload[key]`` from the end if needed.

    ``after_cut(kept)`` gives fields to set once items were dropped (where to go on from, say).
    """
    items = list(payload[key])
    text = _text(payload)
    if len(text) <= cap:
        return text
    kept = len(items)
    while kept > 0:
        # Drop about as many items as the overflow needs, then check again (at least one each time).
        over = len(text) - cap
        average = max(len(text) // max(kept, 1), 1)
        kept = max(kept - max(over // average, 1), 0)
        trimmed = {**payload, key: items[:kept], "cut": True,
                   "cut_note": f"{len(items) - kept} more {key} not shown (the {cap}-character cap); "
                               f"{how_to_see_more}",
                   **(after_cut(items[:kept]) if after_cut is not None else {})}
        text = _text(trimmed)
        if len(text) <= cap:
            return text
    return _text({"cut": True, "cut_note": f"the result does not fit the {cap}-character cap; {how_to_see_more}"})


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


# -- the tools -------------------------------------------------------------------------------------------


class _Tools:
    """The tools' bodies: validate, call the library, bound the result. Each raises RLMError for a refusal."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.session = Session(settings.session_budget_usd)
        #: Why the server is stopping (a signal), once it is: the reason runs stopped then give.
        self.stopping: str | None = None
        self._contexts: OrderedDict[tuple[str, int, int], Context] = OrderedDict()
        self._contexts_lock = threading.Lock()

    @property
    def cap(self) -> int:
        return self.settings.max_result_chars

    # contexts ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _context(self, path: str) -> Any:
        """The context of ``path`` (checked against the roots); a single file's is kept for the next call."""
        from rlm.context_access import open_context

        resolved = _resolve(path, self.settings)
        if resolved.is_file():
            info = resolved.stat()
            key = (str(resolved), info.st_size, info.st_mtime_ns)
            with self._contexts_lock:
                context = self._contexts.get(key)
                if context is not None:
                    self._contexts.move_to_end(key)
            if context is None:
                opened = open_context(resolved, name=path)
                with self._contexts_lock:
                    context = self._contexts.setdefault(key, opened)  # another call may have opened it first
                    if context is not opened:
                        opened.close()
                    while len(self._contexts) > _KEPT_CONTEXTS:
                        _, old = self._contexts.popitem(last=False)
                        with contextlib.suppress(BufferError):
                            old.close()
            yield context
            return
        if not resolved.exists() and not set("*?[") & set(path):
            raise ContextAccessError(f"No such file or directory: {path}. Check the path (list a folder with "
                                     "describe).")
        context = open_context(resolved, name=path)
        try:
            _check_files(context, path, self.settings)
            yield context
        finally:
            with contextlib.suppress(BufferError):
                context.close()

    # list_tasks ------------------------------------------------------------------------------------------
    def list_tasks(self) -> str:
        from rlm.tasks import discover_tasks

        found = discover_tasks(self.settings.roots[0])
        tasks = [{"name": name, "parameters": info.parameters, "summary": _short(info.summary, 200),
                  "source": "built-in" if info.source == "built-in" else _relative(info.source, self.settings)}
                 for name, info in sorted(found.tasks.items())]
        payload: dict[str, Any] = {"tasks": tasks, "count": len(tasks),
                                   "usage": "run_task(path, task=NAME, params={...}); a task file of yours: "
                                            "task='path/to/file.py:function' (under a root)"}
        if found.broken:
            payload["broken"] = {_relative(k, self.settings): _short(v, 200) for k, v in found.broken.items()}
        return _fit_list(payload, "tasks", self.cap, "pass a task by name to check_task or run_task, or run "
                                                     "`rlm --list-tasks` in a shell")

    # describe ------------------------------------------------------------------------------------------
    def describe(self, path: str) -> str:
        from rlm.context_access import context_head

        with self._context(path) as ctx:
            spans = ctx.file_spans
            size = len(ctx)
            head = context_head(ctx, _SAMPLE_BYTES)
            sample = len(str(head).encode("utf-8", errors="surrogatepass")) if ctx.unit == "bytes" else len(head)
            newlines = head.count("\n")
            exact = len(spans) <= 1 and sample >= size
            lines = newlines + (1 if head and not head.endswith("\n") else 0) if exact else (
                round(size * newlines / sample) if sample else 0)
            payload: dict[str, Any] = {
                "path": path, "size": size, "unit": ctx.unit, "files": max(len(spans), 1),
                "lines": lines, "lines_exact": exact,
                "first_lines": [_short(line, 200) for line in str(head).splitlines()[:3]],
                "file_list": [{"file": name, "start": start, "size": end - start} for name, start, end in spans],
                "next": "search(path, pattern) finds lines; read(path, start, end) reads a span; "
                        "run_task(path, task) runs a task over it",
            }
            if not exact:
                payload["lines_estimated_from_bytes"] = sample
            if ctx.skipped:  # binary files, and links that lead out of the folder: left out, and named
                payload["skipped_files"] = len(ctx.skipped)
                payload["skipped"] = [_short(name, 200) for name in ctx.skipped[:5]]
            if len(spans) > _LISTED_FILES:
                payload["file_list"] = payload["file_list"][:_LISTED_FILES]
                payload["file_list_cut"] = f"{len(spans) - _LISTED_FILES} more files; describe a sub-folder to see them"
            return _fit_list(payload, "file_list", self.cap, "describe a sub-folder or one file")

    # search ----------------------------------------------------------------------------------------------
    def search(self, path: str, pattern: str, max_hits: int, start: int, end: int | None) -> str:
        from rlm.context_access import context_line, context_search

        _whole("max_hits", max_hits, 1, MAX_HITS)
        _whole("start", start, 0, None)
        if end is not None:
            _whole("end", end, start, None)
        if not isinstance(pattern, str) or not pattern:
            raise ToolInputError("pattern must be a non-empty regular expression (Python re syntax).",
                                 argument="pattern", value=pattern)
        with self._context(path) as ctx, self._deadline():
            try:
                found = context_search(ctx, pattern, max_hits + 1, start=start, end=end)
            except RuntimeLimitError as exc:
                limit = self.settings.run_timeout_seconds
                raise RuntimeLimitError(
                    f"The search ran past the server's {limit:g}s limit (--timeout) before it found {max_hits + 1} "
                    "hits: search a range (start/end) or a simpler, narrower pattern.", limit_seconds=limit) from exc
            more = len(found) > max_hits
            hits = []
            for m in found[:max_hits]:
                line = context_line(ctx, m.start, max_len=_LINE_CHARS)
                at = max(m.start - line.start, 0)
                text = str(line)
                if len(text) > _LINE_CHARS:  # keep the match in view
                    left = max(min(at - _LINE_CHARS // 4, len(text) - _LINE_CHARS), 0)
                    text = ("…" if left else "") + text[left:left + _LINE_CHARS] + "…"
                hit: dict[str, Any] = {"line": m.line, "span": [m.start, m.end], "text": text}
                if m.file is not None:
                    hit["file"] = m.file
                hits.append(hit)
            payload: dict[str, Any] = {"path": path, "pattern": pattern, "hits": hits, "count": len(hits)}
            if more:
                payload["more"] = True
                payload["next_start"] = found[max_hits - 1].end
                payload["more_note"] = (f"more than {max_hits} hits: search again with start={found[max_hits - 1].end}"
                                        ", or a narrower pattern or range")

            def go_on(kept: list[dict[str, Any]]) -> dict[str, Any]:
                resume = kept[-1]["span"][1] if kept else start
                return {"more": True, "next_start": resume, "count": len(kept),
                        "more_note": f"search again with start={resume}, or a narrower pattern or range"}

            return _fit_list(payload, "hits", self.cap, "search again from next_start with a smaller max_hits, or "
                             "with a narrower pattern or range", after_cut=go_on)

    @contextlib.contextmanager
    def _deadline(self) -> Any:
        """A search stops at the run timeout, like a run's (a scan of many GB, a pattern only `regex` can run)."""
        from rlm.guards import GuardConfig, init_guards

        config = GuardConfig(max_runtime_seconds=self.settings.run_timeout_seconds, dry_run=True, max_cost=1.0,
                             price_input_per_mtok=0.0, price_output_per_mtok=0.0, model="none")
        with init_guards(config):
            yield

    # read ----------------------------------------------------------------------------------------------
    def read(self, path: str, start: int, end: int | None) -> str:
        from rlm.context_access import context_slice

        _whole("start", start, 0, None)
        if end is not None:
            _whole("end", end, start, None)
        with self._context(path) as ctx:
            room = max(self.cap - 400, 100)
            stop = min(end if end is not None else start + room, start + room)
            for _ in range(4):
                chunk = context_slice(ctx, start, stop)
                payload: dict[str, Any] = {"path": path, "start": chunk.start, "end": chunk.end, "text": str(chunk)}
                if chunk.file is not None and len(ctx.file_spans) > 1:
                    payload["file"] = chunk.file
                wanted_end = min(end if end is not None else len(ctx), len(ctx))
                if chunk.end < wanted_end:
                    payload["cut"] = True
                    payload["next_start"] = chunk.end
                    payload["cut_note"] = (f"read up to {chunk.end} of the {wanted_end} asked for (the "
                                           f"{self.cap}-character cap, or the end of a file); read again with "
                                           f"start={chunk.end}")
                text = _text(payload)
                if len(text) <= self.cap:
                    return text
                stop = chunk.start + max((chunk.end - chunk.start) - (len(text) - self.cap) - 50, 1)
            return _text({"path": path, "cut": True,
                          "cut_note": f"text at {start} does not fit the cap escaped as JSON; read a smaller span"})

    # check_task ----------------------------------------------------------------------------------------
    def check_task(self, file: str) -> str:
        from rlm.check import check_path

        spec, function = _split_task(file)
        resolved = _resolve(spec, self.settings, argument="file")
        findings = check_path(str(resolved) + (f":{function}" if function else ""))
        items = [{"line": f.line, "col": f.col, "rule": f.rule, "code": f.code, "message": f.message, "fix": f.fix}
                 for f in findings]
        payload = {"file": file, "clean": not items, "findings": items, "count": len(items)}
        return _fit_list(payload, "findings", self.cap, "fix these first, or check one function (FILE.py:function)")

    # run_task ------------------------------------------------------------------------------------------
    def prepare_run(self, path: str, task: str, params: dict[str, Any] | None, cost: float | None,
                    timeout: float | None, dry_run: bool) -> tuple[_Run, _RunEntry]:
        """Everything that can be refused before a run: the input, the task, its parameters, the budget."""
        from rlm.context_access import open_context
        from rlm.guards import GuardConfig
        from rlm.runtime import bind_params
        from rlm.tasks import load_task

        if cost is not None:
            _positive("cost", cost)
        if timeout is not None:
            _positive("timeout", timeout)
        if params is not None and not isinstance(params, dict):
            raise ToolInputError("params must be an object of the task's parameters, e.g. {\"question\": \"...\"}.",
                                 argument="params", value=params)
        if not isinstance(task, str) or not task.strip():
            raise ToolInputError("task must be a task name (see list_tasks) or path/to/file.py:function.",
                                 argument="task", value=task)
        resolved = _resolve(path, self.settings)
        if not resolved.exists() and not set("*?[") & set(path):
            raise ContextAccessError(f"No such file or directory: {path}. Check the path.")
        spec, function = _split_task(task)
        if function is not None or spec.endswith(".py"):
            task_file = _resolve(spec, self.settings, argument="task")
            info = load_task(f"{task_file}:{function}" if function else str(task_file))
        else:
            info = load_task(task, cwd=self.settings.roots[0])
        params = dict(params or {})
        bind_params(info.function, params)
        warnings = self._warnings(info.function)
        limit = min(timeout or self.settings.run_timeout_seconds, self.settings.run_timeout_seconds)
        knobs: dict[str, Any] = {k: v for k, v in (("max_tokens_per_subcall", self.settings.max_tokens_per_subcall),
                                                   ("max_output_tokens", self.settings.max_output_tokens),
                                                   ("max_workers", self.settings.max_workers)) if v is not None}
        wanted = Decimal(str(cost)) if cost is not None else self.settings.session_budget_usd
        # The run reads the very context checked here: every file of a folder or glob lies under a root.
        context = open_context(resolved, name=path)
        entry: _RunEntry | None = None
        try:
            _check_files(context, path, self.settings)
            entry = self.session.reserve(wanted, task=task, path=path, dry_run=dry_run)
            left = self.session.remaining()
            # A dry run reserves nothing; its worst case is compared with what a real run could spend.
            budget = entry.reserved if not dry_run else (min(wanted, left) if left > 0 else wanted)
            self.settings.trace_dir.mkdir(parents=True, exist_ok=True)
            config = GuardConfig(
                max_cost=float(budget), max_runtime_seconds=limit, model=self.settings.model,
                trace_path=str(self.settings.trace_dir / f"{entry.run_id}.jsonl"), dry_run=dry_run,
                cache=self.settings.cache and not dry_run, **knobs)
        except BaseException:
            if entry is not None:
                self.session.settle(entry, Decimal(0), "refused")
                entry.done.set()
            context.close()
            raise
        return _Run(info.function, context, config, params, warnings), entry

    def _warnings(self, function: Callable[..., Any]) -> list[str]:
        """The checker's findings on the task, as the command line warns about them (at most five)."""
        import inspect

        from rlm.check import CheckError, check_path

        source = inspect.getsourcefile(function)
        if source is None:
            return []
        try:
            findings = check_path(f"{source}:{function.__name__}")
        except CheckError:
            return []
        return [_short(f"line {f.line}: {f.rule}: {f.message}", 300) for f in findings[:5]]

    def execute(self, prepared: _Run, entry: _RunEntry) -> dict[str, Any]:
        """Run the task (on this thread) and settle the session; the run registers itself so it can be stopped."""
        from rlm.guards import current_run
        from rlm.runtime import run_task

        task = prepared.function

        @functools.wraps(task)
        def registered(context: Any, *args: Any, **kwargs: Any) -> Any:
            entry.run = run = current_run()
            if run is not None and run.id != entry.run_id:
                # The run id the server returns is the trace's own (so `rlm report --run-id` knows it too);
                # the trace, open and written through its descriptor, takes that name.
                with contextlib.suppress(OSError):
                    trace = self.settings.trace_dir / f"{entry.run_id}.jsonl"
                    trace.rename(trace.with_name(f"{run.id}.jsonl"))
                    self.session.rename(entry, run.id)
            if entry.stop_requested:
                _stop(entry, "the MCP client cancelled the call or went away")
            return task(context, *args, **kwargs)

        result: dict[str, Any] = {"status": "error", "result": None, "error": "the run did not start",
                                  "budget_summary": None}
        try:
            result = run_task(registered, prepared.context, prepared.config, params=prepared.params)
        finally:
            with contextlib.suppress(BufferError):  # a task abandoned at its deadline may still be reading
                prepared.context.close()
            summary = result.get("budget_summary") or {}
            spent = Decimal(str(summary.get("total_cost_usd") or 0))
            self.session.settle(entry, spent, str(result.get("status")))
            entry.done.set()
        return result

    def run_result(self, result: dict[str, Any], entry: _RunEntry, warnings: list[str]) -> str:
        session = self.session.summary(last=0)
        payload: dict[str, Any] = {
            "run_id": entry.run_id, "status": result.get("status"), "error": result.get("error"),
            "result": result.get("result"), "budget_summary": result.get("budget_summary"),
            "session": {k: session[k] for k in ("budget_usd", "spent_usd", "remaining_usd")},
            "resources": {"trace": f"rlm://runs/{entry.run_id}/trace", "report": f"rlm://runs/{entry.run_id}/report"},
        }
        if warnings:
            payload["checker_warnings"] = warnings
        text = _text(payload)
        if len(text) <= self.cap:
            return text
        whole = _text({"result": payload["result"]})
        payload["budget_summary"] = {k: (payload["budget_summary"] or {}).get(k) for k in (
            "total_cost_usd", "cost_budget_usd", "total_calls", "elapsed_seconds", "guard_trips")}
        payload["result_cut"] = (f"the result is {len(whole)} characters, over the {self.cap}-character cap; the "
                                 f"whole result is in the run_end event of rlm://runs/{entry.run_id}/trace (and "
                                 f"in the report); a narrower task or input returns less")
        room = self.cap - len(_text({**payload, "result": ""})) - 20
        payload["result"] = _short(json.dumps(payload["result"], ensure_ascii=False, default=str), max(room, 0))
        text = _text(payload)
        return text if len(text) <= self.cap else _text({k: payload[k] for k in (
            "run_id", "status", "session", "resources", "result_cut")})

    # budget --------------------------------------------------------------------------------------------
    def budget(self) -> str:
        return _fit_list(self.session.summary(), "recent_runs", self.cap, "the totals above count every run")

    # resources -------------------------------------------------------------------------------------------
    def trace_path(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise ToolInputError(f"{run_id!r} is not a run id; run ids come from run_task.", argument="id",
                                 value=run_id)
        path = self.settings.trace_dir / f"{run_id}.jsonl"
        if not path.is_file():
            raise ContextAccessError(f"No trace of run {run_id} in {self.settings.trace_dir}; run ids come from "
                                     "run_task (see budget for this session's).")
        return path

    def report(self, run_id: str) -> str:
        from rlm.report import render_report

        trace = self.trace_path(run_id)
        out = trace.with_suffix(".html")
        render_report(trace, out)
        return out.read_text(encoding="utf-8")

    def close(self) -> None:
        with self._contexts_lock:
            for context in self._contexts.values():
                with contextlib.suppress(BufferError):
                    context.close()
            self._contexts.clear()


@dataclass(frozen=True)
class _Run:
    function: Callable[..., Any]
    context: Context
    config: GuardConfig
    params: dict[str, Any]
    warnings: list[str]


def _split_task(spec: str) -> tuple[str, str | None]:
    head, sep, function = spec.rpartition(":")
    if sep and head.endswith(".py") and function.isidentifier():
        return head, function
    return spec, None


def _relative(path: str, settings: ServerSettings) -> str:
    for root in settings.roots:
        with contextlib.suppress(ValueError):
            return str(Path(path).resolve().relative_to(root))
    return path


def _whole(name: str, value: object, lowest: int, highest: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest or (highest is not None
                                                                                    and value > highest):
        span = f"between {lowest} and {highest}" if highest is not None else f"{lowest} or more"
        raise ToolInputError(f"{name} must be a whole number {span} (got {value!r}).", argument=name, value=value)


def _positive(name: str, value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ToolInputError(f"{name} must be a number above 0 (got {value!r}).", argument=name, value=value)


# -- the MCP layer (the SDK is imported here only) ----------------------------------------------------------


def _build(tools: _Tools) -> Any:
    """The MCP server: the SDK's MCPServer with our seven tools and two resource templates."""
    import anyio
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
    from pydantic import ValidationError

    def refused(exc: BaseException) -> ToolError:
        if isinstance(exc, RLMError):
            return ToolError(_one_line(str(exc)))
        log.debug("tool failed", exc_info=exc)
        return ToolError(_one_line(f"internal error: {type(exc).__name__}: {exc}. Please report it."))

    def tool(body: Callable[..., str]) -> Callable[..., Awaitable[str]]:
        async def call(*args: Any, **kwargs: Any) -> str:
            try:
                return await anyio.to_thread.run_sync(functools.partial(body, *args, **kwargs))
            except ToolError:
                raise
            except Exception as exc:
                raise refused(exc) from exc
        return call

    class Server(MCPServer[Any]):
        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:  # the SDK's own messages (bad arguments) on one line too
                cause = exc.__cause__
                if isinstance(cause, ValidationError):
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                        + (f" (got {_short(repr(err.get('input')), 40)})" if err["type"] != "missing" else "")
                        for err in cause.errors()[:5])
                    raise ToolError(_one_line(f"Invalid arguments for {name}: {problems}.")) from cause
                raise ToolError(_one_line(str(exc))) from exc.__cause__

    server = Server("rlm", instructions=(
        "Explore huge files without reading them whole: describe a path, search it with a regex, read a span, "
        "then run_task for questions that need a model over many bounded chunks, under one session budget. "
        "Every result is capped; when cut it says how to see the rest."), log_level="WARNING")

    async def list_tasks() -> str:
        """The tasks run_task can run: name, parameters, one-line summary."""
        return await tool(tools.list_tasks)()

    async def describe(path: str) -> str:
        """Size, unit (bytes for files), files, line count or estimate, and the first lines of a file,
        directory or glob under the server's roots."""
        return await tool(tools.describe)(path)

    async def search(path: str, pattern: str, max_hits: int = 20, start: int = 0, end: int | None = None) -> str:
        """Regex (Python re syntax) matches in order: file, line, span and the line's text. At most max_hits
        (up to 200); start/end (positions from describe or earlier hits) search one range."""
        return await tool(tools.search)(path, pattern, max_hits, start, end)

    async def read(path: str, start: int = 0, end: int | None = None) -> str:
        """The text between positions start and end (bytes for files), cut to the result cap; a cut result says
        where to read on."""
        return await tool(tools.read)(path, start, end)

    async def check_task(file: str) -> str:
        """Check a task file (path/to/file.py or file.py:function, under a root) against the four rules,
        without running it."""
        return await tool(tools.check_task)(file)

    async def run_task(path: str, task: str = "analyze_document", params: dict[str, Any] | None = None,
                       cost: float | None = None, timeout: float | None = None, dry_run: bool = False) -> str:
        """Run an rlm task over path under hard limits: its JSON result, budget_summary and run id. cost (USD)
        is at most what the session has left (default: all of it); timeout is at most the server's; dry_run
        calls no model and reports the worst-case cost."""
        try:
            prepared, entry = await anyio.to_thread.run_sync(
                functools.partial(tools.prepare_run, path, task, params, cost, timeout, dry_run))
        except Exception as exc:
            raise refused(exc) from exc
        try:
            result = await anyio.to_thread.run_sync(functools.partial(tools.execute, prepared, entry),
                                                    abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            # The client cancelled the call or went away (or the server is stopping): stop the run, let it
            # close its trace.
            _stop(entry, tools.stopping or "the MCP client cancelled the call or went away")
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(entry.done.wait, _STOP_GRACE_SECONDS)
            raise
        except Exception as exc:
            raise refused(exc) from exc
        return tools.run_result(result, entry, prepared.warnings)

    async def budget() -> str:
        """The session's budget: spent, reserved by runs in flight, remaining, and its runs."""
        return await tool(tools.budget)()

    for fn in (list_tasks, describe, search, read, check_task, run_task, budget):
        server.add_tool(fn, structured_output=False)

    def resource_body(body: Callable[[str], str]) -> Callable[[str], Any]:
        async def read_it(id: str) -> str:  # noqa: A002 - the template's variable is {id}
            try:
                return await anyio.to_thread.run_sync(body, id)
            except (ToolInputError, ContextAccessError) as exc:
                raise ResourceNotFoundError(_one_line(str(exc))) from exc
            except RLMError as exc:
                raise ResourceError(_one_line(str(exc))) from exc
        return read_it

    def trace_text(run_id: str) -> str:
        return tools.trace_path(run_id).read_text(encoding="utf-8", errors="replace")

    server.resource("rlm://runs/{id}/trace", name="run_trace", mime_type="application/jsonl",
                    description="A run's JSONL audit trail (every access, subcall, guard trip and run_end)")(
        resource_body(trace_text))
    server.resource("rlm://runs/{id}/report", name="run_report", mime_type="text/html",
                    description="A run's self-contained HTML audit report, drawn from its trace")(
        resource_body(tools.report))
    return server


def _one_line(text: str) -> str:
    return redact(" ".join(text.split()))


# -- the command line ------------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see rlm mcp --help)")


def _number(flag: str, kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a number above 0 (got {text!r})")
        return value
    return parse


def _parser() -> _Parser:
    p = _Parser(prog="rlm mcp", description=(
        "Serve rlm's bounded tools over MCP (stdio): list_tasks, describe, search, read, check_task, run_task, "
        "budget. Model settings come from the environment and .env, as for `rlm`."))
    p.add_argument("--root", action="append", default=[], metavar="DIR",
                   help="a folder the tools may read (repeatable; default: the current directory)")
    p.add_argument("--cost", type=_number("--cost", float), metavar="USD",
                   help="the session budget in USD, shared by every run (env RLM_MAX_COST, default 0.50)")
    p.add_argument("--timeout", type=_number("--timeout", float), metavar="S",
                   help="the runtime limit of each run and search, in seconds (env RLM_MAX_RUNTIME, default 60)")
    p.add_argument("--max-result-chars", type=_number("--max-result-chars", int), default=DEFAULT_MAX_RESULT_CHARS,
                   metavar="N",
                   help=f"the cap on every tool result, in characters (default {DEFAULT_MAX_RESULT_CHARS})")
    p.add_argument("--trace-dir", metavar="DIR",
                   help="where run traces and reports go (default: mcp-runs/ in the cache directory)")
    p.add_argument("--model", help="model name (env RLM_MODEL)")
    p.add_argument("--tokens", type=_number("--tokens", int), help="max request tokens per subcall (default 4000)")
    p.add_argument("--output-tokens", type=_number("--output-tokens", int),
                   help="max answer tokens per subcall (default 1024)")
    p.add_argument("--workers", type=_number("--workers", int), help="parallel subcalls per run at most (default 8)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    return p


def _settings(argv: Sequence[str]) -> ServerSettings:
    from rlm._config import GuardConfig, default_cache_dir, load_dotenv_file
    from rlm.cache import expand_path

    load_dotenv_file()  # the real environment wins over .env
    args = _parser().parse_args(list(argv))
    roots = []
    for given in args.root or [os.getcwd()]:
        root = expand_path(given).resolve()
        if not root.is_dir():
            raise _UsageError(f"--root {given} is not a directory; pass folders the tools may read.")
        roots.append(root)
    probe = GuardConfig(max_cost=args.cost, max_runtime_seconds=args.timeout, model=args.model)  # env and checks
    if args.max_result_chars < 1000:
        raise _UsageError(f"--max-result-chars must be at least 1000 (got {args.max_result_chars}).")
    trace_dir = expand_path(args.trace_dir) if args.trace_dir else default_cache_dir() / "mcp-runs"
    return ServerSettings(
        roots=tuple(roots), session_budget_usd=Decimal(str(probe.max_cost)),
        run_timeout_seconds=float(probe.max_runtime_seconds or 60), max_result_chars=args.max_result_chars,
        trace_dir=trace_dir.resolve(), cache=not args.no_cache, model=args.model,
        max_tokens_per_subcall=args.tokens, max_output_tokens=args.output_tokens, max_workers=args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    """``rlm mcp ...``: serve until the client closes stdin; the exit code (``rlm._exits``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        _parser().print_help()
        return EXIT_COMPLETED
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ModuleNotFoundError as exc:  # the extra is not installed: one line naming `pip install "rlm[mcp]"`
        print(f"rlm mcp: error: {missing_dependency(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = _settings(args)
    except (_UsageError, RLMError) as exc:
        print(f"rlm mcp: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    # Task files under the roots are imported: no __pycache__ beside them (the server writes only to its trace
    # directory and the response cache).
    sys.dont_write_bytecode = True
    tools = _Tools(settings)
    try:
        server = _build(tools)
        def terminated(signum: int, frame: object) -> None:
            tools.stopping = "the MCP server was stopped (SIGTERM)"
            raise _Terminated()

        previous = signal.signal(signal.SIGTERM, terminated) if _main_thread() else None
        try:
            server.run("stdio")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt as stop:  # SIGTERM or Ctrl-C: stop the runs, close their traces, and leave now
        tools.session.stop_all(tools.stopping or "the MCP server was stopped")
        tools.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # The SDK's stdin reader may still block on a pipe the client left open; nothing else is pending.
        os._exit(EXIT_SIGTERM if isinstance(stop, _Terminated) else EXIT_SIGINT)
    except Exception as exc:  # a bug of ours: one line, never a traceback
        print(f"rlm mcp: internal error: {_one_line(f'{type(exc).__name__}: {exc}')}. Please report it.",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        tools.session.stop_all("the MCP client went away")
        tools.close()
    return EXIT_COMPLETED


class _Terminated(KeyboardInterrupt):  # noqa: N818 - it stands for a KeyboardInterrupt
    """SIGTERM, raised like Ctrl-C so the runs in flight are stopped and their traces closed."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
