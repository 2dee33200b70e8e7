"""Guards that halt before a limit is crossed: cost, tokens per subcall, depth, runtime.

A run's state (config, ledger, deadline, depth, counters, trace) lives in one
:class:`Run` object carried in a ``contextvars.ContextVar``: runs in different
threads never share a budget, and a nested run can only ever shrink what its
parent allows. Cost is reserved at its worst case *before* each HTTP attempt
and settled at the reported usage after, so spend can never exceed the budget.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from rlm.errors import (
    ConfigError,
    CostLimitError,
    GuardError,
    RecursionDepthError,
    RLMError,
    RuntimeLimitError,
    TokenLimitError,
)
from rlm.pricing import Pricing, resolve_pricing
from rlm.tokens import count_request_tokens, counting_method
from rlm.trace import TraceWriter

if TYPE_CHECKING:
    from rlm.context_access import Access, Context

__all__ = [
    "GuardConfig",
    "Ledger",
    "Run",
    "SubcallRecord",
    "init_guards",
    "current_run",
    "subcall_scope",
    "check_request_tokens",
    "RLMError",
    "GuardError",
    "CostLimitError",
    "TokenLimitError",
    "RecursionDepthError",
    "RuntimeLimitError",
]

_DEFAULT_MAX_COST = 0.50
_DEFAULT_MAX_RUNTIME = 60.0
_DEFAULT_MODEL = "gpt-4o-mini"
_ZERO = Decimal(0)


def _number(name: str, value: object, *, env: str | None, integer: bool = False, allow_zero: bool = False) -> Any:
    """Validate one numeric setting where it enters; the message names it and what is allowed."""
    where = f"{env} (from the environment)" if env else name
    allowed = ("a whole number" if integer else "a number") + (" of 0 or more" if allow_zero else " above 0")
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be {allowed} (got {value!r}).")
    try:
        number = int(value) if integer and not isinstance(value, float) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {allowed} (got {value!r}).") from None
    if integer and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{where} must be {allowed} (got {value!r}).")
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where} must be {allowed} (got {value!r}).")
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{where} must be {allowed} (got {value!r}).")
    return int(number) if integer else float(number)


def _from_env(name: str, value: object, env: str, default: object, **kw: Any) -> Any:
    if value is None:
        raw = os.environ.get(env, "").strip()
        if raw:
            return _number(name, raw, env=env, **kw)
        value = default
    return _number(name, value, env=None, **kw)


@dataclass(frozen=True)
class GuardConfig:
    """The limits of one run. Values left as ``None`` come from the environment, then the defaults.

    ``max_cost`` (USD, env ``RLM_MAX_COST``, default 0.50), ``max_runtime_seconds``
    (env ``RLM_MAX_RUNTIME``, default 60), ``model`` (env ``RLM_MODEL``, default
    gpt-4o-mini), and prices in USD per 1M tokens (env ``RLM_PRICE_INPUT`` /
    ``RLM_PRICE_OUTPUT``; 0 for a local server). Bad values are refused here.
    """

    max_cost: float | None = None
    max_tokens_per_subcall: int = 4000
    max_runtime_seconds: float | None = None
    model: str | None = None
    max_depth: int = 1
    max_output_tokens: int = 1024
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None
    temperature: float = 0.0
    max_retries: int = 4
    max_workers: int = 8
    trace_path: str | None = None
    dry_run: bool = False
    cache: bool = False
    cache_path: str | None = None
    cache_nonzero_temperature: bool = False

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "max_cost", _from_env("max_cost", self.max_cost, "RLM_MAX_COST", _DEFAULT_MAX_COST))
        put(self, "max_runtime_seconds",
            _from_env("max_runtime_seconds", self.max_runtime_seconds, "RLM_MAX_RUNTIME", _DEFAULT_MAX_RUNTIME))
        put(self, "max_tokens_per_subcall",
            _number("max_tokens_per_subcall", self.max_tokens_per_subcall, env=None, integer=True))
        put(self, "max_output_tokens", _number("max_output_tokens", self.max_output_tokens, env=None, integer=True))
        put(self, "max_depth", _number("max_depth", self.max_depth, env=None, integer=True))
        put(self, "max_retries", _number("max_retries", self.max_retries, env=None, integer=True, allow_zero=True))
        put(self, "max_workers", _number("max_workers", self.max_workers, env=None, integer=True))
        temperature = _number("temperature", self.temperature, env=None, allow_zero=True)
        if temperature > 2:
            raise ConfigError(f"temperature must be between 0 and 2 (got {self.temperature!r}).")
        put(self, "temperature", temperature)
        model = self.model if self.model is not None else (os.environ.get("RLM_MODEL", "").strip() or _DEFAULT_MODEL)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty model name (got {model!r}).")
        put(self, "model", model.strip())
        prices = (("price_input_per_mtok", "RLM_PRICE_INPUT"), ("price_output_per_mtok", "RLM_PRICE_OUTPUT"))
        for field_name, env in prices:
            value = getattr(self, field_name)
            if value is None and os.environ.get(env, "").strip():
                value = _number(field_name, os.environ[env].strip(), env=env, allow_zero=True)
            elif value is not None:
                value = _number(field_name, value, env=None, allow_zero=True)
            put(self, field_name, value)
        # Refuse a model with no known price now, before any call is made.
        self.pricing()

    def pricing(self) -> Pricing:
        """The model's prices (override first, then genai-prices)."""
        def dec(v: float | None) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        return resolve_pricing(str(self.model), dec(self.price_input_per_mtok), dec(self.price_output_per_mtok))

    def public_dict(self) -> dict[str, Any]:
        """The config as plain data, for traces (it holds no secrets)."""
        return asdict(self)


