"""Run a task under its guards and always come back with a result.

``run_task`` runs the task function on its own thread with a fresh
:class:`~rlm.guards.Run` and returns ``{"status", "result", "error",
"budget_summary"}``: ``completed``; ``partial`` when the cost or runtime limit
halted the task (``result`` then holds what the task published with
:func:`publish`); ``error`` for anything else. It returns within the runtime
limit plus half a second even if the task is stuck in pure Python.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import dataclasses
import inspect
import os
import sysconfig
import threading
import traceback
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from rlm.context_access import Chunk, Context, ContextSource, Match, open_context
from rlm.errors import (
    ConfigError,
    CostLimitError,
    GuardError,
    InterruptError,
    RLMError,
    RunInterrupted,
    RuntimeLimitError,
    TaskError,
)
from rlm.guards import GuardConfig, Run, current_run, run_of_this_thread
from rlm.trace import redact

__all__ = ["run_task", "TaskBuilder", "publish", "bind_params", "describe_parameters", "task_signature",
           "task_source_sha256", "unstarted_result", "TaskFn"]

TaskFn = Callable[[Context], Any]
V = TypeVar("V")

# After the deadline, a task gets this long to unwind by itself, then this long
# after an exception is raised inside it; the sum stays under the 0.5 s promise.
_UNWIND_SECONDS = 0.25
_INTERRUPT_SECONDS = 0.15
_PARTIAL_LIMITS = (CostLimitError, RuntimeLimitError, InterruptError)


def publish(name: str, value: V) -> V:
    """Register ``value`` (typically a list or dict the task keeps filling) as partial result ``name``.

    If a cost or runtime limit halts the task, ``run_task`` returns
    ``{"status": "partial", "result": {name: <value as it was>, ...}}``, so work
    done before the limit is never lost. Returns ``value`` for chaining:
    ``findings = publish("findings", [])``. Outside a run it does nothing.
    """
    run = run_of_this_thread()
    if run is not None:
        run.publish(name, value)
    return value


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of a task's result (matches, chunks, decimals and dataclasses included)."""
    if depth > 50:
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Chunk):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Match):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in list(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in list(value)]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v, depth + 1) for v in list(value)), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), depth + 1)
    return str(value)


def _snapshot(published: dict[str, Any]) -> dict[str, Any] | None:
    """Copy what the task published; it may still be mutating it on an abandoned thread."""
    if not published:
        return None
    for _ in range(5):
        try:
            return {name: _jsonable(value) for name, value in list(published.items())}
        except RuntimeError:  # changed size during iteration: try again
            continue
    return {name: "<unreadable: still changing>" for name in published}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return redact(f"{type(exc).__name__}: {text}")


_LIBRARY = os.path.dirname(os.path.abspath(__file__))
_BUILTIN_TASKS = os.path.join(_LIBRARY, "tasks")
_PYTHON = tuple({os.path.abspath(p) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                             sysconfig.get_paths()["platlib"])})


def _where(exc: BaseException) -> str:
    """`` (at tasks/x.py:12 in my_task)``: the innermost frame of the task's own code that raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        builtin_task = path.startswith(_BUILTIN_TASKS + os.sep)  # a task's own code, even when installed
        inside_library = path.startswith(_LIBRARY + os.sep) and not builtin_task
        if builtin_task or (not inside_library and not path.startswith(_PYTHON)):
            try:
                shown = os.path.relpath(path)
            except ValueError:  # another drive (Windows)
                shown = path
            # Inside the working directory: a short relative path; anywhere else: the absolute one.
            if shown.startswith(os.pardir):
                shown = path
            return f" (at {shown}:{frame.lineno} in {frame.name})"
    return ""


def task_source_sha256(task_fn: Callable[..., Any]) -> str | None:
    """The SHA-256 of the source of the module that defines the task (None when Python cannot read it)."""
    import hashlib

    target = inspect.unwrap(getattr(task_fn, "func", task_fn))  # functools.partial too
    try:
        module = inspect.getmodule(target)
        source = inspect.getsource(module) if module is not None else inspect.getsource(target)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode("utf-8", errors="surrogatepass")).hexdigest()


def task_signature(task_fn: Callable[..., Any]) -> inspect.Signature | None:
    """The task's signature with its annotations evaluated (as written when they cannot be), or None."""
    try:
        return inspect.signature(task_fn, eval_str=True)
    except (NameError, TypeError, ValueError):
        try:
            return inspect.signature(task_fn)
        except (TypeError, ValueError):
            return None


