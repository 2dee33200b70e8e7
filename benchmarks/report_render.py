"""The HTML audit report of a 100,000-subcall run: file size, build time and in-browser render time.

A synthetic log and a synthetic trace of one run are generated (every chunk's
SHA-256 matches the log, so chunk texts are embedded up to the report's cap),
the report is built, and headless Chromium opens it from disk several times.
The page measures itself: ``performance.now()`` when its script has built the
map, chart and table and the layout is done, written into the DOM and read back
through ``--dump-dom``. Targets: under 20 MB, under 2 s to render. A blank page
opened the same way is the baseline for Chromium's own start-up.

    python benchmarks/report_render.py
    python benchmarks/report_render.py --subcalls 2000 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import table

from rlm.report import render_report

SIZE_TARGET_MB = 20.0
RENDER_TARGET_S = 2.0
WINDOW = 600  # bytes per chunk
STRIDE = 400  # chunks overlap by a third, like windows around neighbouring hits
LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")
ANSWERS = ("critical", "error", "warning", "info", "The worker ran out of memory while resizing images.",
           "A database connection was refused; the request was retried.")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def make_log(path: Path, size: int) -> bytes:
    lines = []
    total = i = 0
    while total < size:
        level = LEVELS[i % len(LEVELS)]
        line = (f"2026-03-14T{9 + i // 36000 % 12:02d}:{i // 600 % 60:02d}:{i // 10 % 60:02d}Z {level:<5} "
                f"[worker-{i % 7}] request {i} handled in {(i * 37) % 900} ms for /api/v1/orders\n")
        lines.append(line)
        total += len(line)
        i += 1
    data = "".join(lines).encode()
    path.write_bytes(data)
    return data


def make_trace(trace: Path, log: Path, data: bytes, subcalls: int) -> None:
    t0 = 1_790_000_000.0
    seq = 0
    out = trace.open("w", encoding="utf-8")

    def emit(event: str, ts: float, **fields: Any) -> None:
        nonlocal seq
        seq += 1
        record = {"event": event, "run_id": "bench0000001", "seq": seq, "ts": round(ts, 6), **fields}
        out.write(json.dumps(record) + "\n")

    config = {"max_cost": 25.0, "max_tokens_per_subcall": 4000, "max_runtime_seconds": 3600.0, "model": "gpt-4o-mini",
              "max_depth": 1, "max_output_tokens": 256, "price_input_per_mtok": None, "price_output_per_mtok": None,
              "temperature": 0.0, "max_retries": 4, "max_workers": 16, "trace_path": str(trace), "dry_run": False,
              "cache": True, "cache_path": None, "cache_nonzero_temperature": False}
    emit("run_start", t0, task="classify_everything", config=config,
         context={"name": str(log), "length": len(data), "unit": "bytes", "mapped": True}, depth=0)
    for k in range(20):
        lo = len(data) * k // 20
        emit("context_access", t0 + 0.01 * k, function="context_search", start=lo, end=lo + len(data) // 40,
             returned=100, detail=rf"(?i)\b(error|warn)\b.*worker-{k % 7}", context=str(log))
    spent = 0.0
    span = 1800.0  # seconds of wall clock the synthetic run took
    findings = []
    for i in range(subcalls):
        start = (i * STRIDE) % max(len(data) - WINDOW, 1)
        end = min(start + WINDOW, len(data))
        text = data[start:end].decode("utf-8", errors="replace")
        ts = t0 + 1.0 + span * (i + 1) / subcalls
        emit("context_access", ts - 0.3, function="context_slice", start=start, end=end, returned=end - start,
             detail="", context=str(log))
        line = text.split("\n", 2)[1] if text.count("\n") >= 2 else text[:100]
        answer = ANSWERS[i % len(ANSWERS)]
        cached = i % 11 == 0
        cost = 0.0 if cached else 4.2e-05 + (i % 13) * 1e-06
        spent += cost
        emit("subcall", ts, kind="choice" if i % 3 else "text",
             instruction=f"How severe is this log event: {line[:120]!r}? Use the surrounding lines as context.",
             chunk_start=start, chunk_end=end,
             chunk_sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
             model="gpt-4o-mini", answer=answer, counted_tokens=700, input_tokens=0 if cached else 280,
             output_tokens=0 if cached else 2 + len(answer) // 4, cost_usd=cost,
             reserved_usd=0.0 if cached else 0.00026,
             latency_seconds=0.0 if cached else 0.08 + (i % 17) * 0.01, retries=1 if i % 97 == 0 else 0,
             usage_reported=True, cached=cached, dry_run=False)
        if i % 50 == 0 and len(findings) < 1000:
            findings.append({"severity": answer if len(answer) < 10 else "error", "summary": line[:200],
                             "start": start, "end": end})
    trip = "The next model call could cost up to $0.000260 but only $0.000100 of the $25.00 budget remains."
    emit("guard_trip", t0 + span + 1.5, limit="cost", error="CostLimitError", message=trip)
    summary = {"total_cost_usd": spent, "cost_budget_usd": 25.0, "cost_remaining_usd": max(25.0 - spent, 0.0),
               "total_calls": subcalls - (subcalls + 10) // 11, "elapsed_seconds": span + 1.6,
               "runtime_limit_seconds": 3600.0, "model": "gpt-4o-mini",
               "price": {"model": "gpt-4o-mini", "source": "genai-prices (openai)", "input_usd_per_mtok": 0.15,
                         "output_usd_per_mtok": 0.6},
               "input_tokens": 0, "output_tokens": 0, "token_counting": "tiktoken o200k_base"}
    emit("run_end", t0 + span + 1.6, status="partial", error=f"CostLimitError: {trip}", budget_summary=summary,
         result={"findings": findings, "count": len(findings)})
    out.close()


def open_in_chromium(browser: str, page: Path, profile: Path) -> tuple[float, dict[str, str]]:
    """Wall seconds for headless Chromium to load ``page`` and dump its DOM, and the root element's attributes."""
    began = time.perf_counter()
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1400,1000", "--virtual-time-budget=5000", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    wall = time.perf_counter() - began
    m = re.search(r"<html([^>]*)>", proc.stdout)
    attrs = {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', m.group(1))} if m else {}
    return wall, attrs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subcalls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="browser runs (the median is reported)")
    parser.add_argument("--keep", metavar="DIR", help="write the log, trace and report here and keep them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.keep) if args.keep else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        log, trace, page = where / "synthetic.log", where / "trace.jsonl", where / "report.html"
        began = time.perf_counter()
        data = make_log(log, args.subcalls * STRIDE + WINDOW)
        trace.unlink(missing_ok=True)
        make_trace(trace, log, data, args.subcalls)
        generated = time.perf_counter() - began
        stats = render_report(trace, page)
        size_mb = stats.bytes / 1e6
        print(f"synthetic run: {args.subcalls:,} subcalls, log {len(data) / 1e6:.1f} MB, "
              f"trace {trace.stat().st_size / 1e6:.1f} MB (generated in {generated:.1f} s)")
        rows = [["report file size", f"{size_mb:.1f} MB", f"< {SIZE_TARGET_MB:g} MB",
                 "ok" if size_mb < SIZE_TARGET_MB else "MISSED"],
                ["report build (Python)", f"{stats.seconds:.2f} s", "", ""]]
        browser = chromium()
        if browser is None:
            rows.append(["in-browser render", "skipped: chromium not found", f"< {RENDER_TARGET_S:g} s", ""])
        else:
            blank = where / "blank.html"
            blank.write_text("<!DOCTYPE html><title>blank</title><p>blank</p>")
            profile = Path(tmp) / "profile"
            base_wall = statistics.median(open_in_chromium(browser, blank, profile)[0] for _ in range(args.repeat))
            renders, walls, stages, errors = [], [], [], set()
            for _ in range(args.repeat):
                wall, attrs = open_in_chromium(browser, page, profile)
                if attrs.get("data-rendered") != "1":
                    errors.add("the page did not finish rendering")
                if attrs.get("data-errors", "[]") != "[]":
                    errors.add(attrs.get("data-errors", ""))
                renders.append(float(attrs.get("data-render-ms", "nan")) / 1000)
                stages.append(json.loads(attrs.get("data-render-stages", "{}")))
                walls.append(wall)
            render_s = statistics.median(renders)
            rows.append(["in-browser render (page's performance.now())", f"{render_s:.2f} s",
                         f"< {RENDER_TARGET_S:g} s", "ok" if render_s < RENDER_TARGET_S and not errors else "MISSED"])
            mid = stages[renders.index(render_s)] if render_s in renders else stages[0]
            if mid:
                rows.append(["  of which: HTML read and parsed / data parsed / table built (s)",
                             " / ".join(f"{mid.get(k, 0) / 1000:.2f}" for k in ("script", "json", "table")), "", ""])
            rows.append(["chromium load + dump, wall", f"{statistics.median(walls):.2f} s",
                         f"blank page {base_wall:.2f} s", ""])
            if errors:
                rows.append(["page errors", "; ".join(sorted(errors))[:300], "none", "MISSED"])
        print(table(["measure", "result", "target", ""], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