class Ledger:
    """A thread-safe budget in exact ``Decimal`` dollars: reserve before a call, settle after.

    A child ledger (nested run) reserves in its parent too, atomically, so a
    nested run can never spend more than its parent has left.
    """

    def __init__(self, budget: Decimal, parent: Ledger | None = None) -> None:
        self.budget = budget
        self.parent = parent
        self.spent = Decimal(0)
        self.reserved = Decimal(0)
        self.kept = Decimal(0)  # reservations kept as spent (no usage, or broken mid-call)
        self.overrun = Decimal(0)  # spend reported above its reservation (server broke the cap)
        self.closed = False
        self._lock = threading.Lock()

    def remaining(self) -> Decimal:
        with self._lock:
            own = self.budget - self.spent - self.reserved
        if self.parent is not None:
            own = min(own, self.parent.remaining())
        return max(own, Decimal(0))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.parent is None:
                yield
            else:
                with self.parent._locked():
                    yield

    def _free(self) -> Decimal:
        own = self.budget - self.spent - self.reserved
        if self.parent is not None:
            own = min(own, self.parent._free())
        return own

    def _apply(self, reserved: Decimal, spent: Decimal, kept: Decimal = _ZERO, overrun: Decimal = _ZERO) -> None:
        self.reserved += reserved
        self.spent += spent
        self.kept += kept
        self.overrun += overrun
        if self.parent is not None:
            self.parent._apply(reserved, spent, kept, overrun)

    def reserve(self, amount: Decimal) -> None:
        """Hold ``amount`` or raise CostLimitError, atomically across threads."""
        with self._locked():
            if self.closed:
                raise CostLimitError("This run has ended; its budget accepts no new calls.")
            free = self._free()
            if amount > free:
                raise CostLimitError(
                    f"The next model call could cost up to ${amount:.6f} but only ${max(free, Decimal(0)):.6f} "
                    f"of the ${self.budget:.2f} budget remains. Raise max_cost (--cost) or send smaller chunks."
                )
            self._apply(amount, Decimal(0))

    def settle(self, reserved: Decimal, actual: Decimal) -> None:
        """Replace a reservation with the reported cost."""
        with self._locked():
            if not self.closed:
                self._apply(-reserved, actual, overrun=max(actual - reserved, Decimal(0)))

    def keep(self, reserved: Decimal) -> None:
        """Count a whole reservation as spent: the provider may have billed it."""
        with self._locked():
            if not self.closed:
                self._apply(-reserved, reserved, kept=reserved)

    def release(self, reserved: Decimal) -> None:
        """Give a reservation back: nothing was billed."""
        with self._locked():
            if not self.closed:
                self._apply(-reserved, Decimal(0))

    def close(self) -> None:
        """End the ledger: open reservations (calls abandoned in flight) count as spent; later calls are ignored."""
        with self._locked():
            if not self.closed:
                open_reservations = self.reserved
                self._apply(-open_reservations, open_reservations, kept=open_reservations)
                self.closed = True