def describe_parameters(task_fn: Callable[..., Any]) -> str:
    """The task's own parameters (after the context) as a call signature: ``(question: str, max_windows=8)``."""
    signature = task_signature(task_fn)
    if signature is None:
        return "(...)"
    params = list(signature.parameters.values())[1:]
    return "(" + ", ".join(str(p).replace("'", "") if isinstance(p.annotation, str) else str(p)
                           for p in params) + ")"


_SIMPLE_TYPES: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,),
                                              list: (list,), dict: (dict,)}


def bind_params(task_fn: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """Check that ``params`` are exactly what ``task_fn`` takes after the context, of the types it says.

    Raises TaskError naming the task's signature; only plain annotations (``int``, ``float``, ``str``,
    ``bool``, ``list[...]``, ``dict[...]``) are checked.
    """
    signature = task_signature(task_fn)
    if signature is None:
        return
    name = getattr(task_fn, "__name__", "task")
    shown = describe_parameters(task_fn)
    try:
        signature.bind(None, **params)
    except TypeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"
        raise TaskError(
            f"Task {name} takes the context and then {shown}; the parameters given ({given}) do not fit: {exc}. "
            "Pass each with --param NAME=VALUE (run_task(..., params={...}))."
        ) from None
    for key, value in params.items():
        annotation = signature.parameters[key].annotation if key in signature.parameters else None
        expected = _SIMPLE_TYPES.get(getattr(annotation, "__origin__", annotation))
        if expected is None or isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected):
            continue
        kind = getattr(annotation, "__name__", str(annotation))
        raise TaskError(f"Parameter {key} of task {name} must be {kind} (got {value!r}); its signature is {shown}.")


class _Interrupted(RuntimeLimitError):
    """Raised asynchronously inside a task that outlived its deadline in Python code."""


def _abandon(worker: threading.Thread, done: threading.Event) -> None:
    """Let a task that can no longer make calls unwind by itself, then raise inside it if it is stuck."""
    if not done.wait(_UNWIND_SECONDS):  # a task blocked on a subcall unwinds by itself
        _interrupt(worker)  # stuck in pure Python: raise inside it
        done.wait(_INTERRUPT_SECONDS)


