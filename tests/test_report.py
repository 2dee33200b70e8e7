"""The HTML audit report: built from real traced runs, checked in Python and in headless Chromium."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlm import (
    context_head,
    context_search,
    context_slice,
    run_task,
    semantic_subcall,
    semantic_subcall_choice,
)
from rlm._exits import EXIT_COMPLETED, EXIT_INTERNAL, EXIT_SIGINT, EXIT_USAGE
from rlm.context_access import Context
from rlm.errors import ReportError, RLMError
from rlm.guards import GuardConfig
from rlm.loopback import LoopbackServer
from rlm.report import main, render_report
from rlm.tasks import builtin_task
from rlm.trace import TraceReader, TraceWriter, read_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): the in-browser checks need it")

INJECTION = "</script><img src=x onerror=\"document.documentElement.setAttribute('data-pwned','1')\">"
LINE = 50  # every line of the test document is 50 bytes, so spans are easy to reason about


def document(path: Path) -> bytes:
    """200 lines of 50 ASCII bytes; ERROR on lines 30 and 120; markup and a marker inside [3000, 3500)."""
    lines = []
    for i in range(200):
        body = {30: "ERROR database connection refused", 120: "ERROR worker crashed",
                62: "<script>alert(1)</script></script><img src=x>", 65: "MARKER-3250 payment timeout"}.get(i, "INFO ok")
        lines.append(f"{i:04d} {body:<44.44}\n")
    data = "".join(lines).encode()
    assert len(data) == 200 * LINE
    path.write_bytes(data)
    return data


def task(ctx: Context) -> dict[str, Any]:
    """Searches up to the second ERROR, reads [0, 500) and [1000, 2000), sends [3000, 3500) and [3200, 3800)."""
    hits = context_search(ctx, "ERROR", max_hits=2)
    context_head(ctx, 500)
    context_slice(ctx, 1000, 2000)
    summary = semantic_subcall("Summarise this </script> excerpt.", context_slice(ctx, 3000, 3500))
    severity = semantic_subcall_choice("Severity?", context_slice(ctx, 3200, 3800), ["error", "info"], default="info")
    return {"hits": len(hits), "summary": summary, "severity": severity}


def traced_run(llm: LoopbackServer, tmp_path: Path, fn: Any = task) -> tuple[Path, Path, bytes]:
    log = tmp_path / "app.log"
    data = document(log)
    trace = tmp_path / "run.jsonl"
    llm.script(INJECTION, "error")
    result = run_task(fn, log, GuardConfig(trace_path=str(trace)))
    assert result["status"] == "completed", result["error"]
    return trace, log, data


def page_data(page: Path) -> dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    blob = text.split('<script type="application/json" id="rlm-data">', 1)[1].split("</script>", 1)[0]
    data: dict[str, Any] = json.loads(blob)
    return data


def column(data: dict[str, Any], name: str) -> list[int]:
    """One row column, decoded as the page decodes it."""
    raw, n = data["rows"][name], data["n"]
    if isinstance(raw, list):
        return raw
    if "c" in raw:
        return [raw["c"]] * n
    out, acc = [], 0
    for delta in raw["d"]:
        acc += delta
        out.append(acc)
    return out


def write_trace(path: Path, events: list[dict[str, Any]], run_id: str = "synthetic001") -> None:
    with path.open("a", encoding="utf-8") as f:
        for seq, event in enumerate(events, 1):
            f.write(json.dumps({"event": event.pop("event"), "run_id": run_id, "seq": seq,
                                "ts": 1_790_000_000 + seq / 100, **event}) + "\n")


def with_result(trace: Path, result: Any) -> None:
    """Add ``result`` to the trace's run_end, as the runtime will once run_end carries it."""
    lines = trace.read_text().splitlines()
    end = json.loads(lines[-1])
    assert end["event"] == "run_end"
    lines[-1] = json.dumps({**end, "result": result})
    trace.write_text("\n".join(lines) + "\n")


# -- built from a real run, checked in Python ---------------------------------------