@dataclass(frozen=True, slots=True)
class SubcallRecord:
    """What one subcall did, for the summary and the audit trail."""

    kind: str
    instruction: str
    chunk_start: int | None
    chunk_end: int | None
    chunk_sha256: str
    model: str
    answer: str
    counted_tokens: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    latency_seconds: float = 0.0
    retries: int = 0
    usage_reported: bool = True
    cached: bool = False
    dry_run: bool = False


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("rlm_run", default=None)
_in_subcall: contextvars.ContextVar[bool] = contextvars.ContextVar("rlm_in_subcall", default=False)


def current_run() -> Run | None:
    """The run whose guards apply here, if any."""
    return _current.get()


@dataclass
class _Counters:
    calls: int = 0
    failed_calls: int = 0
    http_attempts: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usage_missing: int = 0
    cap_breaches: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_saved: Decimal = field(default_factory=lambda: Decimal(0))
    dry_run_calls: int = 0
    dry_run_worst_case: Decimal = field(default_factory=lambda: Decimal(0))
    json_mode_supported: bool = True
    guard_trips: list[str] = field(default_factory=list)


class Run:
    """Everything one run owns: config, ledger, deadline, depth, counters and trace."""

    def __init__(self, config: GuardConfig, *, parent: Run | None = None) -> None:
        self.config = config
        self.parent = parent
        self.id = uuid.uuid4().hex[:12]
        self.depth = 0 if parent is None else parent.depth + 1
        self.max_depth = config.max_depth if parent is None else min(config.max_depth, parent.max_depth)
        # A run's subcalls sit one level below it; a run whose subcalls would be too deep is refused.
        if self.depth + 1 > self.max_depth:
            raise RecursionDepthError(
                f"A nested run at depth {self.depth} would make subcalls at depth {self.depth + 1}, "
                f"above max_depth {self.max_depth}. Flatten the task: call subcalls directly instead of run_task."
            )
        self.pricing = config.pricing()
        self.token_counting = counting_method(str(config.model))
        budget = Decimal(str(config.max_cost))
        self.ledger = Ledger(budget, parent.ledger if parent is not None else None)
        self.started = time.monotonic()
        own_deadline = self.started + float(config.max_runtime_seconds or 0)
        self.deadline = own_deadline if parent is None else min(own_deadline, parent.deadline)
        self.counters = _Counters()
        self.records: list[SubcallRecord] = []
        self.published: dict[str, Any] = {}
        self.trace: TraceWriter | None = None
        if config.trace_path:
            self.trace = parent.trace if parent is not None and parent.config.trace_path == config.trace_path else None
            if self.trace is None:
                self.trace = TraceWriter(config.trace_path, self.id)
        self.progress: Callable[[dict[str, Any]], None] | None = None
        self.expired = False
        self.ended_at: float | None = None
        self._lock = threading.Lock()
        self._client: Any = None
        self._cache: Any = None
        self._pool: Any = None

    # -- time ----------------------------------------------------------------
    def remaining_seconds(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        """Raise RuntimeLimitError once the deadline has passed (or the run was abandoned)."""
        if self.expired or time.monotonic() >= self.deadline:
            raise self.runtime_error()

    def runtime_error(self, message: str | None = None) -> RuntimeLimitError:
        """Mark the run expired and build the error that says so."""
        self.expired = True
        return RuntimeLimitError(message or (
            f"Runtime limit of {self.config.max_runtime_seconds:g}s reached. "
            "Raise max_runtime_seconds (--timeout) or narrow the task; results published so far are kept."
        ))

    # -- events --------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        if self.trace is not None:
            self.trace.emit(event, **fields)

    def on_context_access(self, ctx: Context, access: Access) -> None:
        if self.trace is not None:
            self.trace.emit(
                "context_access", function=access.function, start=access.start, end=access.end,
                returned=access.returned, detail=access.detail, context=ctx.name,
            )

    def guard_tripped(self, error: GuardError) -> None:
        """Count and trace a guard trip, once per error however many layers see it."""
        if getattr(error, "_rlm_traced", False):
            return
        error._rlm_traced = True  # type: ignore[attr-defined]
        with self._lock:
            if error.limit not in self.counters.guard_trips:
                self.counters.guard_trips.append(error.limit)
        self.emit("guard_trip", limit=error.limit, error=type(error).__name__, message=str(error))

    def record_subcall(self, record: SubcallRecord) -> None:
        with self._lock:
            self.records.append(record)
            c = self.counters
            if record.dry_run:
                c.dry_run_calls += 1
            elif record.cached:
                c.cache_hits += 1
            else:
                c.calls += 1
                c.input_tokens += record.input_tokens
                c.output_tokens += record.output_tokens
        if self.trace is not None:
            self.trace.emit("subcall", **asdict(record))
        if self.progress is not None:
            self.progress(self.budget_summary())

    def count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + n)

    # -- reporting -----------------------------------------------------------
    def budget_summary(self) -> dict[str, Any]:
        """Consumption so far, in the shape run_task returns."""
        c = self.counters
        ledger = self.ledger
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        summary: dict[str, Any] = {
            "total_cost_usd": float(ledger.spent),
            "cost_budget_usd": float(ledger.budget),
            "cost_remaining_usd": float(max(ledger.budget - ledger.spent - ledger.reserved, Decimal(0))),
            "total_calls": c.calls,
            "elapsed_seconds": round(end - self.started, 3),
            "runtime_limit_seconds": self.config.max_runtime_seconds,
            "model": self.config.model,
            "price": self.pricing.describe(),
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "max_tokens_per_subcall": self.config.max_tokens_per_subcall,
            "max_output_tokens": self.config.max_output_tokens,
            "token_counting": self.token_counting,
            "http_attempts": c.http_attempts,
            "retries": c.retries,
            "failed_calls": c.failed_calls,
            "reserved_in_flight_usd": float(ledger.reserved),
            "kept_reservations_usd": float(ledger.kept),
            "usage_missing": c.usage_missing,
            "output_cap_breaches": c.cap_breaches,
            "overrun_usd": float(ledger.overrun),
            "guard_trips": list(c.guard_trips),
        }
        if self.config.cache:
            summary["cache"] = {"hits": c.cache_hits, "misses": c.cache_misses, "saved_usd": float(c.cache_saved)}
        if self.config.dry_run:
            summary["dry_run"] = {
                "subcalls": c.dry_run_calls,
                "worst_case_cost_usd": float(c.dry_run_worst_case),
                "fits_budget": c.dry_run_worst_case <= ledger.budget,
            }
        return summary

    def close(self) -> None:
        self.ledger.close()
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self.trace is not None and (self.parent is None or self.parent.trace is not self.trace):
            self.trace.close()


