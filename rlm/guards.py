"""Guards that halt before a limit is crossed: cost, tokens per subcall, depth, runtime.

A run is three parts, each with one job:

- :class:`Run` (here): the scope, the lifecycle and the deadline. It is
  carried in a ``contextvars.ContextVar``; only a scope that restores the
  variable installs it (``run_task``, or ``with init_guards(config):``). A
  nested run can only ever shrink what its parent allows.
- its :class:`~rlm._budget.Budget`: prices, the ledger, and the one
  admission and one settlement point of every model call.
- its :class:`~rlm._endpoint.Endpoint`: model, key, base URL and what the
  server accepts, resolved once.

Every model call passes :meth:`Run.admit` (halts, deadline, tokens, then the
budget's worst-case reservation) and :meth:`Run.settle`, which bills exactly
once from what the transport reported. The reservation is the worst case, so
spend can never exceed the budget; when a call does not fit only because
others are in flight, admission waits for them to settle instead of halting.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar, cast

from rlm import _scope
from rlm._attempt import AttemptReport
from rlm._budget import Admission, Budget, Ledger, RemainingBudget, Settlement
from rlm._config import GuardConfig, without_credentials
from rlm._endpoint import Endpoint
from rlm.errors import (
    ConfigError,
    CostLimitError,
    GuardError,
    InterruptError,
    RecursionDepthError,
    RLMError,
    RuntimeLimitError,
    TokenLimitError,
)
from rlm.trace import TraceWriter

__all__ = [
    "GuardConfig",
    "Ledger",
    "Run",
    "Admission",
    "RemainingBudget",
    "Settlement",
    "SubcallRecord",
    "init_guards",
    "current_run",
    "run_of_this_thread",
    "subcall_scope",
    "RLMError",
    "GuardError",
    "CostLimitError",
    "TokenLimitError",
    "RecursionDepthError",
    "RuntimeLimitError",
]


@dataclass(frozen=True, slots=True)
class SubcallRecord:
    """What one subcall did, for the summary and the audit trail."""

    kind: str
    instruction: str
    chunk_start: int | None
    chunk_end: int | None
    chunk_sha256: str
    model: str | None
    answer: str
    counted_tokens: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    latency_seconds: float = 0.0
    retries: int = 0
    usage_reported: bool = False
    cached: bool = False
    dry_run: bool = False
    request_id: str | None = None
    file: str | None = None


class _Closeable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=_Closeable)

_in_subcall: contextvars.ContextVar[bool] = contextvars.ContextVar("rlm_in_subcall", default=False)


def current_run() -> Run | None:
    """The run whose guards apply here, if any."""
    scope = _scope.current_scope()
    return scope if isinstance(scope, Run) else None


class _OpenRuns:
    """Which root runs are open in this process, and which threads outlived the run they were started in.

    A ContextVar does not follow a thread the task starts itself (``threading.Thread``, a
    ``ThreadPoolExecutor``), so a subcall there finds no run in its context. This registry is how it still
    finds its run instead of escaping to a fresh default one: it is process-wide on purpose, as threads are.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each open root run (installed by a scope, not yet closed): the threads alive when it was installed.
        self._open: dict[Run, frozenset[int]] = {}
        self._orphans: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._ended_by: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()

    def opened(self, run: Run) -> None:
        with self._lock:
            self._open[run] = frozenset(t.ident for t in threading.enumerate() if t.ident is not None)

    def closed(self, run: Run) -> None:
        """Threads started while ``run`` was open that are still alive belong to it: their subcalls are refused."""
        with self._lock:
            before = self._open.pop(run, None)
            if before is None:
                return
            for thread in threading.enumerate():
                if thread.ident not in before and thread is not threading.current_thread():
                    self._orphans.add(thread)
                    self._ended_by[thread] = run.task or run.id

    def for_this_thread(self) -> Run | None:
        """The run a subcall from this thread (which has none in its context) belongs to, or None for none.

        Raises when the thread outlived its run, or when several runs are open and it cannot be told which.
        """
        thread = threading.current_thread()
        with self._lock:
            if thread in self._orphans:
                task = self._ended_by.get(thread, "a task")
                raise RuntimeLimitError(
                    f"This subcall comes from a thread started during the run of {task}, which has ended; it is "
                    "refused, so nothing is spent outside a run. Make a task's concurrent subcalls through "
                    "rlm.subcalls.parallel_map, which ends with its run.", limit_seconds=0.0)
            runs = list(self._open)
        if not runs or thread is threading.main_thread():
            return None
        if len(runs) > 1:
            raise ConfigError(
                f"This subcall comes from a thread of its own while {len(runs)} runs are open, so it belongs to "
                "no one run's budget and deadline. Make a task's concurrent subcalls through "
                "rlm.subcalls.parallel_map, which carries the task's run into its workers.")
        return runs[0]