def test_coverage_is_exact_and_chunk_text_is_shown_only_while_the_file_matches(
        llm: LoopbackServer, tmp_path: Path) -> None:
    trace, log, data = traced_run(llm, tmp_path)
    stats = render_report(trace, tmp_path / "report.html")
    assert stats.subcalls == 2 and stats.bytes == (tmp_path / "report.html").stat().st_size

    page = page_data(stats.path)
    meta = page["meta"]
    assert meta["context"]["length"] == len(data) and meta["unit"] == "bytes"
    [bar] = meta["bars"]
    second_error = data.index(b"ERROR", data.index(b"ERROR") + 1)
    assert bar["lanes"]["searched"]["covered"] == second_error + len("ERROR")
    assert bar["lanes"]["read"]["covered"] == 500 + 1000 + 800  # [0,500) [1000,2000) [3000,3800)
    assert bar["lanes"]["read"]["percent"] == 23.0
    assert bar["lanes"]["sent"]["covered"] == 800 and bar["lanes"]["sent"]["percent"] == 8.0
    assert meta["totals"]["sent"] == {"covered": 800, "length": len(data), "percent": 8.0}

    strings = page["strings"]
    assert column(page, "s") == [3000, 3200] and column(page, "e") == [3500, 3800]
    assert column(page, "tst") == [1, 1]  # both texts embedded whole, their SHA-256 checked
    assert [strings[i] for i in column(page, "txt")] == [data[3000:3500].decode(), data[3200:3800].decode()]
    assert strings[column(page, "ans")[0]] == INJECTION

    log.write_bytes(data.replace(b"MARKER-3250", b"MARKER-9999"))  # the file changes after the run
    render_report(trace, tmp_path / "after.html")
    after = page_data(tmp_path / "after.html")
    assert column(after, "tst") == [4, 4] and column(after, "txt") == [-1, -1]  # "file changed since the run"
    assert "MARKER" not in (tmp_path / "after.html").read_text()

    log.unlink()
    render_report(trace, tmp_path / "gone.html")
    assert column(page_data(tmp_path / "gone.html"), "tst") == [5, 5]  # no file on disk


