"""Parallel subcalls and cached replay vs sequential subcalls, against one loopback server.

64 subcalls at 200 ms server latency: one at a time, then with parallel_map
over 16 workers (target <= 1.15x the ideal 64/16 x 200 ms = 0.8 s), then the
same task replayed from the warm response cache (target >= 50x faster than
the cold parallel run, with 0 requests and $0).

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
from rlm.loopback import LoopbackServer
from rlm.runtime import run_task
from rlm.subcalls import parallel_map, semantic_subcall_choice

PARALLEL_TARGET = 1.15
REPLAY_TARGET = 50.0


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
            before = len(server.chat_requests)
            start = time.perf_counter()
            result = run_task(task, document, config)
            seconds = time.perf_counter() - start
            assert result["status"] == "completed", result["error"]
            s = result["budget_summary"]
            row = {"name": name, "seconds": seconds, "requests": len(server.chat_requests) - before,
                   "cost": s["total_cost_usd"], "result": result["result"], "peak": server.max_in_flight}
            rows.append(row)
            server.reset()
            return row

        seq = measure("sequential", sequential, GuardConfig(**base))
        cold = measure(f"parallel_map, {args.workers} workers (cold cache)", parallel,
                       GuardConfig(**base, cache=True, cache_path=cache))
        warm = measure("replay from warm cache", parallel, GuardConfig(**base, cache=True, cache_path=cache))

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
