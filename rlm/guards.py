"""Guards that halt before a limit is crossed: cost, tokens per subcall, depth, runtime.

A run's state (config, ledger, deadline, depth, counters, trace and the
resources it opened) lives in one :class:`Run` object carried in a
``contextvars.ContextVar``. Only a scope that restores the variable installs
a run: ``run_task``, or ``with init_guards(config):``. A nested run can only
ever shrink what its parent allows.

Every model call passes one admission point, :meth:`Run.admit` (deadline,
tokens, worst-case reservation), and one settlement point, :meth:`Run.settle`,
which bills exactly once from what the transport reported. The reservation
is the worst case, so spend can never exceed the budget; when a call does not
fit only because others are in flight, admission waits for them to settle
instead of halting.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from rlm import _scope
from rlm._attempt import AttemptReport
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
from rlm.pricing import Pricing, format_usd, resolve_pricing
from rlm.tokens import count_text_tokens, counting_method
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
    "subcall_scope",
    "RLMError",
    "GuardError",
    "CostLimitError",
    "TokenLimitError",
    "RecursionDepthError",
    "RuntimeLimitError",
]

_DEFAULT_MAX_COST = 0.50
_DEFAULT_MAX_RUNTIME = 60.0
_DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
_ZERO = Decimal(0)
# Tokens a server may bill beyond the text it returned (end-of-turn markers), when it reports no usage.
_UNSEEN_OUTPUT_TOKENS = 4
_PLACEHOLDER_KEYS = {"sk-your-key-here", "sk-...", "your-api-key", "sk-your-api-key"}


def _number(name: str, value: object, *, env: str | None, integer: bool = False, allow_zero: bool = False) -> Any:
    """Validate one numeric setting where it enters; the message names it and what is allowed."""
    where = f"{env} (from the environment)" if env else name
    allowed = ("a whole number" if integer else "a number") + (" of 0 or more" if allow_zero else " above 0")
    refused = ConfigError(f"{where} must be {allowed} (got {value!r}).")
    if isinstance(value, bool):
        raise refused
    try:
        number = int(value) if integer and not isinstance(value, float) else float(value)  # type: ignore[call-overload,arg-type]
    except (TypeError, ValueError):
        raise refused from None
    if integer and isinstance(value, float) and not value.is_integer():
        raise refused
    if isinstance(number, float) and not math.isfinite(number):
        raise refused
    if number < 0 or (number == 0 and not allow_zero):
        raise refused
    return int(number) if integer else float(number)


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _setting(name: str, value: object, env: str, default: object, **kw: Any) -> Any:
    """An explicit value, else the environment variable, else the default; validated."""
    if value is None:
        raw = _env(env)
        if raw is not None:
            return _number(name, raw, env=env, **kw)
        value = default
    return _number(name, value, env=None, **kw)


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or (urlsplit(base_url).hostname or "").endswith("openai.com")


def _without_credentials(url: str | None) -> str | None:
    """A URL fit for traces: any ``user:password@`` part removed."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class GuardConfig:
    """The limits of one run, and the model API it talks to. Resolved once, when it is built.

    Values left as ``None`` come from the environment, then the defaults:
    ``max_cost`` (USD, env ``RLM_MAX_COST``, default 0.50); ``max_runtime_seconds``
    (env ``RLM_MAX_RUNTIME``, default 60); ``api_key`` (env ``OPENAI_API_KEY``);
    ``base_url`` (env ``OPENAI_BASE_URL``; unset means OpenAI); ``model`` (env
    ``RLM_MODEL``; unset means gpt-4o-mini on OpenAI, and the server's only
    model on any other server, asked with ``GET /models``); prices in USD per
    1M tokens (env ``RLM_PRICE_INPUT`` / ``RLM_PRICE_OUTPUT``; 0 for a local
    server). Bad values are refused here, with a message naming the value.
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
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "max_cost", _setting("max_cost", self.max_cost, "RLM_MAX_COST", _DEFAULT_MAX_COST))
        put(self, "max_runtime_seconds",
            _setting("max_runtime_seconds", self.max_runtime_seconds, "RLM_MAX_RUNTIME", _DEFAULT_MAX_RUNTIME))
        for name in ("max_tokens_per_subcall", "max_output_tokens", "max_depth", "max_workers"):
            put(self, name, _number(name, getattr(self, name), env=None, integer=True))
        put(self, "max_retries", _number("max_retries", self.max_retries, env=None, integer=True, allow_zero=True))
        temperature = _number("temperature", self.temperature, env=None, allow_zero=True)
        if temperature > 2:
            raise ConfigError(f"temperature must be between 0 and 2 (got {self.temperature!r}).")
        put(self, "temperature", temperature)
        for name, env in (("api_key", "OPENAI_API_KEY"), ("base_url", "OPENAI_BASE_URL")):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string (got {type(value).__name__}).")
            put(self, name, (value.strip() or None) if value is not None else _env(env))
        for name in ("trace_path", "cache_path"):
            value = getattr(self, name)
            if value is not None:
                put(self, name, os.path.expanduser(os.path.expandvars(os.fspath(value))))
        model = self.model if self.model is not None else _env("RLM_MODEL")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigError(f"model must be a non-empty model name (got {model!r}).")
        if model is None and _is_openai(self.base_url):
            model = _DEFAULT_OPENAI_MODEL
        put(self, "model", model.strip() if model else None)
        for name, env in (("price_input_per_mtok", "RLM_PRICE_INPUT"), ("price_output_per_mtok", "RLM_PRICE_OUTPUT")):
            value = getattr(self, name)
            if value is None and _env(env) is not None:
                value = _number(name, _env(env), env=env, allow_zero=True)
            elif value is not None:
                value = _number(name, value, env=None, allow_zero=True)
            put(self, name, value)
        if self.model is not None or self.has_price_override:
            self.pricing()  # refuse a model with no known price now, before any call is made

    @property
    def has_price_override(self) -> bool:
        return self.price_input_per_mtok is not None or self.price_output_per_mtok is not None

    def pricing(self, model: str | None = None) -> Pricing:
        """Prices of ``model`` (default: this config's model): the override first, then genai-prices."""
        def dec(v: float | None) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        name = model or self.model or "(the server's model)"
        return resolve_pricing(name, dec(self.price_input_per_mtok), dec(self.price_output_per_mtok))

    def public_dict(self) -> dict[str, Any]:
        """The config as plain data, for traces: the API key is left out, the base URL has no credentials."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        data["base_url"] = _without_credentials(self.base_url)
        data["api_key_set"] = self.api_key is not None
        return data


class Ledger:
    """A thread-safe budget in exact ``Decimal`` dollars: reserve before a call, settle after.

    A child ledger (nested run) reserves in its parents too, atomically under
    the root's lock, so a nested run can never spend more than its parent has
    left. ``spent`` is always ``settled + kept``.
    """

    def __init__(self, budget: Decimal, parent: Ledger | None = None) -> None:
        self.budget = budget
        self.parent = parent
        self.spent = _ZERO
        self.reserved = _ZERO
        self.settled = _ZERO  # billed from reported usage, or from a bound when none was reported
        self.kept = _ZERO  # whole reservations counted as spent (broken mid-call, abandoned)
        self.overrun = _ZERO  # reported spend above its reservation (the server broke the cap)
        self.waits = 0
        self.wait_seconds = 0.0
        self.closed = False
        self._cond: threading.Condition = parent._cond if parent is not None else threading.Condition()

    def _chain(self) -> Iterator[Ledger]:
        ledger: Ledger | None = self
        while ledger is not None:
            yield ledger
            ledger = ledger.parent

    def _free(self) -> Decimal:
        return min(led.budget - led.spent - led.reserved for led in self._chain())

    def _free_when_idle(self) -> Decimal:
        return min(led.budget - led.spent for led in self._chain())

    def _in_flight(self) -> bool:
        return any(led.reserved > 0 for led in self._chain())

    def remaining(self) -> Decimal:
        """What is left for new reservations now."""
        with self._cond:
            return max(self._free(), _ZERO)

    def _apply(self, reserved: Decimal, settled: Decimal = _ZERO, kept: Decimal = _ZERO,
               overrun: Decimal = _ZERO) -> None:
        for led in self._chain():
            led.reserved += reserved
            led.settled += settled
            led.kept += kept
            led.spent += settled + kept
            led.overrun += overrun
        self._cond.notify_all()

    def reserve(self, amount: Decimal, *, wait_until: float | None = None) -> bool:
        """Hold ``amount``; False if ``wait_until`` (a ``time.monotonic()`` deadline) came first.

        With ``wait_until``, a reservation that does not fit only because of
        calls in flight waits for them to settle. Raises CostLimitError when
        ``amount`` cannot fit even once every call in flight has settled
        (settling never lowers what was spent), or at once without ``wait_until``.
        """
        with self._cond:
            started: float | None = None
            try:
                while True:
                    if self.closed:
                        raise CostLimitError("This run has ended; its budget accepts no new calls.",
                                             needed_usd=float(amount), remaining_usd=0.0, budget_usd=float(self.budget))
                    free = self._free()
                    if amount <= free:
                        self._apply(amount)
                        return True
                    if wait_until is None or amount > self._free_when_idle() or not self._in_flight():
                        left = max(free, _ZERO)
                        raise CostLimitError(
                            f"The next model call could cost up to ${amount:.6f} but only ${left:.6f} of the "
                            f"{format_usd(self.budget)} budget remains. Raise max_cost (--cost) or send smaller "
                            "chunks.",
                            needed_usd=float(amount), remaining_usd=float(left), budget_usd=float(self.budget),
                        )
                    timeout = wait_until - time.monotonic()
                    if timeout <= 0:
                        return False
                    if started is None:
                        started = time.monotonic()
                        self.waits += 1
                    self._cond.wait(timeout)
            finally:
                if started is not None:
                    self.wait_seconds += time.monotonic() - started

    def settle(self, reserved: Decimal, actual: Decimal) -> None:
        """Replace a reservation with the billed cost."""
        with self._cond:
            if not self.closed:
                self._apply(-reserved, settled=actual, overrun=max(actual - reserved, _ZERO))

    def keep(self, reserved: Decimal) -> None:
        """Count a whole reservation as spent: the provider may have billed it."""
        with self._cond:
            if not self.closed:
                self._apply(-reserved, kept=reserved)

    def release(self, reserved: Decimal) -> None:
        """Give a reservation back: nothing was billed."""
        with self._cond:
            if not self.closed:
                self._apply(-reserved)

    def close(self) -> None:
        """End the ledger: open reservations (calls abandoned in flight) count as spent; later calls are ignored."""
        with self._cond:
            if not self.closed:
                self._apply(-self.reserved, kept=self.reserved)
                self.closed = True


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


@dataclass(frozen=True, slots=True)
class RemainingBudget:
    """What is left of a run: dollars, seconds, and how many worst-case calls of a given size still fit.

    ``calls`` is None when the run's price is not known yet (a server's model not looked up).
    """

    usd: float
    seconds: float
    calls: int | None


@dataclass(frozen=True, slots=True)
class Admission:
    """A ticket for one admitted attempt: what was reserved for it. Settled exactly once."""

    id: int
    counted_tokens: int
    reserved: Decimal
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one attempt was billed, and on what grounds (``usage``, ``bound``, ``kept``, ``released``)."""

    cost: Decimal
    input_tokens: int
    output_tokens: int
    basis: str

    @property
    def usage_reported(self) -> bool:
        return self.basis == "usage"


