"""The page: the template with one run's data embedded as JSON, written atomically.

Everything taken from the trace or the document is data: it is embedded as JSON
with ``<`` escaped, the page puts it on screen as text, never as markup, and a
Content-Security-Policy lets only the page's own script run. The JSON is written
piece by piece, so no copy of the whole of it is ever held.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from rlm.errors import ReportError
from rlm.report._model import Run, clean, load_run

__all__ = ["ReportStats", "render_report"]

# Size caps. The page must stay under 20 MB and render in under 2 s with 100,000 subcalls; the
# numeric columns of 100,000 rows take about 3 MB, the rest is shared out below.
_TARGET_BYTES = 16_000_000  # the whole page, well under 20 MB
_STRING_BUDGET = 7_000_000  # instructions, answers and patterns, in bytes of JSON
_CHUNK_TEXT_BUDGET = 3_500_000  # embedded chunk texts in total, in bytes of JSON


@dataclass(frozen=True)
class ReportStats:
    """What :func:`render_report` wrote: the page's path and size in bytes, the run, and the seconds it took."""

    path: Path
    bytes: int
    subcalls: int
    run_id: str
    seconds: float


def render_report(trace: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  run_id: str | None = None) -> ReportStats:
    """Write the HTML audit report of one run of ``trace`` to ``out`` and say what was written.

    ``trace`` is a JSONL file written with ``--trace`` (``GuardConfig(trace_path=...)``);
    it may hold several runs. ``run_id`` picks one of them (default: the run that
    started last). ``out`` is the HTML file to write (replaced atomically). Chunk
    texts are read from the context file as it is now, found by its name as
    recorded (relative to the working directory, else to the trace's directory),
    and shown only while their SHA-256 still matches the trace. Raises
    :class:`ReportError` for a missing, empty or unreadable trace, an unknown
    ``run_id`` or an unwritable ``out``.
    """
    began = time.perf_counter()
    out_path = Path(os.fspath(out))
    run = load_run(Path(os.fspath(trace)), run_id)
    task = run.start.get("task") if run.start else None
    head, tail = _frame(f"rlm report: {task or 'run'} ({run.run_id})")
    pieces = _data(run, len(head.encode()) + len(tail.encode()))
    size = _write(out_path, _framed(head, pieces, tail))
    return ReportStats(path=out_path, bytes=size, subcalls=run.rows, run_id=run.run_id,
                       seconds=round(time.perf_counter() - began, 3))


# -- the frame: template, policy, title -------------------------------------------


def _template() -> tuple[str, str]:
    """The page before and after its data, with the Content-Security-Policy and title placeholders left in."""
    page = resources.files("rlm.report").joinpath("report_page.html").read_text(encoding="utf-8")
    head, tail = page.split("__DATA__", 1)
    return head, tail


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _frame(title: str) -> tuple[str, str]:
    head, tail = _template()
    script = tail.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    # Only the page's own script may run: no inline handlers, no other source, no network at all.
    policy = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
              "base-uri 'none'; form-action 'none'")
    return head.replace("__CSP__", policy).replace("__TITLE__", _escape(title)), tail


def _framed(head: str, pieces: Iterable[str], tail: str) -> Iterator[str]:
    yield head
    yield from pieces
    yield tail


# -- the data -----------------------------------------------------------------------


