"""The guarantee, as a property: whatever the prices, sizes, usages, faults and concurrency
(admission waiting for calls in flight included, and threads the task starts itself), spend never exceeds
max_cost, and the ledger is exactly what was billed for the answers plus the reservations kept for broken
attempts. A server that ignores the output cap is cut at the cap's bound and billed at least what arrived:
only that overrun, shown in the summary, can go past the budget."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlm import CostLimitError, GuardConfig, parallel_map, run_task, semantic_subcall
from rlm.guards import current_run
from rlm.loopback import Fault, LoopbackServer, Reply

CALLS_PER_WORKER = 6


class Scenario:
    """What the server does for the current example (the server outlives examples)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(0)
        self.usage = "random"
        self.fault_rate = 0.0

    def respond(self, body: dict[str, Any]) -> Reply | Fault:
        with self.lock:
            r = self.rng.random()
            if r < self.fault_rate:
                return self.rng.choice([Fault("malformed"), Fault.rate_limit(retry_after_ms=1), Fault("drop"),
                                        Fault.server_error(), Fault("cut", tokens=1)])
            prompt_bytes = sum(len(m["content"].encode()) for m in body["messages"])
            cap = body["max_completion_tokens"]
            mode = self.usage if self.usage != "mixed" else self.rng.choice(["random", "missing", "max"])
            if mode == "ignore_cap":  # streams 20 times the cap, with or without usage
                return Reply("word " * (cap * 4), completion_tokens=cap * 20, usage=self.rng.random() < 0.5)
            if mode == "missing":
                return Reply("answer", usage=False)
            if mode == "max":
                return Reply("answer", prompt_tokens=prompt_bytes, completion_tokens=cap)
            return Reply("answer", prompt_tokens=self.rng.randint(0, prompt_bytes),
                         completion_tokens=self.rng.randint(0, cap))


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LoopbackServer, Scenario]]:
    scenario = Scenario()
    with LoopbackServer(responder=scenario.respond) as srv:
        yield srv, scenario


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    price_in=st.sampled_from([0, 0.05, 0.15, 2.5, 15, 75]),
    price_out=st.sampled_from([0, 0.2, 0.6, 10, 60, 150]),
    chunk_len=st.integers(1, 2500),
    cap=st.integers(1, 2000),
    workers=st.integers(1, 6),
    budget_in_calls=st.floats(0.0, 8.0),
    usage=st.sampled_from(["random", "missing", "max", "mixed", "ignore_cap"]),
    spawn=st.sampled_from(["parallel_map", "threads"]),
    fault_rate=st.sampled_from([0.0, 0.0, 0.2]),
    seed=st.integers(0, 2**16),
)
def test_spend_never_exceeds_max_cost_and_the_ledger_balances(
    server: tuple[LoopbackServer, Scenario], monkeypatch: pytest.MonkeyPatch,
    price_in: float, price_out: float, chunk_len: int, cap: int, workers: int, budget_in_calls: float,
    usage: str, fault_rate: float, seed: int, spawn: str,
) -> None:
    srv, scenario = server
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    scenario.rng, scenario.usage, scenario.fault_rate = random.Random(seed), usage, fault_rate
    worst_guess = ((chunk_len + 400) * price_in + cap * price_out) / 1e6
    config = GuardConfig(
        max_cost=max(budget_in_calls * worst_guess, 1e-9), max_output_tokens=cap, max_tokens_per_subcall=100_000,
        price_input_per_mtok=price_in, price_output_per_mtok=price_out, max_retries=2,
    )
    seen: dict[str, Any] = {}

    def worker(i: int) -> int:
        for n in range(CALLS_PER_WORKER):
            semantic_subcall(f"Question {i}.{n}", "x" * chunk_len)
        return CALLS_PER_WORKER

    def own_thread(i: int) -> None:  # a task written with threading instead of parallel_map
        with contextlib.suppress(Exception):
            worker(i)

    def task(ctx: Any) -> Any:
        seen["run"] = current_run()
        if spawn == "threads":
            threads = [threading.Thread(target=own_thread, args=(i,)) for i in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return "joined"
        try:
            return parallel_map(worker, range(workers), max_workers=workers, return_exceptions=True)
        except CostLimitError:
            return "halted"

    result = run_task(task, "ctx", config)
    run = seen["run"]
    ledger = run.budget.ledger
    assert result["status"] in ("completed", "partial"), result["error"]
    # Only a server that broke the cap can bill past a reservation, and it is counted where it did.
    assert ledger.spent <= ledger.budget + ledger.overrun
    assert (ledger.overrun == 0) == (result["budget_summary"]["output_cap_breaches"] == 0 or price_out == 0)
    if usage != "ignore_cap":
        assert ledger.spent <= ledger.budget
    assert ledger.reserved == 0
    # Every answer was billed once: at its reported usage, or at the bound recorded when none was reported.
    billed = sum((run.budget.pricing.cost(r.input_tokens, r.output_tokens) for r in run.records if not r.cached),
                 Decimal(0))
    assert ledger.settled == billed
    assert ledger.spent == ledger.settled + ledger.kept
    summary = result["budget_summary"]
    assert summary["total_cost_usd"] <= summary["cost_budget_usd"] + summary["overrun_usd"] + 1e-12
    assert summary["total_calls"] == len(run.records)