def _interrupt(thread: threading.Thread) -> None:
    """Raise _Interrupted inside a thread stuck in Python code (best effort)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Interrupted))


def run_task(
    task_fn: TaskFn,
    context: ContextSource,
    config: GuardConfig | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    include_traceback: bool = False,
) -> dict[str, Any]:
    """Run ``task_fn(context, **params)`` under ``config``'s guards and return the result dict.

    ``context`` is text (``str``), a file (``pathlib.Path``) or a Context. It
    never raises for what happens inside the task (an exception there is the
    ``error`` status, its message naming the task's file and line); a nested
    run deeper than ``max_depth`` raises RecursionDepthError, a bad config
    ConfigError, and ``params`` that do not fit the task's signature TaskError.
    ``include_traceback`` adds the task's traceback as ``result["traceback"]``
    (the trace always has it).
    ``progress`` is called with the budget summary after every subcall.
    ``checkpoint`` is called when the task starts, after every reservation and after every subcall with
    ``{"event", "result", "budget_summary", "run_id", "trace_seq", "deadline_monotonic", "started_monotonic"}``
    (``result``: what the task has published so far), so that a supervisor
    can report the run even if its process is killed.
    """
    config = config or GuardConfig()
    params = dict(params or {})
    bind_params(task_fn, params)
    if not config.dry_run:
        import openai  # noqa: F401  # the SDK's first import takes about a second: not on the task's clock
    name = getattr(task_fn, "__qualname__", repr(task_fn))
    run = Run(config, parent=current_run(), task=name)
    run.progress = progress
    if checkpoint is not None:
        run.listener = _checkpointer(run, checkpoint)
    owns_context = not isinstance(context, Context)
    try:
        with run.installed():  # listing, opening and fingerprinting the input run on the run's clock
            ctx = open_context(context)
            fingerprint = ctx.fingerprint()
    except RLMError as exc:
        run.emit("run_start", task=name, config=config.public_dict(), depth=run.depth)
        if isinstance(exc, GuardError):
            message = (f"{_one_line(exc)} The time ran out while listing and opening the input, before the task "
                       "started: narrow the input (fewer files) or raise the limit.")
            return _finish(run, None, owns_context, "partial", None, message)
        return _finish(run, None, owns_context, "error", None, _one_line(exc))
    run.emit("run_start", task=name, config=config.public_dict(), context=ctx.describe(), depth=run.depth,
             task_source_sha256=task_source_sha256(task_fn), input_fingerprint=fingerprint)
    if checkpoint is not None:  # the supervisor learns which mapped files must not shrink (see _supervise)
        run.listener = _checkpointer(run, checkpoint, mapped_files=ctx.mapped_files)
    if run.listener is not None:
        run.listener("started")
    outcome = _run_on_a_thread(run, ctx, owns_context, lambda: task_fn(ctx, **params))
    if isinstance(outcome, dict):
        return outcome  # halted at the deadline
    return _conclude(run, ctx, owns_context, outcome, include_traceback)


@dataclasses.dataclass
class _Outcome:
    """What the task's thread ended with: its return value, or the exception it raised."""

    result: Any = None
    error: BaseException | None = None


def _run_on_a_thread(run: Run, ctx: Context, owns_context: bool,
                     call: Callable[[], Any]) -> _Outcome | dict[str, Any]:
    """Run the task on its own thread under ``run``; the outcome, or the partial result of a halt.

    Waits at most until the deadline. Ctrl-C (or SIGTERM, mapped so by the caller) stops the run and raises
    RunInterrupted carrying its partial result.
    """
    outcome = _Outcome()
    done = threading.Event()

    def target() -> None:
        with run.installed():
            try:
                outcome.result = call()
            except BaseException as exc:  # reported in the result, never raised
                outcome.error = exc
            finally:
                done.set()

    worker = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="rlm-task", daemon=True)
    worker.start()
    try:
        finished = done.wait(max(run.remaining_seconds(), 0.0))
    except KeyboardInterrupt as interrupt:
        signal_name = getattr(interrupt, "signal_name", "SIGINT")
        stop = run.stop(InterruptError(
            f"Stopped by {signal_name}: no new call was started and calls in flight were abandoned; "
            "results published so far are kept.", signal_name=signal_name))
        _abandon(worker, done)
        result = _finish(run, ctx, owns_context, "partial", _snapshot(run.published), _one_line(stop))
        raise RunInterrupted(result, signal_name) from None
    if not finished:
        run.runtime_error()  # every later access or subcall from the task now raises
        _abandon(worker, done)
    if not done.is_set() or isinstance(outcome.error, _Interrupted):
        error = run.runtime_error()
        return _finish(run, ctx, owns_context, "partial", _snapshot(run.published), _one_line(error))
    return outcome


def _conclude(run: Run, ctx: Context, owns_context: bool, outcome: _Outcome,
              include_traceback: bool) -> dict[str, Any]:
    """The result of a task that returned or raised: completed, partial (a limit) or error."""
    failure = outcome.error
    if failure is None:
        try:
            result = _jsonable(outcome.result)
        except Exception as conv:  # e.g. the task returned the Context itself, which refuses str()
            message = f"The task's result is not JSON-ready: {_one_line(conv)}"
            return _finish(run, ctx, owns_context, "error", None, message)
        return _finish(run, ctx, owns_context, "completed", result, None)
    text = "".join(traceback.format_exception(failure))
    if isinstance(failure, GuardError):
        run.trip(failure)
        message = _one_line(failure)
    else:
        run.emit("error", error=type(failure).__name__, message=str(failure), traceback=text)
        # A setting the task cannot fix (no API key, say) is not the task's fault: no file and line for it.
        message = _one_line(failure) + ("" if isinstance(failure, ConfigError) else _where(failure))
    status = "partial" if isinstance(failure, _PARTIAL_LIMITS) else "error"
    finished = _finish(run, ctx, owns_context, status, _snapshot(run.published), message)
    if include_traceback:
        finished["traceback"] = redact(text, run.config.secrets())
    return finished


def _checkpointer(run: Run, send: Callable[[dict[str, Any]], None],
                  mapped_files: list[tuple[str, int]] | None = None) -> Callable[[str], None]:
    def listen(event: str) -> None:
        payload: dict[str, Any] = {"event": event, "result": _snapshot(run.published),
                                   "deadline_monotonic": run.deadline,
                   "started_monotonic": run.started,
                   "budget_summary": run.budget_summary(), "run_id": run.id,
                   "trace_seq": run.trace.seq if run.trace is not None else None}
        if event == "started" and mapped_files is not None:
            payload["mapped_files"] = mapped_files
        send(payload)
    return listen