def _js(value: Any) -> str:
    """Compact JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _column(values: Sequence[int]) -> str:
    """An integer column as JSON: ``{"c": v}`` when constant, ``{"d": [...]}`` when deltas are shorter."""
    if not values:
        return "[]"
    first = values[0]
    if values.count(first) == len(values):
        return f'{{"c":{first}}}'
    deltas = [first, *map(operator.sub, values[1:], values[:-1])]
    sample = slice(0, len(values), max(len(values) // 2000, 1))
    if sum(map(len, map(str, deltas[sample]))) < sum(map(len, map(str, values[sample]))):
        return '{"d":[' + ",".join(map(str, deltas)) + "]}"
    return "[" + ",".join(map(str, values)) + "]"


def _meta(run: Run) -> tuple[str, list[int]]:
    """Everything but the rows and strings, as JSON, and each bar's position on the page."""
    start = run.start or {}
    end = run.end or {}
    result = run.result()  # before the bars: a finding's file is drawn even if nothing else touched it
    bars, hidden, totals, position = run.coverage.out()
    for finding in result.get("findings", ()):
        finding["bar"] = position[finding["bar"]]
    meta = _js(clean({
        "v": 1,
        "run": {
            "id": run.run_id, "task": start.get("task"), "depth": start.get("depth"), "status": end.get("status"),
            "error": end.get("error"), "started": start.get("ts", run.t0),
            "duration": round(run.t_last - (run.t0 or 0.0), 3), "ended": run.end is not None,
            "nested_runs": run.nested_runs, "other_runs": run.other_runs[-50:],
            "other_runs_total": len(run.other_runs), "skipped_lines": run.skipped_lines, "events": run.events,
        },
        "context": start.get("context") if isinstance(start.get("context"), dict) else None,
        "unit": run.unit,
        "bars": bars,
        "hidden": hidden,
        "totals": totals,
        "access_counts": run.access_counts,
        "searches": {"total": run.search_total,
                     "items": [[position[b], a, e, hits, p] for b, a, e, hits, p in run.searches]},
        "chart": run.chart(),
        "errors": run.errors,
        "result": result,
        "config": start.get("config") if isinstance(start.get("config"), dict) else {},
        "summary": end.get("budget_summary") if isinstance(end.get("budget_summary"), dict) else {},
        "kinds": run.kinds.items,
        "models": run.models.items,
        "generated": {"at": datetime.now(UTC).isoformat(timespec="seconds"), "trace": run.trace.name},
    }))
    return meta, position


def _columns(run: Run, position: list[int]) -> dict[str, str]:
    """The subcall table, one JSON column per field, in integer units the page scales back."""
    ci, cf = run.col_i, run.col_f
    t0 = run.t0 or 0.0
    return {
        "seq": _column(ci["seq"]),
        "t": _column([round((ts - t0) * 1000) for ts in cf["ts"]]),  # milliseconds
        "kind": _column(ci["kind"]), "ins": _column(ci["ins"]), "ans": _column(ci["ans"]),
        "bar": _column([max(position[b], 0) for b in ci["bar"]]),
        "s": _column(ci["s"]), "e": _column(ci["e"]),
        "tin": _column(ci["tin"]), "tout": _column(ci["tout"]), "counted": _column(ci["counted"]),
        "cost": _column([round(c * 1e9) for c in cf["cost"]]),  # nano-dollars
        "res": _column([round(c * 1e9) for c in cf["res"]]),
        "lat": _column([round(v * 10_000) for v in cf["lat"]]),  # tenths of a millisecond
        "rt": _column(ci["rt"]), "fl": _column(ci["fl"]), "model": _column(ci["model"]),
    }


def _data(run: Run, head_tail_bytes: int) -> Iterator[str]:
    """The page's JSON, piece by piece; strings and chunk texts share what the size target leaves."""
    meta, position = _meta(run)
    columns = _columns(run, position)
    base = head_tail_bytes + len(meta) + sum(map(len, columns.values())) + 8 * run.rows
    strings = run.strings.fit(max(min(_STRING_BUDGET, _TARGET_BYTES - base - _CHUNK_TEXT_BUDGET // 2), 100_000))
    text_idx, status, counts = run.chunk_texts(max(min(_CHUNK_TEXT_BUDGET, _TARGET_BYTES - base - strings), 0))
    columns["txt"] = _column(text_idx)
    columns["tst"] = _column(status)

    yield f'{{"meta":{meta},"n":{run.rows},"text_counts":{_js(counts)},"cut":{run.strings.cut_column()},"strings":['
    items = run.strings.items
    for k in range(0, len(items), 4096):
        yield ("," if k else "") + ",".join(map(_js, items[k:k + 4096]))
    yield '],"rows":{' + ",".join(f'"{name}":{values}' for name, values in columns.items()) + "}}"


def _write(path: Path, pieces: Iterable[str]) -> int:
    """Write the page atomically (a temporary file beside it, then a rename) and return its size."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    size = 0
    try:
        with open(tmp, "wb") as f:
            for piece in pieces:
                data = piece.encode("utf-8", "surrogatepass")
                f.write(data)
                size += len(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"Cannot write the report to {path}: {exc.strerror or exc}. Pass a writable path to -o.",
                          reason="unwritable", path=str(path)) from exc
    return size