def test_nothing_from_the_trace_or_the_document_can_become_markup(llm: LoopbackServer, tmp_path: Path) -> None:
    trace, _, _ = traced_run(llm, tmp_path, lambda ctx: task(ctx))  # the task is named "<lambda>"
    text = render_report(trace, tmp_path / "report.html").path.read_text()
    assert text.count("</script>") == 2  # the data element's and the code's own; no other closes a script
    assert "<img" not in text and "<script>alert" not in text
    assert "&lt;locals&gt;.&lt;lambda&gt; (" in text.split("</title>")[0]  # the task's name, escaped in the title
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp is not None and "default-src 'none'" in csp.group(1) and "'unsafe-inline'" not in csp.group(1).split(
        "script-src")[1].split(";")[0]
    assert not re.search(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=", text)  # nothing is fetched


def test_findings_with_a_span_in_the_result_are_linked_to_the_map(llm: LoopbackServer, tmp_path: Path) -> None:
    trace, _, _ = traced_run(llm, tmp_path)
    with_result(trace, {"findings": [
        {"severity": "error", "summary": "database refused", "span": [1500, 1550]},
        {"claim": "a line", "start": 3100, "end": 3150},
        {"title": "an example", "example": {"span": [9000, 9100], "text": "x"}},
        {"note": "no span here"},
    ]})
    result = page_data(render_report(trace, tmp_path / "report.html").path)["meta"]["result"]
    assert result["present"] and result["findings_total"] == 3
    assert [(f["label"], f["tag"], f["s"], f["e"], f["bar"]) for f in result["findings"]] == [
        ("database refused", "error", 1500, 1550, 0), ("a line", "", 3100, 3150, 0), ("an example", "", 9000, 9100, 0)]
    assert '"note": "no span here"' in result["text"]


def test_the_last_run_is_shown_unless_another_is_named(llm: LoopbackServer, tmp_path: Path) -> None:
    trace, log, _ = traced_run(llm, tmp_path)
    run_task(lambda ctx: context_head(ctx, 10), log, GuardConfig(trace_path=str(trace)))
    first, last = dict.fromkeys(json.loads(line)["run_id"] for line in trace.read_text().splitlines())
    assert render_report(trace, tmp_path / "last.html").run_id == last
    chosen = render_report(trace, tmp_path / "first.html", run_id=first)
    assert chosen.run_id == first and chosen.subcalls == 2
    assert page_data(chosen.path)["meta"]["run"]["other_runs"] == [last]
    with pytest.raises(ReportError) as err:
        render_report(trace, tmp_path / "x.html", run_id="nope")
    assert err.value.reason == "unknown_run" and err.value.run_ids == (first, last) and "--run-id" in str(err.value)
    assert isinstance(err.value, RLMError)


def test_a_half_written_last_line_is_skipped_and_said(llm: LoopbackServer, tmp_path: Path) -> None:
    trace, _, _ = traced_run(llm, tmp_path)
    with trace.open("a") as f:
        f.write('{"event": "subcall", "run_id": "')  # a killed process
    meta = page_data(render_report(trace, tmp_path / "report.html").path)["meta"]
    assert meta["run"]["skipped_lines"] == 1 and meta["run"]["status"] == "completed"


@pytest.mark.parametrize(("content", "reason"), [(None, "missing"), ("", "empty"), ("\n\n", "empty"),
                                                 ("not json\n{\"a\": 1}\n", "unreadable")])
def test_a_trace_that_cannot_be_read_is_a_clear_error(tmp_path: Path, content: str | None, reason: str) -> None:
    trace = tmp_path / "t.jsonl"
    if content is not None:
        trace.write_text(content)
    with pytest.raises(ReportError) as err:
        render_report(trace, tmp_path / "r.html")
    assert err.value.reason == reason and str(trace) in str(err.value)
    assert not (tmp_path / "r.html").exists()


def test_command_line_exits_0_or_2_with_one_line(llm: LoopbackServer, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    trace, _, _ = traced_run(llm, tmp_path)
    assert main([str(trace), "-o", str(tmp_path / "r.html")]) == EXIT_COMPLETED
    assert "2 subcalls" in capsys.readouterr().out
    for argv in ([str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "r.html")],
                 [str(trace), "-o", str(tmp_path / "r.html"), "--run-id", "nope"],
                 [str(trace)],
                 [str(trace), "-o", str(tmp_path / "no-such-dir" / "r.html")]):
        assert main(argv) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("rlm report: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_many_files_draw_one_bar_per_touched_file(tmp_path: Path) -> None:
    files = [{"name": f"logs/part-{i:04d}.log", "length": 1000 + i} for i in range(3000)]
    trace = tmp_path / "t.jsonl"
    write_trace(trace, [
        {"event": "run_start", "task": "t", "config": {"max_cost": 1.0}, "depth": 0,
         "context": {"name": "logs", "length": sum(f["length"] for f in files), "unit": "bytes", "files": files}},
        {"event": "context_access", "function": "context_search", "start": 0, "end": 1000, "returned": 3,
         "detail": "x", "context": "logs", "file": "logs/part-0007.log"},
        {"event": "context_access", "function": "context_slice", "start": 100, "end": 300, "returned": 200,
         "detail": "", "context": "logs", "file": "logs/part-2000.log"},
        {"event": "subcall", "kind": "text", "instruction": "q", "chunk_start": 100, "chunk_end": 300,
         "chunk_sha256": "0" * 64, "answer": "a", "file": "logs/part-2000.log"},
        {"event": "run_end", "status": "completed", "error": None, "budget_summary": {}},
    ])
    meta = page_data(render_report(trace, tmp_path / "r.html").path)["meta"]
    assert [b["name"] for b in meta["bars"]] == ["logs/part-0007.log", "logs/part-2000.log"]
    assert meta["bars"][1]["lanes"]["sent"]["covered"] == 200 and meta["bars"][1]["length"] == 3000
    assert meta["hidden"]["untouched"] == 2998 and len(meta["hidden"]["untouched_names"]) == 20
    assert meta["totals"]["read"]["length"] == sum(f["length"] for f in files)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 1100), st.integers(0, 300)), max_size=40))
