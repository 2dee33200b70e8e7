"""Parallel subcalls and cached replay vs sequential subcalls, against one loopback server.

64 subcalls at 200 ms server latency: one at a time, then with parallel_map
over 16 workers (target <= 1.15x the ideal 64/16 x 200 ms = 0.8 s), then the
same task replayed from the warm response cache (target >= 50x faster than
the cold parallel run, with 0 requests and $0). Last, how many calls one
budget buys when every worker calls until the budget halts it, with 1 and
with 8 workers (target: 8 workers buy >= 90% of what 1 buys; admission waits
for calls in flight instead of halting on their reservations).

    python benchmarks/parallel.py
    python benchmarks/parallel.py --calls 16 --workers 4 --latency 0.05
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import table

from rlm.context_access import Context, context_chunks
from rlm.guards import GuardConfig
from rlm.loopback import LoopbackServer, Reply
from rlm.runtime import run_task
from rlm.subcalls import parallel_map, semantic_subcall, semantic_subcall_choice

PARALLEL_TARGET = 1.15
REPLAY_TARGET = 50.0
BUDGET_TARGET = 0.90


def calls_bought(server: LoopbackServer, workers: int, budget_calls: int) -> tuple[int, float]:
    """(calls, dollars) one budget of ``budget_calls`` worst cases buys with every worker calling until halted."""
    server.responder = lambda body: Reply("answer", prompt_tokens=20, completion_tokens=60)
    config = GuardConfig(max_cost=budget_calls * 100e-6, max_output_tokens=100, max_workers=workers,
                         price_input_per_mtok=0, price_output_per_mtok=1.0, max_runtime_seconds=600)

    def worker(_: int) -> None:
        while True:
            semantic_subcall("q", "c")

    result = run_task(lambda ctx: parallel_map(worker, range(workers)), "x", config)
    server.responder = None
    return result["budget_summary"]["total_calls"], result["budget_summary"]["total_cost_usd"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args(argv)
    document = "".join(f"2026-03-14T09:{i % 60:02d}:00Z ERROR [worker-{i % 7}] failure number {i}\n"
                       for i in range(args.calls))

    def windows(ctx: Context) -> list[Any]:
        return list(context_chunks(ctx, 60))[: args.calls]

    def classify(chunk: Any) -> str:
        return semantic_subcall_choice("Severity?", chunk, ["critical", "warning", "info"], default="info")

    def sequential(ctx: Context) -> list[str]:
        return [classify(w) for w in windows(ctx)]

    def parallel(ctx: Context) -> list[str]:
        return parallel_map(classify, windows(ctx), max_workers=args.workers)

    rows = []
    with LoopbackServer(latency=args.latency, default="warning") as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
        base = dict(max_cost=10.0, max_runtime_seconds=600, max_workers=args.workers)
        cache = str(Path(tmp) / "cache.sqlite3")

        def measure(name: str, task: Any, config: GuardConfig) -> dict[str, Any]:
            before = len(server.requests)
            start = time.perf_counter()
            result = run_task(task, document, config)
            seconds = time.perf_counter() - start
            assert result["status"] == "completed", result["error"]
            s = result["budget_summary"]
            row = {"name": name, "seconds": seconds, "requests": len(server.requests) - before,
                   "cost": s["total_cost_usd"], "result": result["result"], "peak": server.max_in_flight}
            rows.append(row)
            server.reset()
            return row

        seq = measure("sequential", sequential, GuardConfig(**base))
        cold = measure(f"parallel_map, {args.workers} workers (cold cache)", parallel,
                       GuardConfig(**base, cache=True, cache_path=cache))
        warm = measure("replay from warm cache", parallel, GuardConfig(**base, cache=True, cache_path=cache))

        budget_calls = max(args.calls // 2, 4)
        one, one_usd = calls_bought(server, 1, budget_calls)
        eight, eight_usd = calls_bought(server, 8, budget_calls)

    ideal = args.calls / args.workers * args.latency
    assert seq["result"] == cold["result"] == warm["result"]
    print(f"\n{args.calls} subcalls, server latency {args.latency * 1000:.0f} ms\n")
    print(table(["run", "seconds", "requests", "max in flight", "cost USD", "vs sequential"], [
        [r["name"], f"{r['seconds']:.3f}", r["requests"], r["peak"], f"{r['cost']:.6f}",
         f"{seq['seconds'] / r['seconds']:.1f}x faster"] for r in rows]))
    par_ratio = cold["seconds"] / ideal
    replay_speedup = cold["seconds"] / warm["seconds"]
    print(f"\nparallel: {par_ratio:.3f}x the ideal {ideal:.3f} s (target <= {PARALLEL_TARGET}x) "
          f"{'ok' if par_ratio <= PARALLEL_TARGET else 'MISS'}")
    print(f"replay: {replay_speedup:.0f}x faster than the cold run, {warm['requests']} requests, "
          f"${warm['cost']:.2f} (target >= {REPLAY_TARGET:.0f}x, 0 requests, $0) "
          f"{'ok' if replay_speedup >= REPLAY_TARGET and warm['requests'] == 0 and warm['cost'] == 0 else 'MISS'}")
    share = eight / one if one else 0.0
    print(f"budget of {budget_calls} worst-case calls (${budget_calls * 100e-6:.4f}), every worker calling until "
          f"halted: 1 worker bought {one} calls (${one_usd:.6f}), 8 workers bought {eight} (${eight_usd:.6f}) "
          f"= {share:.0%} (target >= {BUDGET_TARGET:.0%}) {'ok' if share >= BUDGET_TARGET else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