def _finish(
    run: Run, ctx: Context | None, owns_context: bool, status: str, result: Any, error: str | None
) -> dict[str, Any]:
    run.end()  # a call abandoned in flight counts as spent, in the summary too
    if error is not None:  # a key given in code (not the environment) or a base URL's password, too
        error = redact(error, run.config.secrets())
    summary = run.budget_summary()
    run.emit("run_end", status=status, error=error, result=result, budget_summary=summary)
    run.close()
    if owns_context and ctx is not None:
        with contextlib.suppress(BufferError):  # an abandoned task may still be reading it
            ctx.close()
    return {"status": status, "result": result, "error": error, "budget_summary": summary}


def unstarted_result(config: GuardConfig, error: str, *, status: str = "partial") -> dict[str, Any]:
    """The result of a run stopped before its task started (by a signal, say): nothing published, nothing
    spent, and a zero budget summary in the shape of any other result. Writes no trace."""
    run = Run(dataclasses.replace(config, trace_path=None), task="unstarted")
    try:
        run.end()
        return {"status": status, "result": None, "error": error, "budget_summary": run.budget_summary()}
    finally:
        run.close()


class TaskBuilder:
    """Fluent configuration of a run: ``TaskBuilder(task).with_cost_budget(0.25).run(context)``.

    Each ``with_*`` returns a new builder (a builder is never changed); the
    config is validated in ``run``.
    """

    def __init__(self, task_fn: TaskFn, _settings: Mapping[str, Any] | None = None,
                 _progress: Callable[[dict[str, Any]], None] | None = None,
                 _params: Mapping[str, Any] | None = None) -> None:
        self.task_fn = task_fn
        self._settings: dict[str, Any] = dict(_settings or {})
        self._progress = _progress
        self._params: dict[str, Any] = dict(_params or {})

    def _with(self, **settings: Any) -> TaskBuilder:
        return TaskBuilder(self.task_fn, {**self._settings, **settings}, self._progress, self._params)

    def with_cost_budget(self, usd: float) -> TaskBuilder:
        return self._with(max_cost=usd)

    def with_runtime_limit(self, seconds: float) -> TaskBuilder:
        return self._with(max_runtime_seconds=seconds)

    def with_token_limit(self, tokens_per_subcall: int) -> TaskBuilder:
        return self._with(max_tokens_per_subcall=tokens_per_subcall)

    def with_output_limit(self, tokens: int) -> TaskBuilder:
        return self._with(max_output_tokens=tokens)

    def with_model(self, model: str) -> TaskBuilder:
        return self._with(model=model)

    def with_api(self, base_url: str | None = None, api_key: str | None = None) -> TaskBuilder:
        return self._with(base_url=base_url, api_key=api_key)

    def with_prices(self, input_usd_per_mtok: float, output_usd_per_mtok: float) -> TaskBuilder:
        return self._with(price_input_per_mtok=input_usd_per_mtok, price_output_per_mtok=output_usd_per_mtok)

    def with_max_depth(self, depth: int) -> TaskBuilder:
        return self._with(max_depth=depth)

    def with_temperature(self, temperature: float) -> TaskBuilder:
        return self._with(temperature=temperature)

    def with_retries(self, max_retries: int) -> TaskBuilder:
        return self._with(max_retries=max_retries)

    def with_max_workers(self, workers: int) -> TaskBuilder:
        return self._with(max_workers=workers)

    def with_trace(self, path: str) -> TaskBuilder:
        return self._with(trace_path=str(path))

    def with_dry_run(self, dry_run: bool = True) -> TaskBuilder:
        return self._with(dry_run=dry_run)

    def with_cache(self, enabled: bool = True, path: str | None = None) -> TaskBuilder:
        return self._with(cache=enabled, cache_path=None if path is None else str(path))

    def with_params(self, **params: Any) -> TaskBuilder:
        """Keyword arguments for the task after the context (added to any given before)."""
        return TaskBuilder(self.task_fn, self._settings, self._progress, {**self._params, **params})

    def with_progress(self, callback: Callable[[dict[str, Any]], None]) -> TaskBuilder:
        return TaskBuilder(self.task_fn, self._settings, callback, self._params)

    def config(self) -> GuardConfig:
        return GuardConfig(**self._settings)

    def run(self, context: ContextSource) -> dict[str, Any]:
        return run_task(self.task_fn, context, self.config(), params=self._params, progress=self._progress)