def test_coverage_is_the_exact_union_of_the_spans_read(tmp_path_factory: pytest.TempPathFactory,
                                                       spans: list[tuple[int, int]]) -> None:
    where = tmp_path_factory.mktemp("union")
    events: list[dict[str, Any]] = [{"event": "run_start", "task": "t", "config": {}, "depth": 0,
                                     "context": {"name": "<text>", "length": 1000, "unit": "chars"}}]
    events += [{"event": "context_access", "function": "context_slice", "start": a, "end": a + n, "returned": n,
                "detail": "", "context": "<text>"} for a, n in spans]
    write_trace(where / "t.jsonl", events)
    [bar] = page_data(render_report(where / "t.jsonl", where / "r.html").path)["meta"]["bars"]
    covered = {p for a, n in spans for p in range(max(a, 0), min(a + n, 1000))}
    assert bar["lanes"]["read"]["covered"] == len(covered)
    assert bar["lanes"]["read"]["percent"] == 100 * len(covered) / 1000


def synthetic_trace(path: Path, log: Path, subcalls: int) -> None:
    """One run with ``subcalls`` subcalls over overlapping 600-byte windows of ``log`` (hashes that match)."""
    data = b"".join(f"2026-03-14T09:00:{i % 60:02d}Z INFO [worker-{i % 7}] request {i} handled\n".encode()
                    for i in range(subcalls * 8))
    log.write_bytes(data)
    events: list[dict[str, Any]] = [{"event": "run_start", "task": "bulk", "config": {"max_cost": 5.0}, "depth": 0,
                                     "context": {"name": str(log), "length": len(data), "unit": "bytes"}}]
    for i in range(subcalls):
        start = i * 400
        text = data[start:start + 600].decode()
        events.append({"event": "subcall", "kind": "choice", "instruction": f"How severe is event {i}: {text[60:140]!r}?",
                       "chunk_start": start, "chunk_end": start + 600, "model": "gpt-4o-mini",
                       "chunk_sha256": hashlib.sha256(text.encode()).hexdigest(), "answer": ("error", "info")[i % 2],
                       "input_tokens": 200, "output_tokens": 2, "cost_usd": 3.1e-05, "reserved_usd": 2e-04,
                       "latency_seconds": 0.05, "retries": 0, "cached": False})
    events.append({"event": "guard_trip", "limit": "cost", "error": "CostLimitError", "message": "budget"})
    events.append({"event": "run_end", "status": "partial", "error": "CostLimitError: budget", "budget_summary": {}})
    write_trace(path, events)


def test_five_thousand_subcalls_build_quickly_into_a_small_file(tmp_path: Path) -> None:
    synthetic_trace(tmp_path / "t.jsonl", tmp_path / "big.log", 5000)
    began = time.perf_counter()
    stats = render_report(tmp_path / "t.jsonl", tmp_path / "r.html")
    assert time.perf_counter() - began < 5.0
    assert stats.subcalls == 5000 and stats.bytes < 6_000_000
    page = page_data(stats.path)
    assert page["text_counts"]["embedded"] + page["text_counts"]["over_cap"] == 5000
    assert page["meta"]["chart"]["trips"][0]["limit"] == "cost"
    if CHROMIUM is not None:
        attrs = dump_dom(stats.path, tmp_path / "profile")[0]
        assert attrs["data-rendered"] == "1" and json.loads(attrs["data-errors"]) == []
        assert float(attrs["data-render-ms"]) < 2000


# -- in a real browser ----------------------------------------------------------------


def chromium(*args: str, profile: Path, url: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args, url],
        capture_output=True, text=True, timeout=60, check=False,
    )


def dump_dom(page: Path, profile: Path, fragment: str = "") -> tuple[dict[str, str], str]:
    """The root element's attributes and the DOM after the page's script ran."""
    proc = chromium("--virtual-time-budget=5000", "--window-size=1400,1000", "--dump-dom", profile=profile,
                    url=page.resolve().as_uri() + fragment)
    m = re.search(r"<html([^>]*)>", proc.stdout)
    assert m is not None, proc.stderr[-2000:]
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', m.group(1))}, proc.stdout