_open_runs = _OpenRuns()


def run_of_this_thread() -> Run | None:
    """The current run, or, in a thread a task started itself, that task's run (see _OpenRuns); None outside any."""
    return current_run() or _open_runs.for_this_thread()


class Run:
    """One run: its scope, lifecycle and deadline, with its budget and its endpoint.

    Lifecycle: built, then installed by a scope (``with run:`` installs it and
    closes it at the end; ``run_task`` does the same on its own thread), then
    closed. Closing settles abandoned calls as spent, closes the trace, the
    endpoint and every resource the run opened, and is final.
    """

    def __init__(self, config: GuardConfig, *, parent: Run | None = None, task: str | None = None) -> None:
        self.config = config
        self.parent = parent
        self.task = task
        self.id = uuid.uuid4().hex[:12]
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.max_depth: int = config.max_depth if parent is None else min(config.max_depth, parent.max_depth)
        # A run's subcalls sit one level below it; a run whose subcalls would be too deep is refused.
        if self.depth + 1 > self.max_depth:
            raise RecursionDepthError(
                f"A nested run at depth {self.depth} would make subcalls at depth {self.depth + 1}, "
                f"above max_depth {self.max_depth}. Flatten the task: call subcalls directly instead of run_task.",
                depth=self.depth + 1, max_depth=self.max_depth,
            )
        self.budget: Budget = Budget(config, parent.budget if parent is not None else None)
        self.endpoint = Endpoint(config)
        self.started = time.monotonic()
        own_deadline = self.started + config.max_runtime_seconds
        self.deadline: float = own_deadline if parent is None else min(own_deadline, parent.deadline)
        self.records: list[SubcallRecord] = []
        self.published: dict[str, Any] = {}
        self.progress: Callable[[dict[str, Any]], None] | None = None
        #: Told "admitted" after every reservation and "subcall" after every recorded subcall.
        self.listener: Callable[[str], None] | None = None
        self.ended_at: float | None = None
        self.trace: TraceWriter | None = None
        if config.trace_path:
            shared = parent is not None and parent.config.trace_path == config.trace_path
            own = parent.trace if shared and parent is not None else None
            self.trace = own or TraceWriter(config.trace_path, self.id, secrets=config.secrets())
        self._lock = threading.RLock()
        self._halted: GuardError | None = None  # a cost or runtime halt: no further call is admitted
        self._expired: RuntimeLimitError | None = None
        self._stopped: InterruptError | None = None
        self._traced: list[BaseException] = []  # guard errors already written to the trace
        self._resources: dict[type, _Closeable] = {}
        self._wake = threading.Event()  # set when the run is stopped or closed: waits end at once
        self._token: contextvars.Token[_scope.RunScope | None] | None = None
        self._entered = False
        self._closed = False

    @property
    def model(self) -> str | None:
        """The model this run asks: configured, or learned from the server; None until then."""
        return self.endpoint.model

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> Run:
        self._token = _scope._current.set(self)
        self._mark_entered()
        return self

    def _mark_entered(self) -> None:
        with self._lock:
            first, self._entered = not self._entered, True
        if first and self.parent is None and not self._closed:
            _open_runs.opened(self)  # from now on, threads the task starts find this run

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _scope._current.reset(self._token)
            self._token = None
        self.close()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Run]:
        """Make this run current for the block, without closing it afterwards."""
        token = _scope._current.set(self)
        self._mark_entered()
        try:
            yield self
        finally:
            _scope._current.reset(token)

    @property
    def closed(self) -> bool:
        return self._closed

    def resource(self, kind: type[R], factory: Callable[[], R]) -> R:
        """The run's one ``kind`` (a cache...), opened on first use and closed with the run."""
        with self._lock:
            if self._closed:
                raise RuntimeLimitError("This run has ended; start a new one.",
                                        limit_seconds=self.config.max_runtime_seconds)
            found = self._resources.get(kind)
            if found is None:
                found = self._resources[kind] = factory()
            return cast(R, found)

    def publish(self, name: str, value: Any) -> None:
        """Keep ``value`` as partial result ``name``: it survives a halt."""
        with self._lock:
            self.published[name] = value

    def end(self) -> None:
        """Stop the clock and the ledger: calls abandoned in flight count as spent, from now on in the summary."""
        self.budget.ledger.close()
        with self._lock:
            if self.ended_at is None:
                self.ended_at = time.monotonic()

    def close(self) -> None:
        """End the run (idempotent): abandoned calls count as spent; the trace, endpoint and resources close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            resources = list(self._resources.values())
            self._resources.clear()
        self.end()
        self._wake.set()
        if self.parent is None:
            _open_runs.closed(self)
        for resource in reversed(resources):
            with contextlib.suppress(Exception):
                resource.close()
        with contextlib.suppress(Exception):
            self.endpoint.close()
        if self.trace is not None and (self.parent is None or self.parent.trace is not self.trace):
            self.trace.close()

    def __del__(self) -> None:
        if getattr(self, "task", None) == "init_guards" and not self._entered and not self._closed:
            warnings.warn("init_guards() returned a run that was never entered, so its limits guarded nothing. "
                          "Use it as a block: `with init_guards(config): ...`.", RuntimeWarning, stacklevel=2)

    # -- time ----------------------------------------------------------------
    def deadline_at(self) -> float:
        return self.deadline

    def remaining_seconds(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        """Raise RuntimeLimitError once the deadline has passed (InterruptError once the run was stopped)."""
        if self._stopped is not None:
            raise self._stopped
        if self._expired is not None:
            raise self._expired
        if time.monotonic() >= self.deadline:
            raise self.runtime_error()

    def runtime_error(self, message: str | None = None) -> RuntimeLimitError:
        """Stop the run at its deadline and return the error that says so (the same one every time)."""
        with self._lock:
            if self._expired is None:
                limit = self.config.max_runtime_seconds
                self._expired = RuntimeLimitError(message or (
                    f"Runtime limit of {limit:g}s reached. Raise max_runtime_seconds (--timeout) or narrow the "
                    "task; results published so far are kept."
                ), limit_seconds=limit)
                if self._halted is None:
                    self._halted = self._expired
                self.trip(self._expired)
            return self._expired

    @property
    def stop_event(self) -> threading.Event:
        """Set once the run is stopped or closed: calls waiting on an answer abandon it."""
        return self._wake

    def stop(self, error: GuardError) -> GuardError:
        """Halt the run now (an interrupt): no call is admitted, reads stop, calls in flight are abandoned."""
        with self._lock:
            halt = self._halt(error)
            if self._expired is None and isinstance(error, InterruptError):
                self._stopped = error
        self.trip(halt)
        self._wake.set()
        return halt

    def wait_before_retry(self, delay: float, problem: str) -> None:
        """Sleep before a retry, or stop the run if the wait would pass the deadline."""
        if delay >= self.remaining_seconds():
            raise self.runtime_error(
                f"Retrying after {problem} means waiting {delay:.1f}s, past the runtime limit of "
                f"{self.config.max_runtime_seconds:g}s. Try again later or raise --timeout."
            )
        self._wake.wait(delay)
        self.check_deadline()

    # -- the model -------------------------------------------------------------
    def resolve_model(self, remembered: str | None = None) -> str:
        """The model to ask, learned from the server (once) when none was configured, and priced.

        ``remembered`` (the model the server served last time, from the cache) is used without asking; the
        first request that must reach the server confirms it (:meth:`confirm_model`).
        """
        if remembered is not None and self.endpoint.model is None:
            self.budget.price_model(remembered)
            self.endpoint.assume_model(remembered)
            return remembered
        return self.endpoint.resolve_model(max(self.remaining_seconds(), 0.1), on_adopt=self.budget.price_model)

    def confirm_model(self) -> bool:
        """Before a request reaches the server: True if it no longer serves the remembered model (now changed)."""
        if not self.endpoint.assumed:
            return False
        return self.endpoint.confirm_model(max(self.remaining_seconds(), 0.1), on_adopt=self.budget.price_model)

    # -- admission and settlement --------------------------------------------
    def check_tokens(self, counted: int) -> None:
        """Refuse a request whose token upper bound is over ``max_tokens_per_subcall``."""
        error = self.budget.token_error(counted)
        if error is not None:
            raise self.trip(error)

    def admit(self, counted: int) -> Admission:
        """The one admission point of every model call (each retry too).

        Refuses a halted or late run, an oversized request, and a worst case
        that cannot fit the budget; waits while one only waits for calls in
        flight to settle. In a dry run, accounts the worst case and reserves nothing.
        """
        if self._halted is not None:
            raise self._halted
        self.check_deadline()
        self.check_tokens(counted)
        try:
            admission = self.budget.admit(counted, wait_until=self.deadline)
        except CostLimitError as exc:
            raise self.trip(self._halt(exc)) from None
        if admission is None:
            raise self.runtime_error()
        if not admission.dry_run and self.listener is not None:
            self.listener("admitted")
        return admission

    def settle(self, admission: Admission, report: AttemptReport) -> Settlement:
        """The one settlement point: the budget bills an admitted attempt exactly once (see Budget.settle)."""
        return self.budget.settle(admission, report)

    def remaining(self, request_tokens: int) -> RemainingBudget:
        """What is left, and how many calls of ``request_tokens`` (an upper bound) fit at their worst case."""
        calls = self.budget.calls_that_fit(request_tokens)
        if calls is not None and self._halted is not None:
            calls = 0
        return RemainingBudget(float(self.budget.ledger.remaining()), max(self.remaining_seconds(), 0.0), calls)

    # -- halts and events ----------------------------------------------------
    def _halt(self, error: GuardError) -> GuardError:
        with self._lock:
            if self._halted is None:
                self._halted = error
            return self._halted

    @property
    def halted(self) -> GuardError | None:
        """The cost or runtime halt that stopped this run's calls, if any."""
        return self._halted

    def trip(self, error: GuardError) -> GuardError:
        """Count and trace a guard trip: once per error, however many workers or layers see it."""
        with self._lock:
            if any(seen is error for seen in self._traced):
                return error
            self._traced.append(error)
        self.budget.count_trip(error.limit)
        self.emit("guard_trip", limit=error.limit, error=type(error).__name__, message=str(error))
        return error

    def emit(self, event: str, **values: Any) -> None:
        if self.trace is not None:
            self.trace.emit(event, **values)

    def record_access(self, *, context: str, function: str, start: int, end: int, returned: int,
                      detail: str, file: str | None) -> None:
        if self.trace is not None:
            extra = {} if file is None else {"file": file}
            self.trace.emit("context_access", function=function, start=start, end=end, returned=returned,
                            detail=detail, context=context, **extra)

    def record_subcall(self, record: SubcallRecord) -> None:
        with self._lock:
            self.records.append(record)
        if record.dry_run:
            self.budget.count(dry_run_calls=1)
        elif record.cached:
            self.budget.count(cache_hits=1)
        else:
            self.budget.count(calls=1, input_tokens=record.input_tokens, output_tokens=record.output_tokens)
        if self.trace is not None:
            self.trace.emit("subcall", **asdict(record))
        if self.progress is not None:
            self.progress(self.budget_summary())
        if self.listener is not None:
            self.listener("subcall")

    def count(self, **increments: int) -> None:
        self.budget.count(**increments)

    # -- reporting -----------------------------------------------------------
    def budget_summary(self) -> dict[str, Any]:
        """Consumption so far, in the shape run_task returns."""
        money = self.budget.summary()
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        head = ("total_cost_usd", "cost_budget_usd", "cost_remaining_usd", "total_calls")
        summary: dict[str, Any] = {key: money.pop(key) for key in head}
        summary.update({
            "elapsed_seconds": round(end - self.started, 3),
            "runtime_limit_seconds": self.config.max_runtime_seconds,
            "model": self.model,
            "base_url": without_credentials(self.config.base_url),
        })
        summary.update(money)
        return summary


def init_guards(config: GuardConfig | None = None) -> Run:
    """A run guarded by ``config``, to use as a block: ``with init_guards(config): ...``.

    ``run_task`` does this for you; use it yourself only to make subcalls from
    a plain script under one budget. Inside the block every subcall shares the
    run's limits; at its end the run is closed and removed. A run started
    inside another becomes its child. Subcalls outside any run get a fresh
    default run each.
    """
    return Run(config or GuardConfig(), parent=current_run(), task="init_guards")


@contextlib.contextmanager
def subcall_scope(run: Run) -> Iterator[None]:
    """Mark a subcall in progress; one issued from inside it is refused (depth 1)."""
    if _in_subcall.get():
        raise run.trip(RecursionDepthError(
            f"A subcall was issued while another subcall of the same run was in progress (max_depth "
            f"{run.max_depth}). Subcalls cannot nest: make them one after another from the task.",
            depth=run.depth + 2, max_depth=run.max_depth,
        ))
    token = _in_subcall.set(True)
    try:
        yield
    finally:
        _in_subcall.reset(token)
