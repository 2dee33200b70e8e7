"""Per-call overhead of semantic_subcall vs the raw openai client, against one loopback server.

Both make the same request (same messages, model, temperature and output
cap) to the same local server, interleaved so drift hits both alike. The
ratio of median latencies is what the runtime's guards, accounting and
tracing cost per call. Target: <= 1.10x.

    python benchmarks/subcall_overhead.py
    python benchmarks/subcall_overhead.py --calls 50 --latency 0.05
"""

from __future__ import annotations

import argparse
import contextvars
import os
import time

import openai
from _common import median, table

from rlm.guards import GuardConfig, init_guards
from rlm.loopback import LoopbackServer
from rlm.subcalls import SYSTEM_PROMPT, semantic_subcall

TARGET = 1.10
CHUNK = "2026-03-14T09:05:39Z ERROR [worker-1] database connection refused: connect ECONNREFUSED\n" * 8
PROMPT = "What went wrong? Answer in one sentence."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.0, help="server latency per answer, seconds")
    args = parser.parse_args(argv)

    with LoopbackServer(latency=args.latency, default="The database refused the connection.") as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
        config = GuardConfig(max_cost=100.0, max_runtime_seconds=3600)
        raw = openai.OpenAI(base_url=server.base_url, api_key="sk-benchmark", max_retries=0)
        # Exactly the request semantic_subcall sends.
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"{PROMPT}\n\nExcerpt:\n<<<\n{CHUNK}\n>>>"}]

        def raw_call() -> str:
            reply = raw.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.0,
                                                max_completion_tokens=1024, max_tokens=1024)
            return reply.choices[0].message.content or ""

        ctx = contextvars.copy_context()
        ctx.run(init_guards, config)

        def rlm_call() -> str:
            return ctx.run(semantic_subcall, PROMPT, CHUNK)

        assert raw_call() == rlm_call()  # same request, same answer
        for _ in range(20):  # warm both connection pools
            raw_call()
            rlm_call()
        raw_times: list[float] = []
        rlm_times: list[float] = []
        for _ in range(args.calls):
            for fn, times in ((raw_call, raw_times), (rlm_call, rlm_times)):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        bodies = server.chat_requests
        assert bodies[-1].body == bodies[-2].body | {"max_tokens": 1024} or bodies[-1].body["messages"] == messages

    raw_ms, rlm_ms = median(raw_times) * 1000, median(rlm_times) * 1000
    ratio = rlm_ms / raw_ms
    print(f"\nsemantic_subcall vs raw openai client, {args.calls} interleaved calls each, "
          f"server latency {args.latency * 1000:.0f} ms\n")
    print(table(["client", "median ms/call", "p90 ms/call"], [
        ["raw openai", f"{raw_ms:.3f}", f"{sorted(raw_times)[int(len(raw_times) * 0.9)] * 1000:.3f}"],
        ["semantic_subcall", f"{rlm_ms:.3f}", f"{sorted(rlm_times)[int(len(rlm_times) * 0.9)] * 1000:.3f}"],
    ]))
    print(f"\nratio {ratio:.3f}x (target <= {TARGET:.2f}x) {'ok' if ratio <= TARGET else 'MISS'}; "
          f"overhead {rlm_ms - raw_ms:+.3f} ms per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