class _Closeable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=_Closeable)

_in_subcall: contextvars.ContextVar[bool] = contextvars.ContextVar("rlm_in_subcall", default=False)


def current_run() -> Run | None:
    """The run whose guards apply here, if any."""
    scope = _scope.current_scope()
    return scope if isinstance(scope, Run) else None


@dataclass
class _Counters:
    calls: int = 0
    failed_calls: int = 0
    http_attempts: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usage_missing: int = 0
    answers_defaulted: int = 0
    cap_breaches: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_saved: Decimal = field(default_factory=lambda: Decimal(0))
    dry_run_calls: int = 0
    dry_run_worst_case: Decimal = field(default_factory=lambda: Decimal(0))
    guard_trips: list[str] = field(default_factory=list)


class Run:
    """Everything one run owns: config, ledger, deadline, depth, counters, trace and resources.

    Lifecycle: built, then installed by a scope (``with run:`` installs it and
    closes it at the end; ``run_task`` does the same on its own thread), then
    closed. Closing settles abandoned calls as spent, closes the trace and
    every resource the run opened, and is final.
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
        self.model: str | None = config.model
        self.pricing: Pricing | None = None
        if self.model is not None or config.has_price_override:
            self.pricing = config.pricing()
        self.token_counting = counting_method(self.model)
        self.ledger: Ledger = Ledger(Decimal(str(config.max_cost)), parent.ledger if parent is not None else None)
        self.started = time.monotonic()
        own_deadline = self.started + float(config.max_runtime_seconds or 0)
        self.deadline: float = own_deadline if parent is None else min(own_deadline, parent.deadline)
        self.counters = _Counters()
        self.records: list[SubcallRecord] = []
        self.published: dict[str, Any] = {}
        self.json_mode_supported = True
        self.stream_usage_supported = True
        self.progress: Callable[[dict[str, Any]], None] | None = None
        #: Told "admitted" after every reservation and "subcall" after every recorded subcall.
        self.listener: Callable[[str], None] | None = None
        self.ended_at: float | None = None
        self.trace: TraceWriter | None = None
        if config.trace_path:
            shared = parent is not None and parent.config.trace_path == config.trace_path
            self.trace = parent.trace if shared and parent is not None else TraceWriter(config.trace_path, self.id)
        self._lock = threading.RLock()
        self.model_lock = threading.Lock()  # one GET /models per run, however many workers need the model
        self._halted: GuardError | None = None  # a cost or runtime halt: no further call is admitted
        self._expired: RuntimeLimitError | None = None
        self._stopped: InterruptError | None = None
        self._traced: list[BaseException] = []  # guard errors already written to the trace
        self._resources: dict[type, _Closeable] = {}
        self._admissions = itertools.count(1)
        self._open: set[int] = set()
        self._wake = threading.Event()  # set when the run is stopped or closed: waits end at once
        self._token: contextvars.Token[_scope.RunScope | None] | None = None
        self._entered = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> Run:
        self._token = _scope._current.set(self)
        self._entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _scope._current.reset(self._token)
            self._token = None
        self.close()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Run]:
        """Make this run current for the block, without closing it afterwards."""
        token = _scope._current.set(self)
        self._entered = True
        try:
            yield self
        finally:
            _scope._current.reset(token)

    @property
    def closed(self) -> bool:
        return self._closed

    def resource(self, kind: type[R], factory: Callable[[], R]) -> R:
        """The run's one ``kind`` (a transport, a cache...), opened on first use and closed with the run."""
        with self._lock:
            if self._closed:
                raise RuntimeLimitError("This run has ended; start a new one.",
                                        limit_seconds=self.config.max_runtime_seconds)
            found = self._resources.get(kind)
            if found is None:
                found = self._resources[kind] = factory()
            return cast(R, found)

    def close(self) -> None:
        """End the run (idempotent): abandoned calls count as spent; the trace and resources are closed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            resources = list(self._resources.values())
            self._resources.clear()
        self.ledger.close()
        self._wake.set()
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        for resource in reversed(resources):
            with contextlib.suppress(Exception):
                resource.close()
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

    # -- admission and settlement --------------------------------------------
    def check_tokens(self, counted: int) -> None:
        """Refuse a request whose token upper bound is over ``max_tokens_per_subcall``."""
        limit = self.config.max_tokens_per_subcall
        if counted > limit:
            raise self.trip(TokenLimitError(
                f"This subcall's request counts up to {counted} tokens ({self.token_counting}), above "
                f"max_tokens_per_subcall={limit}. Send a smaller chunk (context_chunks / context_slice) "
                "or raise the limit (--tokens).",
                counted_tokens=counted, limit_tokens=limit,
            ))

    def worst_case(self, counted: int) -> Decimal:
        """The most one call can cost: the prompt's upper bound plus the whole output cap."""
        assert self.pricing is not None, "the model must be resolved before a call is admitted"
        return self.pricing.cost(counted, self.config.max_output_tokens)

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
        worst = self.worst_case(counted)
        if self.config.dry_run:
            with self._lock:
                self.counters.dry_run_worst_case += worst
            return Admission(next(self._admissions), counted, worst, dry_run=True)
        try:
            admitted = self.ledger.reserve(worst, wait_until=self.deadline)
        except CostLimitError as exc:
            raise self.trip(self._halt(exc)) from None
        if not admitted:
            raise self.runtime_error()
        admission = Admission(next(self._admissions), counted, worst)
        with self._lock:
            self._open.add(admission.id)
            self.counters.http_attempts += 1
        if self.listener is not None:
            self.listener("admitted")
        return admission

    def settle(self, admission: Admission, report: AttemptReport) -> Settlement:
        """The one settlement point: bill an admitted attempt exactly once, from what the transport reported.

        An error status or a connection never made is not billed. A complete
        answer is billed at its reported usage, or, with none reported, at an
        upper bound of its prompt plus the text received. An attempt broken
        off mid-answer (or abandoned at the deadline) keeps its whole
        reservation: the provider may have billed all of it.
        """
        with self._lock:
            if admission.id not in self._open:
                raise RuntimeError(f"admission {admission.id} was settled twice or never admitted")
            self._open.discard(admission.id)
        reserved, cap = admission.reserved, self.config.max_output_tokens
        assert self.pricing is not None
        if report.status_code is not None or not report.sent:
            self.ledger.release(reserved)
            return Settlement(_ZERO, 0, 0, "released")
        if report.complete and report.usage is not None:
            usage = report.usage
            cost = self.pricing.cost(usage.prompt_tokens, usage.completion_tokens)
            self.ledger.settle(reserved, cost)
            if usage.completion_tokens > cap:
                self.count(cap_breaches=1)
            return Settlement(cost, usage.prompt_tokens, usage.completion_tokens, "usage")
        if report.complete:
            # An answer cut at the cap used all of it (tokens that print nothing are billed too);
            # one that stopped by itself is bounded by the text it returned.
            output = cap if report.finish_reason == "length" else min(
                cap, count_text_tokens(self.model, report.text) + _UNSEEN_OUTPUT_TOKENS)
            cost = self.pricing.cost(admission.counted_tokens, output)
            self.ledger.settle(reserved, cost)
            self.count(usage_missing=1)
            return Settlement(cost, admission.counted_tokens, output, "bound")
        self.ledger.keep(reserved)
        return Settlement(reserved, admission.counted_tokens, cap, "kept")

    def remaining(self, request_tokens: int) -> RemainingBudget:
        """What is left, and how many calls of ``request_tokens`` (an upper bound) fit at their worst case."""
        left = self.ledger.remaining()
        calls = None
        if self.pricing is not None:
            worst = self.worst_case(request_tokens)
            calls = int(left // worst) if worst > 0 else None
            if self._halted is not None:
                calls = 0
        return RemainingBudget(float(left), max(self.remaining_seconds(), 0.0), calls)

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

    def adopt_model(self, served: Sequence[str]) -> str:
        """Use the server's only model when none was configured, or refuse with what it serves."""
        with self._lock:
            if self.model is not None:
                return self.model
            where = _without_credentials(self.config.base_url)
            if not served:
                raise ConfigError(f"The server at {where} lists no models (GET /models). Set RLM_MODEL (--model).")
            if len(served) > 1:
                listed = ", ".join(served[:20]) + (", ..." if len(served) > 20 else "")
                raise ConfigError(f"The server at {where} serves {len(served)} models ({listed}); choose one with "
                                  "--model or RLM_MODEL.")
            model = served[0]
            self.pricing = self.config.pricing(model)  # ConfigError for an unknown name with no price set
            self.model = model
            self.token_counting = counting_method(model)
            return model

    def api_problem(self) -> str | None:
        """Why live calls cannot be made with this run's API settings, or None."""
        key, base = self.config.api_key, self.config.base_url
        if key is None and base is None:
            return ("No model API configured: set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL (for a local "
                    "OpenAI-compatible server such as Ollama, vLLM or llama.cpp), or use --dry-run.")
        if key is not None and (key in _PLACEHOLDER_KEYS or "your-key" in key or "your_key" in key):
            return ("OPENAI_API_KEY is still the placeholder from .env.example. Put your real key in .env, or set "
                    "OPENAI_BASE_URL for a local server (which needs no key), or use --dry-run.")
        return None

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
            if error.limit not in self.counters.guard_trips:
                self.counters.guard_trips.append(error.limit)
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
        if self.listener is not None:
            self.listener("subcall")

    def count_cache(self, *, hit: bool, saved: Decimal = _ZERO) -> None:
        with self._lock:
            if hit:
                self.counters.cache_saved += saved
            else:
                self.counters.cache_misses += 1

    def count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + n)

    # -- reporting -----------------------------------------------------------
    def budget_summary(self) -> dict[str, Any]:
        """Consumption so far, in the shape run_task returns."""
        c, ledger = self.counters, self.ledger
        with ledger._cond:
            spent, reserved, kept, overrun = ledger.spent, ledger.reserved, ledger.kept, ledger.overrun
            waits, waited = ledger.waits, ledger.wait_seconds
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        summary: dict[str, Any] = {
            "total_cost_usd": float(spent),
            "cost_budget_usd": float(ledger.budget),
            "cost_remaining_usd": float(max(ledger.budget - spent - reserved, _ZERO)),
            "total_calls": c.calls,
            "elapsed_seconds": round(end - self.started, 3),
            "runtime_limit_seconds": self.config.max_runtime_seconds,
            "model": self.model,
            "base_url": _without_credentials(self.config.base_url),
            "price": self.pricing.describe() if self.pricing is not None else None,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "max_tokens_per_subcall": self.config.max_tokens_per_subcall,
            "max_output_tokens": self.config.max_output_tokens,
            "token_counting": self.token_counting,
            "http_attempts": c.http_attempts,
            "retries": c.retries,
            "failed_calls": c.failed_calls,
            "reserved_in_flight_usd": float(reserved),
            "kept_reservations_usd": float(kept),
            "usage_missing": c.usage_missing,
            "answers_defaulted": c.answers_defaulted,
            "output_cap_breaches": c.cap_breaches,
            "overrun_usd": float(overrun),
            "admission_waits": waits,
            "admission_wait_seconds": round(waited, 3),
            "guard_trips": list(c.guard_trips),
        }
        if self.config.cache:
            summary["cache"] = {"hits": c.cache_hits, "misses": c.cache_misses, "saved_usd": float(c.cache_saved),
                                "replayed_calls": c.cache_hits, "new_calls": c.calls}
        if self.config.dry_run:
            summary["dry_run"] = {
                "subcalls": c.dry_run_calls,
                "worst_case_cost_usd": float(c.dry_run_worst_case),
                "fits_budget": c.dry_run_worst_case <= ledger.budget,
            }
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
