"""How fast the hard limits hold where a naive runtime's do not, each against a baseline in the same run.

1. A catastrophic pattern (``(a|aa)+$``) searched in a file under a runtime
   limit: when ``context_search`` returns, against the limit (target: within
   limit + 0.5 s). Baseline: Python's ``re`` on a much smaller input, timed
   in a child process that is killed at 10 s (it would not finish).
2. ``run.py`` with a task stuck in C code that holds the GIL (its own
   catastrophic ``re.match``): when the process ends, from the run's start
   (target: limit + 2 s), and what it printed.
3. A call abandoned at the deadline while the server is generating a long
   answer: how long the server went on generating after the client left
   (target: under 0.1 s). Baseline: the raw openai client, non-streamed,
   abandoned the same way (what llama.cpp does with it, modelled by the
   loopback server: it generates to the end).

    python benchmarks/guarantees.py
    python benchmarks/guarantees.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai  # imported up front: a process's first import of the SDK (~1 s) is not on any run's clock
from _common import table

from rlm.context_access import context_search
from rlm.guards import GuardConfig
from rlm.loopback import LoopbackServer, Reply
from rlm.runtime import run_task
from rlm.subcalls import semantic_subcall

ROOT = Path(__file__).resolve().parent.parent
STUCK = '''
import re
from rlm.context_access import context_head
from rlm.runtime import publish
from rlm.subcalls import semantic_subcall

def stuck(context):
    found = publish("found", [])
    found.append(semantic_subcall("Summarize.", context_head(context, 100)))
    semantic_subcall("Again.", context_head(context, 50))
    re.match(r"(a+)+$", "a" * 64 + "b")
    return found
'''


def catastrophic(tmp: Path, limit: float, size: int, patience: float) -> list[list[str]]:
    path = tmp / "as.log"
    line = b"a" * 4000 + b"b\n"
    path.write_bytes(line * (size // len(line) + 1))
    started = time.monotonic()
    result = run_task(lambda ctx: context_search(ctx, r"(a|aa)+$", max_hits=10), path,
                      GuardConfig(max_runtime_seconds=limit))
    ours = time.monotonic() - started
    code = "import re, time; t = time.monotonic(); re.search(r'(a|aa)+$', 'a' * 60 + 'b'); print(time.monotonic() - t)"
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, "-c", code], timeout=patience, capture_output=True)
        base = f"{time.monotonic() - started:.2f} s"
    except subprocess.TimeoutExpired:
        base = f"still running at {patience:g} s (killed)"
    return [["catastrophic (a|aa)+$", f"{path.stat().st_size / 1e6:.0f} MB file, limit {limit:g} s",
             f"returned at {ours:.2f} s ({result['status']}, {result['error'].split(':')[0]})",
             f"re, 61 characters: {base}", "ok" if ours <= limit + 0.5 else "MISS"]]


def stuck_in_c(tmp: Path, limit: float, server: LoopbackServer) -> list[list[str]]:
    task = tmp / "stuck.py"
    task.write_text(STUCK)
    trace = tmp / "stuck.jsonl"
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-benchmark")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(ROOT / "examples" / "server.log"), "--task",
                           f"{task}:stuck", "--timeout", str(limit), "--no-cache", "--trace", str(trace)],
                          env=env, capture_output=True, text=True, timeout=60)
    ended = time.time()
    wall = time.monotonic() - started
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    since_start = ended - events[0]["ts"]
    result = json.loads(proc.stdout)
    printed = (f"exit {proc.returncode}, {result['status']}, {result['budget_summary']['total_calls']} calls, "
               f"${result['budget_summary']['total_cost_usd']:.6f}, published {result['result']}")
    return [["task stuck in C (re.match)", f"run.py --timeout {limit:g}",
             f"ended {since_start:.2f} s after the run started ({wall:.2f} s with interpreter start); {printed}",
             "in-process: never, until re.match returns", "ok" if since_start <= limit + 2 else "MISS"]]


def abandoned(server: LoopbackServer, limit: float, words: int) -> list[list[str]]:
    server.token_interval = 0.005
    long_answer = "word " * words  # 1.25 tokens a word, 5 ms a token
    os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"] = server.base_url, "sk-benchmark"
    server.script(Reply(long_answer))
    run_task(lambda ctx: semantic_subcall("Write a lot.", "x"), "x",
             GuardConfig(max_runtime_seconds=limit, max_output_tokens=8000, max_tokens_per_subcall=9000))
    left = time.monotonic()
    ours = _wait_generation(server, left)
    server.script(Reply(long_answer))
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-benchmark", max_retries=0)
    thread = threading.Thread(target=lambda: _quietly(lambda: client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Write a lot."}], max_tokens=8000)), daemon=True)
    thread.start()
    thread.join(limit)  # the caller gives up at the same deadline; the request stays open
    left = time.monotonic()
    base = _wait_generation(server, left)
    server.token_interval = 0.0
    return [["abandoned call, server generating", f"deadline {limit:g} s, {ours[2]:,}-token answer",
             f"server stopped {ours[0]:.3f} s after the client left ({ours[1]} of {ours[2]} tokens generated)",
             f"raw client, not streamed: generated for {base[0]:.1f} s more ({base[1]} of {base[2]} tokens)",
             "ok" if ours[0] < 0.1 else "MISS"]]


def _quietly(fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except Exception:
        pass


def _wait_generation(server: LoopbackServer, left: float) -> tuple[float, int, int]:
    """(seconds the server generated after ``left``, tokens generated, tokens planned) of the last generation."""
    count = len(server.generations)
    while len(server.generations) == count and time.monotonic() - left < 60:
        time.sleep(0.005)
    generation = server.generations[-1]
    return max(generation.ended - left, 0.0), generation.tokens_generated, generation.tokens_planned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs and short limits (for the test suite)")
    args = parser.parse_args(argv)
    limit = 0.5 if args.quick else 3.0
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer(default="ok") as server:
        rows += catastrophic(Path(tmp), limit, 200_000 if args.quick else 5_000_000, 0.3 if args.quick else 10.0)
        rows += stuck_in_c(Path(tmp), limit, server)
        rows += abandoned(server, 0.3 if args.quick else 1.0, 100 if args.quick else 4000)
    print()
    print(table(["guarantee", "setup", "rlm", "baseline", "target"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
