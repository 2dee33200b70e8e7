"""An agent-like exploration of a big log through `rlm mcp`, against what `cat` and `grep` would hand it.

Starts the real MCP server (``python -m rlm mcp``) over stdio with the official MCP client, the loopback
model server behind ``run_task``, and walks a synthetic log the way an agent would: ``describe`` it,
``search`` for errors, narrow the pattern, ``read`` around a hit, ``run_task`` the built-in
``find_errors_in_log``, then ask the ``budget``. It prints each call's result size (what lands in the
agent's context) and the total, beside the output sizes of ``cat`` and of ``grep ERROR`` on the same
file. Target: the whole exploration under 50 KB.

    python benchmarks/mcp_exploration.py              # 1 GB
    python benchmarks/mcp_exploration.py --size 50M
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from _common import table
from context_search import parse_size, synthetic_log

from rlm.loopback import LoopbackServer, Reply

ROOT = Path(__file__).resolve().parent.parent
TARGET_TOTAL_BYTES = 50_000


def grep_bytes(path: Path, pattern: str) -> int:
    """How many bytes ``grep -F pattern path`` prints (what an agent's shell would put in its context)."""
    if shutil.which("grep") is None:
        return sum(len(line) for line in open(path, "rb") if pattern.encode() in line)
    proc = subprocess.Popen(["grep", "-F", pattern, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    total = 0
    while block := proc.stdout.read(1 << 20):
        total += len(block)
    proc.wait()
    return total


@contextlib.asynccontextmanager
async def connected(folder: Path, llm: LoopbackServer) -> AsyncIterator[Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(folder)),
           "PYTHONPATH": str(ROOT), "RLM_CACHE_DIR": str(folder / "cache"), "OPENAI_BASE_URL": llm.base_url,
           "OPENAI_API_KEY": "sk-loopback-0000000000", "RLM_PRICE_INPUT": "0.15", "RLM_PRICE_OUTPUT": "0.6",
           "RLM_TOKEN_COUNTING": "bytes"}
    params = StdioServerParameters(command=sys.executable, env=env, cwd=str(folder),
                                   args=["-m", "rlm", "mcp", "--root", str(folder), "--cost", "0.25",
                                         "--timeout", "120", "--no-cache"])
    try:
        sys.stderr.fileno()
        errlog = sys.stderr
    except (AttributeError, OSError, ValueError):  # a captured stderr (pytest): the server's goes to the real one
        errlog = sys.__stderr__
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def explore(log: Path, llm: LoopbackServer) -> list[tuple[str, int, float]]:
    """The agent's calls, in order: (call, result characters, seconds)."""
    calls: list[tuple[str, int, float]] = []
    async with connected(log.parent, llm) as session:

        async def call(label: str, tool: str, **args: Any) -> dict[str, Any]:
            started = time.perf_counter()
            result = await session.call_tool(tool, args)
            text = "".join(c.text for c in result.content if c.type == "text")
            calls.append((label, len(text.encode()), time.perf_counter() - started))
            if result.is_error:
                raise SystemExit(f"{tool} failed: {text}")
            return json.loads(text)  # type: ignore[no-any-return]

        name = log.name
        await call("describe(log)", "describe", path=name)
        errors = await call("search(log, 'ERROR', max_hits=20)", "search", path=name, pattern="ERROR", max_hits=20)
        narrow = await call("search(log, 'ERROR.*refused', max_hits=5)", "search", path=name,
                            pattern="ERROR.*refused", max_hits=5)
        hit = (narrow["hits"] or errors["hits"])[0]["span"]
        await call("read(log, hit - 500, hit + 500)", "read", path=name, start=max(hit[0] - 500, 0), end=hit[1] + 500)
        await call("search(log, 'FATAL', start=next_start)", "search", path=name, pattern="FATAL", max_hits=5,
                   start=errors.get("next_start", 0))
        await call("run_task(log, 'find_errors_in_log')", "run_task", path=name, task="find_errors_in_log")
        await call("budget()", "budget")
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="log size (e.g. 50M, 1G; default 1G)")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "rlm-bench"),
                        help="where the synthetic log is kept and reused")
    args = parser.parse_args(argv)
    try:
        import mcp  # noqa: F401
    except ImportError:
        print('This benchmark needs the MCP SDK: pip install "rlm[mcp]"', file=sys.stderr)
        return 2
    size = parse_size(args.size)
    log = synthetic_log(Path(args.dir), size)
    with LoopbackServer() as llm:
        llm.responder = lambda body: Reply('{"severity": "error", "summary": "The database refused a connection."}')
        calls = anyio.run(explore, log, llm)
    total = sum(n for _, n, _ in calls)
    rows = [[label, f"{n:,}", f"{seconds:.2f}"] for label, n, seconds in calls]
    rows.append(["total the agent received", f"{total:,}", f"{sum(s for _, _, s in calls):.2f}"])
    print(f"An agent explores {log.name} ({log.stat().st_size:,} bytes) through rlm mcp "
          f"(--max-result-chars 8000):\n")
    print(table(["call", "result bytes", "seconds"], rows))
    cat, grep = log.stat().st_size, grep_bytes(log, "ERROR")
    print(f"\nThe same look through a shell: `cat` puts {cat:,} bytes in the agent's context, "
          f"`grep ERROR` {grep:,} bytes; rlm mcp put {total:,} bytes "
          f"({total / max(grep, 1):.4%} of grep's, {total / max(cat, 1):.5%} of cat's).")
    verdict = "met" if total < TARGET_TOTAL_BYTES else "MISSED"
    print(f"Target: under {TARGET_TOTAL_BYTES:,} bytes in total: {verdict}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