def init_guards(config: GuardConfig | None = None) -> Run:
    """Start guarding the current thread/context with ``config`` and return the run.

    ``run_task`` does this for you; call it yourself only to use subcalls
    from a plain script. A run started inside another becomes its child.
    """
    run = Run(config or GuardConfig(), parent=current_run())
    _current.set(run)
    return run


@contextlib.contextmanager
def activate(run: Run) -> Iterator[Run]:
    """Make ``run`` current for the duration of the block."""
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


@contextlib.contextmanager
def subcall_scope(run: Run) -> Iterator[None]:
    """Mark a subcall in progress; one issued from inside it is refused (depth 1)."""
    if _in_subcall.get():
        raise RecursionDepthError(
            f"A subcall was issued while another subcall of the same run was in progress (max_depth "
            f"{run.max_depth}). Subcalls cannot nest: make them one after another from the task."
        )
    token = _in_subcall.set(True)
    try:
        yield
    finally:
        _in_subcall.reset(token)


def check_request_tokens(run: Run, messages: list[dict[str, str]], json_mode: bool) -> int:
    """Count a request's tokens (an upper bound) and refuse it if it is over the per-subcall limit."""
    counted = count_request_tokens(str(run.config.model), messages, json_mode=json_mode).tokens
    if counted > run.config.max_tokens_per_subcall:
        raise TokenLimitError(
            f"This subcall's request counts up to {counted} tokens ({run.token_counting}), above "
            f"max_tokens_per_subcall={run.config.max_tokens_per_subcall}. Send a smaller chunk "
            "(context_chunks / context_slice) or raise the limit (--tokens)."
        )
    return counted
