"""A run's money: its prices, its ledger, and the one admission and settlement point of every model call.

A call reserves its worst case (the prompt's token upper bound plus the whole
output cap, at the model's price) before it is sent, and the same admission
is settled exactly once from what the transport reported. Reservations are
worst cases, so spend can never exceed the budget; when a call does not fit
only because others are in flight, admission waits for them to settle.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rlm._attempt import AttemptReport
from rlm._config import GuardConfig
from rlm.errors import CostLimitError, TokenLimitError
from rlm.pricing import Pricing, format_usd
from rlm.tokens import count_text_tokens, counting_method

__all__ = ["Admission", "Budget", "Counters", "Ledger", "RemainingBudget", "Settlement", "MAX_BYTES_PER_TOKEN"]

_ZERO = Decimal(0)
# Tokens a server may bill beyond the text it returned (end-of-turn markers), when it reports no usage.
_UNSEEN_OUTPUT_TOKENS = 4
#: The longest text one output token decodes to in practice (BPE vocabularies' tokens are a few bytes; the
#: longest are runs of spaces). An answer longer than the cap times this cannot be within the cap, so the
#: transport stops reading it there: a server that ignores the cap cannot stream on at the run's expense.
MAX_BYTES_PER_TOKEN = 16


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

    def snapshot(self) -> dict[str, Any]:
        """Its figures at one instant, read under its lock."""
        with self._cond:
            return {"spent": self.spent, "reserved": self.reserved, "kept": self.kept, "overrun": self.overrun,
                    "waits": self.waits, "wait_seconds": self.wait_seconds}

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


@dataclass
class Counters:
    """What a run's calls did, counted; read by the budget summary."""

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


class Budget:
    """The money side of one run: prices, ledger, counters; admission and settlement of each attempt.

    It knows nothing of deadlines or halts: :class:`rlm.guards.Run` checks
    those, then asks the budget to admit. Prices are known once the model is:
    from the config, or when the endpoint learns the server's model
    (:meth:`price_model`).
    """

    def __init__(self, config: GuardConfig, parent: Budget | None = None) -> None:
        self.config = config
        self.pricing: Pricing | None = None
        self.token_counting = counting_method(config.model)
        if config.model is not None or config.has_price_override:
            self.pricing = config.pricing()
        self.ledger: Ledger = Ledger(Decimal(str(config.max_cost)), parent.ledger if parent is not None else None)
        self.counters = Counters()
        self._lock = threading.Lock()
        self._admissions = itertools.count(1)
        self._open: set[int] = set()

    def price_model(self, model: str) -> None:
        """Price the model the server turned out to serve (ConfigError for an unknown name with no price set)."""
        self.pricing = self.config.pricing(model)
        self.token_counting = counting_method(model)

    def count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + n)

    def add_worst_case(self, amount: Decimal) -> None:
        with self._lock:
            self.counters.dry_run_worst_case += amount

    def count_trip(self, limit: str) -> None:
        with self._lock:
            if limit not in self.counters.guard_trips:
                self.counters.guard_trips.append(limit)

    def count_cache(self, *, hit: bool, saved: Decimal = _ZERO) -> None:
        with self._lock:
            if hit:
                self.counters.cache_saved += saved
            else:
                self.counters.cache_misses += 1

    def token_error(self, counted: int) -> TokenLimitError | None:
        """The error for a request whose token upper bound is over ``max_tokens_per_subcall``, or None."""
        limit = self.config.max_tokens_per_subcall
        if counted <= limit:
            return None
        return TokenLimitError(
            f"This subcall's request counts up to {counted} tokens ({self.token_counting}), above "
            f"max_tokens_per_subcall={limit}. Send a smaller chunk (context_chunks / context_slice) "
            "or raise the limit (--tokens).",
            counted_tokens=counted, limit_tokens=limit,
        )

    def worst_case(self, counted: int) -> Decimal:
        """The most one call can cost: the prompt's upper bound plus the whole output cap."""
        assert self.pricing is not None, "the model must be resolved before a call is admitted"
        return self.pricing.cost(counted, self.config.max_output_tokens)

    def admit(self, counted: int, *, wait_until: float) -> Admission | None:
        """Reserve one attempt's worst case; None when ``wait_until`` came first. CostLimitError when it cannot fit.

        In a dry run the worst case is only added up; nothing is reserved.
        """
        worst = self.worst_case(counted)
        if self.config.dry_run:
            self.add_worst_case(worst)
            return Admission(next(self._admissions), counted, worst, dry_run=True)
        if not self.ledger.reserve(worst, wait_until=wait_until):
            return None
        admission = Admission(next(self._admissions), counted, worst)
        with self._lock:
            self._open.add(admission.id)
            self.counters.http_attempts += 1
        return admission

    def settle(self, admission: Admission, report: AttemptReport) -> Settlement:
        """Bill an admitted attempt exactly once, from what the transport reported.

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
        received = count_text_tokens(self.pricing.model, report.text)  # an upper bound of the text's tokens
        if report.complete and report.usage is not None and not report.over_cap:
            usage = report.usage
            cost = self.pricing.cost(usage.prompt_tokens, usage.completion_tokens)
            self.ledger.settle(reserved, cost)
            if usage.completion_tokens > cap:
                self.count(cap_breaches=1)  # billed as reported: the overrun shows in the summary
            return Settlement(cost, usage.prompt_tokens, usage.completion_tokens, "usage")
        if report.complete:
            # An answer that ran past the cap (the server ignored it) is billed at least what its text holds;
            # one cut at the cap used all of it (tokens that print nothing are billed too); one that stopped
            # by itself within the cap is bounded by its text. Never less than what was received.
            if report.over_cap:
                output = max(cap, received)
                self.count(cap_breaches=1)
            elif report.finish_reason == "length":
                output = cap
            else:
                output = min(cap, received + _UNSEEN_OUTPUT_TOKENS)
            cost = self.pricing.cost(admission.counted_tokens, output)
            self.ledger.settle(reserved, cost)
            if report.usage is None:
                self.count(usage_missing=1)
            return Settlement(cost, admission.counted_tokens, output, "bound")
        self.ledger.keep(reserved)
        return Settlement(reserved, admission.counted_tokens, cap, "kept")

    def calls_that_fit(self, request_tokens: int) -> int | None:
        """How many calls of ``request_tokens`` (an upper bound) still fit at their worst case; None unpriced."""
        if self.pricing is None:
            return None
        worst = self.worst_case(request_tokens)
        return int(self.ledger.remaining() // worst) if worst > 0 else None

    def summary(self) -> dict[str, Any]:
        """The money and call figures of the budget summary."""
        c, ledger = self.counters, self.ledger
        figures = ledger.snapshot()
        spent, reserved = figures["spent"], figures["reserved"]
        summary: dict[str, Any] = {
            "total_cost_usd": float(spent),
            "cost_budget_usd": float(ledger.budget),
            "cost_remaining_usd": float(max(ledger.budget - spent - reserved, _ZERO)),
            "total_calls": c.calls,
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
            "kept_reservations_usd": float(figures["kept"]),
            "usage_missing": c.usage_missing,
            "answers_defaulted": c.answers_defaulted,
            "output_cap_breaches": c.cap_breaches,
            "overrun_usd": float(figures["overrun"]),
            "admission_waits": figures["waits"],
            "admission_wait_seconds": round(figures["wait_seconds"], 3),
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
