"""The example tasks on a large log and on a corpus of many files: dry run and against the loopback server.

For each input it prints the wall time, the peak anonymous memory (RssAnon: mapped files are page cache,
not counted), the bytes scanned and the subcalls, and compares the programmatic phase (the dry run: the
whole scan, no model) with ``grep -c`` of the same pattern on the same input, measured in the same run.
Targets: the log task's programmatic phase within 2x grep, RssAnon under 150 MB, subcalls bounded
whatever the size.

    python benchmarks/example_tasks.py                  # a 1 GB log and 1,000 files
    python benchmarks/example_tasks.py --size 20M --files 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import openai  # noqa: F401  # imported up front: a process's first import of the SDK is on no run's clock
from _common import peak_rss_anon, rss_anon_mb, table
from context_search import generate, parse_size, synthetic_log

from rlm.guards import GuardConfig
from rlm.loopback import LoopbackServer
from rlm.runtime import run_task
from rlm.tasks import builtin_task

analyze_document, find_errors_in_log = builtin_task("analyze_document"), builtin_task("find_errors_in_log")

GREP_PATTERN = r"\b(error|exception|fatal|critical|traceback|panic)\b"  # the log task's problem lines
TARGET_RATIO = 2.0
TARGET_RSS_MB = 150.0
JUDGED = '{"severity": "error", "summary": "A component failed."}'


def grep_seconds(paths: list[Path]) -> tuple[float, int]:
    grep = shutil.which("grep")
    if grep is None:
        raise SystemExit("GNU grep is needed as the baseline.")
    started = time.perf_counter()
    out = subprocess.run([grep, "-ciE", GREP_PATTERN, *map(str, paths)], capture_output=True, text=True)
    lines = sum(int(line.rsplit(":", 1)[-1]) for line in out.stdout.split())
    return time.perf_counter() - started, lines


def measure(task: Any, source: Any, config: GuardConfig) -> dict[str, Any]:
    with peak_rss_anon() as peak:
        started = time.perf_counter()
        result = run_task(task, source, config)
        seconds = time.perf_counter() - started
    assert result["status"] == "completed", result["error"]
    summary = result["budget_summary"]
    calls = summary["dry_run"]["subcalls"] if config.dry_run else summary["total_calls"]
    return {"seconds": seconds, "rss": peak[0], "calls": calls, "result": result["result"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="the large log, e.g. 1G, 50M")
    parser.add_argument("--files", type=int, default=1000, help="files in the corpus")
    parser.add_argument("--file-size", type=parse_size, default=parse_size("100K"), help="size of each file")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "rlm-bench")
    args = parser.parse_args(argv)
    log = synthetic_log(args.dir, args.size)
    corpus = args.dir / f"corpus-{args.files}x{args.file_size}"
    if not corpus.exists():
        print(f"generating {corpus} ...", flush=True)
        partial = corpus.with_suffix(".partial")
        partial.mkdir(exist_ok=True)
        for i in range(args.files):
            generate(partial / f"server-{i:05d}.log", args.file_size, seed=i)
        partial.rename(corpus)
    corpus_files = sorted(corpus.iterdir())
    inputs = [("log", log, [log]), (f"{args.files} files", corpus, corpus_files)]
    rows, failures = [], []
    baseline = rss_anon_mb()
    with LoopbackServer(default=JUDGED) as server:
        os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"] = server.base_url, "sk-benchmark"
        priced = dict(price_input_per_mtok=0.15, price_output_per_mtok=0.6, max_runtime_seconds=3600, max_cost=5.0)
        for label, source, files in inputs:
            grep_s, grep_lines = grep_seconds(files)
            size = sum(f.stat().st_size for f in files)
            for task in (find_errors_in_log, analyze_document):
                dry = measure(task, source, GuardConfig(dry_run=True, **priced))
                live = measure(task, source, GuardConfig(**priced))
                if task is find_errors_in_log:
                    scanned = dry["result"]["metadata"]["bytes_scanned"]
                    lines = dry["result"]["metadata"]["problem_lines"]
                    ratio = dry["seconds"] / grep_s
                    verdict = "ok" if ratio <= TARGET_RATIO else "MISS"
                    if verdict == "MISS":
                        failures.append(f"{label}: log task {ratio:.2f}x grep")
                    versus = f"{ratio:.2f}x grep ({grep_s:.2f} s, {grep_lines} lines; ours {lines}) {verdict}"
                else:
                    scanned, versus = dry["result"]["metadata"]["bytes"], ""
                peak = max(dry["rss"], live["rss"])
                if peak >= TARGET_RSS_MB:
                    failures.append(f"{label}: {task.__name__} RssAnon {peak:.0f} MB")
                rows.append([label, task.__name__, f"{size / 1e6:,.0f} MB", f"{scanned / 1e6:,.0f} MB",
                             f"{dry['seconds']:.2f}", f"{live['seconds']:.2f}", f"{dry['calls']} / {live['calls']}",
                             f"{peak:.0f}", versus])
    print(f"\nexample tasks; RssAnon {baseline:.0f} MB at the start\n")
    print(table(["input", "task", "size", "scanned", "dry run s", "live s", "subcalls dry / live", "RssAnon MB",
                 f"scan vs grep -c (target <= {TARGET_RATIO:.0f}x)"], rows))
    print("\nall targets met" if not failures else "\ntargets missed: " + "; ".join(failures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