def png_colours(path: Path, rows: int) -> tuple[int, int, int]:
    """Width, height and the number of distinct colours in the first ``rows`` rows of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, bytearray()
    width = height = ctype = 0
    while pos < len(data):
        (size,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    prev, colours = bytes(stride), set()
    for y in range(min(rows, height)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 2:  # Up, the filter Chromium mostly uses: byte-wise addition without carries, all at once
            x, p = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            line = bytearray((((x & low) + (p & low)) ^ ((x ^ p) & high)).to_bytes(stride, "big"))
        elif kind in (1, 3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if kind == 1:
                    line[i] = (line[i] + a) & 255
                elif kind == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = bytes(line)
        colours.update(prev[i:i + 3] for i in range(0, stride, bpp * 3))
    return width, height, len(colours)


@needs_chromium
def test_the_report_renders_in_headless_chromium_without_errors(llm: LoopbackServer, tmp_path: Path) -> None:
    trace, _, data = traced_run(llm, tmp_path)
    page = render_report(trace, tmp_path / "report.html")
    first_seq = column(page_data(page.path), "seq")[0]
    attrs, dom = dump_dom(page.path, tmp_path / "profile", f"#seq={first_seq}")  # opens that subcall's details
    assert attrs.get("data-rendered") == "1", attrs
    assert json.loads(attrs["data-errors"]) == [] and "data-pwned" not in attrs
    assert re.search(r'<div id="map">.*?<canvas', dom, re.DOTALL) and dom.count('class="tr') == 2
    assert 'id="detail"' in dom and "&lt;/script&gt;&lt;img src=x onerror=" in dom  # the answer, shown as text
    assert html.escape(data[3000:3100].decode(), quote=False) in dom  # the chunk's text, verified and shown

    shot = tmp_path / "shot.png"
    proc = chromium(f"--screenshot={shot}", "--window-size=1400,1000", "--hide-scrollbars", profile=tmp_path / "p2",
                    url=page.path.resolve().as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    width, height, colours = png_colours(shot, rows=360)  # the header, the figures and the coverage map
    assert (width, height) == (1400, 1000) and colours >= 12  # not a blank page


def test_a_context_of_several_files_is_mapped_file_by_file(llm: LoopbackServer, tmp_path: Path) -> None:
    find_errors_in_log = builtin_task("find_errors_in_log")

    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "app.log.1").write_text("ok\n" * 300 + "2026-01-01 ERROR disk full on /var\n" + "ok\n" * 300)
    (folder / "app.log").write_text("ok\n" * 100 + "2026-01-02 ERROR disk full on /tmp\n")
    llm.responder = lambda body: '{"severity": "error", "summary": "The disk is full."}'
    trace = tmp_path / "t.jsonl"
    run_task(find_errors_in_log, folder, GuardConfig(trace_path=str(trace)))
    page = page_data(render_report(trace, tmp_path / "r.html").path)
    meta = page["meta"]
    names = [Path(b["name"]).name for b in meta["bars"]]
    assert names == ["app.log.1", "app.log"]  # one bar a file (oldest first), none for the folder itself
    sizes = [(folder / n).stat().st_size for n in names]
    assert [b["length"] for b in meta["bars"]] == sizes
    assert all(b["lanes"]["searched"]["percent"] == 100.0 for b in meta["bars"])  # the scan read every byte
    assert meta["totals"]["searched"]["length"] == sum(sizes)
    # The chunk sent to the model is placed in its own file, at offsets in that file, and its text verified.
    strings = page["strings"]
    texts = [strings[i] for i in column(page, "txt")]
    assert column(page, "tst") == [1, 1]  # both chunks found in their files, their SHA-256 checked
    assert sorted("/var" in t for t in texts) == [False, True] and all("ERROR disk full" in t for t in texts)
    assert all(0 <= s < e <= max(sizes) for s, e in zip(column(page, "s"), column(page, "e")))


# -- one trace reader for the report and the command line's resume checks -----------------


def writer_trace(path: Path) -> None:
    """Two runs written by the real TraceWriter: one completed, one halted by the cost limit."""
    for run_id, status in (("run-one", "completed"), ("run-two", "partial")):
        writer = TraceWriter(path, run_id)
        writer.emit("run_start", task="t", config={"max_cost": 1.0}, depth=0,
                    context={"name": "<text>", "length": 100, "unit": "chars"})
        writer.emit("subcall", kind="text", instruction="q", chunk_start=0, chunk_end=50, answer="a </script>")
        writer.emit("run_start", task="inner", config={}, depth=1, context={"name": "<text>", "length": 10})
        writer.emit("run_end", status="completed", error=None, budget_summary={})  # the nested run's end
        writer.emit("run_end", status=status, error=None, budget_summary={})
        writer.close()


def test_the_report_and_resume_read_the_same_runs_from_one_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    writer_trace(trace)
    runs = read_runs(trace)
    assert [(r.run_id, r.task, r.status) for r in runs] == [("run-one", "t", "completed"), ("run-two", "t", "partial")]
    assert TraceReader(trace).run_ids() == ["run-one", "run-two"]  # the nested runs shared their parent's writer
    meta = page_data(render_report(trace, tmp_path / "r.html").path)["meta"]
    assert meta["run"]["id"] == "run-two" and meta["run"]["other_runs"] == ["run-one"]
    assert meta["run"]["status"] == "partial" and meta["run"]["nested_runs"] == 1


def test_a_run_killed_mid_line_reads_up_to_its_last_whole_line(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    writer_trace(trace)
    text = trace.read_text()
    trace.write_text(text[:text.rindex("\n", 0, -1) + 20])  # the last run_end, cut after 19 characters
    runs = read_runs(trace)
    assert [(r.run_id, r.status) for r in runs] == [("run-one", "completed"), ("run-two", "completed")]
    meta = page_data(render_report(trace, tmp_path / "r.html").path)["meta"]
    assert meta["run"]["id"] == "run-two" and meta["run"]["skipped_lines"] == 1 and meta["run"]["ended"]

    trace.write_text(text[:text.index('"run_id": "run-two"') + 30])  # killed while writing its first line
    assert [r.run_id for r in read_runs(trace)] == ["run-one"]
    stats = render_report(trace, tmp_path / "r.html")  # the last whole run, not "run-two is not in the trace"
    assert stats.run_id == "run-one" and stats.subcalls == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_a_trace_cut_at_any_byte_reads_every_whole_line(tmp_path_factory: pytest.TempPathFactory,
                                                         per_10k: int) -> None:
    trace = tmp_path_factory.mktemp("cut") / "t.jsonl"
    writer_trace(trace)
    full = trace.read_bytes()
    cut = len(full) * per_10k // 10_000  # the trace's length varies with its timestamps
    trace.write_bytes(full[:cut])
    *whole, tail = full[:cut].decode().split("\n")
    reader = TraceReader(trace)
    events = list(reader.events())
    assert events[:len(whole)] == [json.loads(line) for line in whole]
    assert len(events) - len(whole) + reader.skipped == (1 if tail else 0)  # the cut line: an event or skipped
    assert reader.run_ids() == list(dict.fromkeys(e["run_id"] for e in events))
    assert [r.run_id for r in read_runs(trace)] == [e["run_id"] for e in events
                                                     if e["event"] == "run_start" and e["depth"] == 0]


def test_lines_in_another_key_order_are_read_by_parsing_them(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    events = [{"run_id": "r1", "event": "run_start", "task": "t", "depth": 0},
              {"seq": 2, "run_id": "r1", "event": "run_end", "status": "completed"}]
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert TraceReader(trace).run_ids() == ["r1"] and [r.status for r in read_runs(trace)] == ["completed"]
    assert render_report(trace, tmp_path / "r.html").run_id == "r1"


def test_a_bug_exits_70_and_ctrl_c_130_each_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for raised, code, said in ((RuntimeError("boom"), EXIT_INTERNAL, "rlm report: internal error: RuntimeError: boom"),
                               (KeyboardInterrupt(), EXIT_SIGINT, "rlm report: interrupted")):
        def fail(*args: object, exc: BaseException = raised, **kwargs: object) -> None:
            raise exc

        monkeypatch.setattr("rlm.report._cli.render_report", fail)  # a fault inside the report, injected
        assert main([str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "r.html")]) == code
        err = capsys.readouterr().err
        assert err.startswith(said) and err.count("\n") == 1 and "Traceback" not in err


def test_python_dash_m_rlm_report_builds_the_page_from_its_packaged_template(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    writer_trace(trace)
    proc = subprocess.run([sys.executable, "-m", "rlm.report", str(trace), "-o", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "1 subcalls, run run-two" in proc.stdout, proc.stderr
    assert page_data(tmp_path / "r.html")["meta"]["run"]["id"] == "run-two"
