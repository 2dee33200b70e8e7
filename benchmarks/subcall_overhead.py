"""Per-call overhead of semantic_subcall vs the raw openai client, against one loopback server.

Both make the same request (same messages, model, temperature and output
cap, streamed with usage, as rlm always sends it) to the same local server,
interleaved so drift hits both alike; the raw client reads the stream with
the SDK's own iterator. The ratio of median latencies is what the runtime's
guards, accounting and tracing cost per call. Target: <= 1.10x. A raw
non-streamed call is timed too, for reference (what streaming itself costs).

    python benchmarks/subcall_overhead.py
    python benchmarks/subcall_overhead.py --calls 50 --latency 0.05
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first, to warm the connection pools")
    args = parser.parse_args(argv)

    with LoopbackServer(latency=args.latency, default="The database refused the connection.") as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
        config = GuardConfig(max_cost=100.0, max_runtime_seconds=3600)
        raw = openai.OpenAI(base_url=server.base_url, api_key="sk-benchmark", max_retries=0)
        # Exactly the request semantic_subcall sends.
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"{PROMPT}\n\nExcerpt:\n<<<\n{CHUNK}\n>>>"}]

        def raw_stream() -> str:
            stream = raw.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.0,
                                                 max_completion_tokens=1024, max_tokens=1024, stream=True,
                                                 stream_options={"include_usage": True})
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        def raw_whole() -> str:
            reply = raw.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.0,
                                                max_completion_tokens=1024, max_tokens=1024)
            return reply.choices[0].message.content or ""

        def rlm_call() -> str:
            return semantic_subcall(PROMPT, CHUNK)

        clients = (("raw openai, streamed", raw_stream), ("semantic_subcall (streamed)", rlm_call),
                   ("raw openai, not streamed", raw_whole))
        times: dict[str, list[float]] = {name: [] for name, _ in clients}
        with init_guards(config):
            assert raw_stream() == rlm_call() == raw_whole()  # same request, same answer
            for _ in range(args.warmup):
                for _name, fn in clients:
                    fn()
            for _ in range(args.calls):
                for name, fn in clients:
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
        ours = server.chat_requests[-2].body
        assert ours == server.chat_requests[-3].body  # semantic_subcall sent exactly the raw streamed request

    med = {name: median(t) * 1000 for name, t in times.items()}
    raw_ms, rlm_ms = med["raw openai, streamed"], med["semantic_subcall (streamed)"]
    ratio = rlm_ms / raw_ms
    print(f"\nsemantic_subcall vs raw openai client, {args.calls} interleaved calls each, "
          f"server latency {args.latency * 1000:.0f} ms\n")
    print(table(["client", "median ms/call", "p90 ms/call"], [
        [name, f"{med[name]:.3f}", f"{sorted(t)[int(len(t) * 0.9)] * 1000:.3f}"] for name, t in times.items()]))
    verdict = "ok" if ratio <= TARGET else "MISS"
    print(f"\nratio {ratio:.3f}x the raw streamed call (target <= {TARGET:.2f}x) {verdict}; "
          f"overhead {rlm_ms - raw_ms:+.3f} ms per call; {rlm_ms / med['raw openai, not streamed']:.3f}x the raw "
          "non-streamed call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
