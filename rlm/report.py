"""The audit report: one self-contained HTML page built from a run's JSONL trace.

``render_report(trace, out)`` reads the trace line by line (a 100,000-subcall
trace is never held as a list of events), picks one run (the last one in the
file unless ``run_id`` names another) and writes a page that opens from disk
with no network at all: a coverage map of the document drawn to scale (what
code searched, what it read, what was sent to the model), spend and calls over
time against the budget with guard trips marked, a sortable, filterable table
of every subcall showing the chunk's text while the file on disk still matches
the chunk's SHA-256, the result's findings linked to the map, and the run's
config, prices and budget summary.

    python -m rlm.report run.jsonl -o report.html [--run-id ID]

Everything taken from the trace or the document is data: it is embedded as
JSON (with ``<`` escaped) and put on the page as text, never as markup, and a
Content-Security-Policy lets only the page's own script run.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import hashlib
import json
import math
import mmap
import operator
import os
import re
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from json.encoder import encode_basestring as _quote
from pathlib import Path
from typing import Any, NoReturn

from rlm.errors import ReportError
from rlm.trace import redact, secret_values

__all__ = ["ReportError", "ReportStats", "main", "render_report"]

#: Lanes of the coverage map, in drawing order.
LANES = ("searched", "read", "sent")
_SEARCH_FUNCTIONS = ("context_search", "context_finditer")

# Size caps. The page must stay under 20 MB and render in under 2 s with 100,000 subcalls; the
# numeric columns of 100,000 rows take about 3 MB, the rest is shared out below.
_TARGET_BYTES = 16_000_000  # the whole page, well under 20 MB
_STRING_BUDGET = 7_000_000  # instructions, answers and patterns, in bytes of JSON
_CHUNK_TEXT_BUDGET = 3_500_000  # embedded chunk texts in total, in bytes of JSON
_CHUNK_TEXT_CHARS = 2048  # embedded per chunk: its first 2 KB
_MAX_INSTRUCTION = 2000  # characters kept while streaming; the page says how many more there were
_MAX_ANSWER = 4000
_MAX_SEARCHES = 500  # search patterns listed one by one
_MAX_BARS = 300  # files drawn on the map; more are counted, not drawn
_DRAWN_INTERVALS = 24_000  # per lane over all bars; more are merged at pixel resolution
_CHART_POINTS = 800
_MAX_FINDINGS = 2000
_MAX_RESULT_CHARS = 200_000
_MAX_TRACEBACK = 8000
_COMPACT_EVERY = 1 << 16  # pending intervals are merged into the union this often (bounded memory)
_SCAN_BLOCK = 8 << 20

# TraceWriter starts every line with the event name and then the run id, so a regex finds a
# line's run without parsing it: lines of other runs are skipped unparsed.
_LINE_RUN = re.compile(r'\{"event": "[^"\\]*", "run_id": "([^"\\]*)"')
_BLOCK_RUN = re.compile(rb'\n\{"event": "[^"\\]*", "run_id": "([^"\\]*)"')

# What a row's chunk-text status means; the page words each one.
(_TEXT_NO_SPAN, _TEXT_FULL, _TEXT_PREFIX, _TEXT_OVER_CAP, _TEXT_CHANGED, _TEXT_MISSING, _TEXT_NOT_FILE,
 _TEXT_NO_HASH) = range(8)
_NO_HASH = bytes(32)


@dataclass(frozen=True)
class ReportStats:
    """What :func:`render_report` wrote: the page's path and size in bytes, the run, and the seconds it took."""

    path: Path
    bytes: int
    subcalls: int
    run_id: str
    seconds: float


# -- reading the trace ----------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                yield line


def _event(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("event"), str) and isinstance(value.get("run_id"), str):
        return value
    return None


def _run_ids(path: Path) -> list[str]:
    """Every run in the trace, in the order each first appears."""
    seen: dict[str, None] = {}
    with open(path, "rb") as f:
        carry = b"\n"  # every line is matched with the newline before it: a literal prefix, fast to find
        while block := f.read(_SCAN_BLOCK):
            data = carry + block
            cut = data.rfind(b"\n")
            for rid in _BLOCK_RUN.findall(data, 0, cut):
                seen.setdefault(rid.decode("utf-8", "replace"), None)
            carry = data[cut:]
        for rid in _BLOCK_RUN.findall(carry):
            seen.setdefault(rid.decode("utf-8", "replace"), None)
    if not seen:  # not written by TraceWriter (keys in another order): parse every line
        for line in _lines(path):
            event = _event(line)
            if event is not None:
                seen.setdefault(event["run_id"], None)
    return list(seen)


def _check_trace(path: Path) -> None:
    where = str(path)
    if not path.exists():
        raise ReportError(
            f"No trace file at {where}. Write one with --trace PATH (GuardConfig(trace_path=...)) and pass that path.",
            reason="missing", path=where,
        )
    if path.is_dir():
        raise ReportError(f"{where} is a directory; pass the JSONL trace file inside it.", reason="missing",
                          path=where)
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise ReportError(f"Cannot read the trace {where}: {exc.strerror or exc}. Check its permissions.",
                          reason="unreadable", path=where) from exc


def _no_events(path: Path) -> NoReturn:
    where = str(path)
    if not any(True for _ in _lines(path)):
        raise ReportError(f"The trace {where} is empty. Run the task with --trace {where} first, then build the "
                          "report from it.", reason="empty", path=where)
    raise ReportError(f"{where} holds no trace events (no line is a JSON object with an event and a run_id). "
                      "Pass the JSONL file written by --trace.", reason="unreadable", path=where)


# -- intervals ------------------------------------------------------------------


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-touching intervals covering exactly the same positions."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


class _Lane:
    """One kind of coverage of one file: the union of ``[start, end)`` spans, kept in bounded memory."""

    __slots__ = ("_merged", "_pending", "count")

    def __init__(self) -> None:
        self.count = 0
        self._merged: list[tuple[int, int]] = []
        self._pending: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        self.count += 1
        if end > start:
            self._pending.append((start, end))
            if len(self._pending) >= _COMPACT_EVERY:
                self._merged, self._pending = _union(self._merged + self._pending), []

    def union(self, length: int) -> list[tuple[int, int]]:
        """The union, clipped to ``[0, length)``."""
        if self._pending:
            self._merged, self._pending = _union(self._merged + self._pending), []
        return [(max(a, 0), min(b, length)) for a, b in self._merged if min(b, length) > max(a, 0)]


def _coarsen(spans: list[tuple[int, int]], length: int, limit: int) -> list[tuple[int, int]]:
    """At most ``limit`` intervals, closing gaps too small to see at that resolution (for drawing only)."""
    gap = max(length / max(limit, 1), 1.0)
    while len(spans) > limit:
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start - merged[-1][1] < gap:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        spans, gap = merged, gap * 2
    return spans


def _deltas(spans: list[tuple[int, int]]) -> list[int]:
    """``[gap, length, gap, length, ...]`` from 0: compact in JSON, decoded by the page."""
    out: list[int] = []
    pos = 0
    for start, end in spans:
        out += (start - pos, end - start)
        pos = end
    return out


class _Bar:
    """One file of the context: its length and what touched it."""

    __slots__ = ("lanes", "length", "max_end", "name", "order", "path", "rows", "searches", "touched")

    def __init__(self, name: str, length: int | None, order: int) -> None:
        self.name = name
        self.length = length
        self.order = order
        self.lanes = {lane: _Lane() for lane in LANES}
        self.searches = 0
        self.touched = False
        self.rows = 0
        self.max_end = 0
        self.path: str | None = None  # where the file is on disk, when the trace says so

    def add(self, lane: str, start: int, end: int) -> None:
        self.touched = True
        self.lanes[lane].add(start, end)
        self.max_end = max(self.max_end, end)

    @property
    def size(self) -> int:
        return self.length if self.length is not None else self.max_end


# -- small conversions ----------------------------------------------------------


def _int(value: object) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _num(value: object) -> float:
    if type(value) is float or type(value) is int:
        return float(value) if math.isfinite(value) else 0.0
    return 0.0


def _clean(value: Any, depth: int = 0) -> Any:
    """A copy that JSON.parse accepts: no NaN or infinity, bounded depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if depth > 40:
        return "…"
    if isinstance(value, dict):
        return {str(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return str(value)


def _js(value: Any) -> str:
    """Compact JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _json_size(text: str) -> int:
    """How many bytes ``text`` takes as a JSON string in the page, with its comma."""
    quoted = _quote(text)
    return (len(quoted) if quoted.isascii() else len(quoted.encode("utf-8", "surrogatepass"))) + 5 * text.count("<") + 1


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


def _pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = _int(value[0]), _int(value[1])
        if a is not None and b is not None:
            return a, b
    return None


def _resolve(path: str | None, name: str, trace_dir: Path) -> Path | None:
    """The context file as it is on disk now: its recorded path, else its name (from here, then beside the trace)."""
    candidates = [Path(path)] if path else []
    if name and not name.startswith("<"):
        given = Path(name)
        candidates += [given] if given.is_absolute() else [given, trace_dir / given]
    return next((c for c in candidates if c.is_file()), None)


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """A file's bytes, memory-mapped read-only for the block (an empty file cannot be mapped: ``b""``)."""
    with open(path, "rb") as f:
        if not os.fstat(f.fileno()).st_size:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield mm


# -- the page's string table ----------------------------------------------------


class _Strings:
    """Each distinct string once; rows refer to strings by index."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.cut: dict[int, int] = {}  # index -> full length, for strings not embedded whole
        self._index: dict[str, int] = {}

    def add(self, text: str, limit: int | None = None) -> int:
        full = len(text)
        if limit is not None and full > limit:
            text = text[:limit]
        idx = self._index.get(text)
        if idx is None:
            idx = self._index[text] = len(self.items)
            self.items.append(text)
        if full > len(text):
            self.cut[idx] = max(self.cut.get(idx, len(text)), full)
        return idx

    def size(self) -> int:
        return sum(map(_json_size, self.items))

    def fit(self, budget: int) -> int:
        """Shorten the longest strings alike until the table takes about ``budget`` bytes of JSON; return its size."""
        total = self.size()
        if total <= budget:
            return total
        # Water-filling on lengths: the largest cap with sum(min(len, cap)) <= the budget, in characters
        # scaled by how many bytes of JSON a character takes here on average.
        chars = sum(map(len, self.items)) or 1
        limit = int(budget * chars / total)
        lengths = sorted(map(len, self.items))
        below, cap = 0, lengths[-1]
        for i, n in enumerate(lengths):
            remaining = len(lengths) - i
            if below + n * remaining > limit:
                cap = max((limit - below) // remaining, 24)
                break
            below += n
        for idx, text in enumerate(self.items):
            if len(text) > cap:
                self.cut[idx] = max(self.cut.get(idx, len(text)), len(text))
                self.items[idx] = text[:cap]
        self._index = {}
        for idx, text in enumerate(self.items):
            self._index.setdefault(text, idx)
        return self.size()

    def cut_column(self) -> str:
        """``[index delta, characters left out, ...]`` for every shortened string."""
        out: list[int] = []
        last = 0
        for idx in sorted(self.cut):
            out += (idx - last, self.cut[idx] - len(self.items[idx]))
            last = idx
        return "[" + ",".join(map(str, out)) + "]"


class _Names:
    """A short list of distinct names (kinds, models) referred to by small indexes."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, name: str) -> int:
        idx = self._index.get(name)
        if idx is None:
            idx = self._index[name] = len(self.items)
            self.items.append(name[:200])
        return idx


# -- one run, aggregated as its events stream past --------------------------------

_INT_COLUMNS = ("seq", "kind", "ins", "ans", "bar", "s", "e", "tin", "tout", "counted", "rt", "fl", "model")
_FLOAT_COLUMNS = ("ts", "cost", "res", "lat")


class _Run:
    """Everything the page shows about one run, built event by event."""

    def __init__(self, run_id: str, trace: Path) -> None:
        self.run_id = run_id
        self.trace = trace
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.nested_runs = 0
        self.t0: float | None = None
        self.t_last = 0.0
        self.events: dict[str, int] = {}
        self.access_counts: dict[str, int] = {}
        self.searches: list[tuple[int, int, int, int, int]] = []  # bar, start, end, hits, pattern
        self.search_total = 0
        self.trips: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.strings = _Strings()
        self.kinds = _Names()
        self.models = _Names()
        self.bars: dict[str, _Bar] = {}
        self.bar_list: list[_Bar] = []
        self.main: str | None = None
        self.files_listed = False
        # A context of several files: each file's (start, end, bar) in context offsets, to place spans.
        self.file_spans: list[tuple[int, int, int]] = []
        self.unit = "positions"
        # One typed array per field: 100,000 rows cost a few MB, not a list of dicts.
        self.col_i: dict[str, array[int]] = {name: array("q") for name in _INT_COLUMNS}
        self.col_f: dict[str, array[float]] = {name: array("d") for name in _FLOAT_COLUMNS}
        self.hashes = bytearray()  # 32 bytes a row

    @property
    def rows(self) -> int:
        return len(self.hashes) // 32

    def bar(self, name: str, length: int | None = None, path: object = None) -> int:
        bar = self.bars.get(name)
        if bar is None:
            bar = self.bars[name] = _Bar(name, length, len(self.bar_list))
            self.bar_list.append(bar)
        elif bar.length is None and length is not None:
            bar.length = length
        if isinstance(path, str) and path:
            bar.path = path
        return bar.order

    def _context(self, context: object) -> None:
        if not isinstance(context, dict):
            return
        files = context.get("files")
        if isinstance(files, list):
            for entry in files:
                if isinstance(entry, dict) and entry.get("name") is not None:
                    order = self.bar(str(entry["name"]), _int(entry.get("length")), entry.get("path"))
                    self.files_listed = True
                    start, length = _int(entry.get("start")), _int(entry.get("length"))
                    top = self.start.get("context") if self.start is not None else None
                    if start is not None and length is not None and top is not None \
                            and context is top:
                        self.file_spans.append((start, start + length, order))
            self.file_spans.sort()
        self.bar(str(context.get("name") or "<context>"), _int(context.get("length")), context.get("path"))

    # -- events -------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> None:
        kind = ev["event"]
        self.events[kind] = self.events.get(kind, 0) + 1
        ts = _num(ev.get("ts"))
        if self.t0 is None or ts < self.t0:
            self.t0 = ts
        self.t_last = max(self.t_last, ts)
        if kind == "subcall":
            self._subcall(ev, ts)
        elif kind == "context_access":
            self._access(ev)
        elif kind == "run_start":
            self._run_start(ev)
        elif kind == "run_end":
            self.end = ev  # a nested run's run_end comes first; the outer run's is the last
        elif kind == "guard_trip" and len(self.trips) < 1000:
            self.trips.append({"ts": ts, "limit": str(ev.get("limit") or "?"), "error": str(ev.get("error") or ""),
                               "message": str(ev.get("message") or "")[:2000]})
        elif kind == "error" and len(self.errors) < 100:
            self.errors.append({"ts": ts, "error": str(ev.get("error") or ""),
                                "message": str(ev.get("message") or "")[:4000],
                                "traceback": str(ev.get("traceback") or "")[-_MAX_TRACEBACK:]})

    def _run_start(self, ev: dict[str, Any]) -> None:
        if self.start is None:
            self.start = ev
            context = ev.get("context")
            if isinstance(context, dict):
                self.main = str(context.get("name") or "<context>")
                self.unit = str(context.get("unit") or "positions")
            self._context(context)
        else:  # a nested run writing into its parent's trace
            self.nested_runs += 1
            self._context(ev.get("context"))

    def place(self, start: int, end: int, name: str | None) -> list[tuple[_Bar, int, int]]:
        """Where a span of the context lies: (bar, start, end) in each file it covers, in file offsets."""
        if not self.file_spans:
            return [(self.bar_list[self.bar(str(name or self.main or "<context>"))], start, end)]
        index = max(bisect.bisect_right(self.file_spans, (start, float("inf"), 0)) - 1, 0)
        pieces = []
        for file_start, file_end, order in self.file_spans[index:]:
            if file_start >= end and not (file_start == start == end):
                break
            a, b = max(start, file_start), min(end, file_end)
            if b > a or (a == b == start and file_start <= start <= file_end):
                pieces.append((self.bar_list[order], a - file_start, b - file_start))
                if b == a:
                    break
        return pieces or [(self.bar_list[self.file_spans[-1][2]], 0, 0)]

    def _access(self, ev: dict[str, Any]) -> None:
        function = str(ev.get("function") or "?")
        self.access_counts[function] = self.access_counts.get(function, 0) + 1
        start, end = _int(ev.get("start")), _int(ev.get("end"))
        name = str(ev.get("file") or ev.get("context") or self.main or "<context>")
        if start is None or end is None:
            self.bar(name)
            return
        pieces = self.place(start, end, name)
        if function not in _SEARCH_FUNCTIONS:
            for bar, a, b in pieces:
                bar.add("read", a, b)
            return
        self.search_total += 1
        for bar, a, b in pieces:
            bar.add("searched", a, b)
            bar.searches += 1
        first, a, b = pieces[0]
        if len(self.searches) < _MAX_SEARCHES:
            pattern = self.strings.add(str(ev.get("detail") or ""), 500)
            self.searches.append((first.order, a, b, _int(ev.get("returned")) or 0, pattern))

    def _subcall(self, ev: dict[str, Any], ts: float) -> None:
        ci, cf, strings, get = self.col_i, self.col_f, self.strings, ev.get
        start, end = _int(get("chunk_start")), _int(get("chunk_end"))
        if start is None or end is None:
            bar = self.bar_list[self.bar(str(get("file") or self.main or "<context>"))]
            start = end = -1
        else:
            bar, start, end = self.place(start, end, get("file"))[0]  # a chunk never spans two files
            bar.add("sent", start, end)
        bar.rows += 1
        ci["seq"].append(_int(get("seq")) or 0)
        ci["kind"].append(self.kinds.add(str(get("kind") or "?")))
        ci["ins"].append(strings.add(str(get("instruction") or ""), _MAX_INSTRUCTION))
        ci["ans"].append(strings.add(str(get("answer") or ""), _MAX_ANSWER))
        ci["bar"].append(bar.order)
        ci["s"].append(start)
        ci["e"].append(end)
        ci["tin"].append(_int(get("input_tokens")) or 0)
        ci["tout"].append(_int(get("output_tokens")) or 0)
        ci["counted"].append(_int(get("counted_tokens")) or 0)
        ci["rt"].append(_int(get("retries")) or 0)
        ci["fl"].append((1 if get("cached") else 0) | (2 if get("dry_run") else 0)
                        | (0 if get("usage_reported", True) else 4))
        ci["model"].append(self.models.add(str(get("model") or "")))
        cf["ts"].append(ts)
        cf["cost"].append(_num(get("cost_usd")))
        cf["res"].append(_num(get("reserved_usd")))
        cf["lat"].append(_num(get("latency_seconds")))
        try:
            digest = bytes.fromhex(str(get("chunk_sha256") or ""))
        except ValueError:
            digest = b""
        self.hashes += digest if len(digest) == 32 else _NO_HASH

    # -- building the page's data ------------------------------------------
    def chunk_texts(self, budget: int) -> tuple[array[int], array[int], dict[str, int]]:
        """Read each row's chunk from the file as it is now; keep its text only if the SHA-256 still matches."""
        n = self.rows
        text_idx = array("q", [-1]) * n
        status = array("q", [_TEXT_NO_SPAN]) * n
        counts = dict.fromkeys(("embedded", "prefix", "over_cap", "changed", "missing", "not_file", "no_hash"), 0)
        starts, ends, bars = self.col_i["s"], self.col_i["e"], self.col_i["bar"]
        by_bar: dict[int, list[int]] = {}
        for i in range(n):
            if starts[i] >= 0:
                by_bar.setdefault(bars[i], []).append(i)
        secrets = secret_values()
        hashes = memoryview(self.hashes)
        used = 0
        for bar_id, rows in by_bar.items():
            bar = self.bar_list[bar_id]
            path = _resolve(bar.path, bar.name, self.trace.parent) if self.unit == "bytes" else None
            if path is None:  # in-memory text (positions are characters; nothing on disk) or no file now
                code, key = (_TEXT_NOT_FILE, "not_file") if self.unit != "bytes" else (_TEXT_MISSING, "missing")
                for i in rows:
                    status[i] = code
                counts[key] += len(rows)
                continue
            with _mapped(path) as data:
                for i in rows:
                    expected = hashes[32 * i:32 * i + 32]
                    if expected == _NO_HASH:
                        status[i] = _TEXT_NO_HASH
                        counts["no_hash"] += 1
                        continue
                    text = data[starts[i]:ends[i]].decode("utf-8", errors="replace")
                    if hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() != expected:
                        status[i] = _TEXT_CHANGED
                        counts["changed"] += 1
                        continue
                    if used >= budget:
                        status[i] = _TEXT_OVER_CAP
                        counts["over_cap"] += 1
                        continue
                    shown = redact(text[:_CHUNK_TEXT_CHARS], secrets)
                    size = _json_size(shown)
                    if used + size > budget:
                        status[i] = _TEXT_OVER_CAP
                        counts["over_cap"] += 1
                        continue
                    before = len(self.strings.items)
                    text_idx[i] = idx = self.strings.add(shown)
                    if len(self.strings.items) > before:
                        used += size
                    if len(text) > _CHUNK_TEXT_CHARS:
                        self.strings.cut[idx] = max(self.strings.cut.get(idx, 0), len(text))
                        status[i] = _TEXT_PREFIX
                        counts["prefix"] += 1
                    else:
                        status[i] = _TEXT_FULL
                        counts["embedded"] += 1
        return text_idx, status, counts

    def chart(self) -> dict[str, Any]:
        """Spend, spend plus reservations in flight, and calls over time, at most _CHART_POINTS samples."""
        t0 = self.t0 or 0.0
        cf = self.col_f
        changes: list[tuple[float, int, float, float, int]] = []
        for ts, lat, cost, res in zip(cf["ts"], cf["lat"], cf["cost"], cf["res"]):
            end = max(ts - t0, 0.0)
            changes.append((max(end - lat, 0.0), 0, res, 0.0, 0))
            changes.append((end, 1, -res, cost, 1))
        changes.sort()
        spent = inflight = 0.0
        calls = 0
        samples: list[tuple[float, float, float, int]] = [(0.0, 0.0, 0.0, 0)]
        for t, _, d_inflight, d_spent, d_calls in changes:
            inflight = max(inflight + d_inflight, 0.0)
            spent += d_spent
            calls += d_calls
            samples.append((t, spent, spent + inflight, calls))
        end_t = max(self.t_last - t0, samples[-1][0], 0.0)
        if len(samples) > _CHART_POINTS:
            width = (end_t or 1.0) / _CHART_POINTS
            buckets = [samples[0]]
            for t, s, peak, c in samples[1:]:
                slot = (math.floor(t / width) + 1) * width
                if buckets[-1][0] == slot:
                    buckets[-1] = (slot, s, max(buckets[-1][2], peak), c)
                else:
                    buckets.append((slot, s, peak, c))
            samples = buckets
        config = self.start.get("config") if self.start is not None else None
        budget = _num(config.get("max_cost")) if isinstance(config, dict) else 0.0
        return {
            "t": [round(s[0], 4) for s in samples],
            "spent": [float(f"{s[1]:.9g}") for s in samples],
            "peak": [float(f"{s[2]:.9g}") for s in samples],
            "calls": [s[3] for s in samples],
            "end": round(end_t, 4),
            "first": round(changes[0][0], 4) if changes else None,
            "budget": budget or None,
            "trips": [{"t": round(max(trip["ts"] - t0, 0.0), 4), "limit": trip["limit"], "error": trip["error"],
                       "message": trip["message"]} for trip in self.trips],
            "errors": [{"t": round(max(e["ts"] - t0, 0.0), 4), "error": e["error"]} for e in self.errors],
        }

    def bars_out(self) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[int]]:
        """The bars to draw, what was left out, coverage totals, and each bar's position on the page."""
        shown = [b for b in self.bar_list if b.touched or b.rows or (not self.files_listed and b.name == self.main)]
        shown_names = {b.name for b in shown}
        untouched = [b.name for b in self.bar_list if b.name not in shown_names and b.name != self.main]
        limit = max(500, _DRAWN_INTERVALS // max(min(len(shown), _MAX_BARS), 1))
        position = [-1] * len(self.bar_list)
        out: list[dict[str, Any]] = []
        totals = dict.fromkeys(LANES, 0)
        for k, bar in enumerate(shown):
            position[bar.order] = k
            length = bar.size
            lanes: dict[str, Any] = {}
            for lane in LANES:
                spans = bar.lanes[lane].union(length)
                covered = sum(b - a for a, b in spans)
                totals[lane] += covered
                lanes[lane] = {"covered": covered, "percent": 100.0 * covered / length if length else 0.0,
                               "count": bar.lanes[lane].count}
                if k < _MAX_BARS:
                    lanes[lane]["iv"] = _deltas(_coarsen(spans, length, limit))
            out.append({"name": bar.name, "length": length, "length_known": bar.length is not None,
                        "drawn": k < _MAX_BARS, "subcalls": bar.rows, "searches": bar.searches, "lanes": lanes})
        if self.files_listed:  # the files' lengths; an access to the whole context counts in its own bar
            whole = sum(b.size for b in self.bar_list if b.name != self.main or b.name in shown_names)
        else:
            whole = sum(b.size for b in shown)
        hidden = {"not_drawn": max(len(shown) - _MAX_BARS, 0), "untouched": len(untouched),
                  "untouched_names": untouched[:20]}
        total = {lane: {"covered": totals[lane], "length": whole,
                        "percent": 100.0 * totals[lane] / whole if whole else 0.0} for lane in LANES}
        return out, hidden, total, position


# -- findings in the result -----------------------------------------------------

_LABEL_KEYS = ("claim", "summary", "title", "message", "text", "description", "name", "match", "line")
_TAG_KEYS = ("severity", "confidence", "level", "kind", "type")


def _span_of(item: dict[str, Any]) -> tuple[int, int] | None:
    span = _pair(item.get("span"))
    if span is not None:
        return span
    start, end = _int(item.get("start")), _int(item.get("end"))
    if start is not None and end is not None:
        return start, end
    example = item.get("example")
    return _pair(example.get("span")) if isinstance(example, dict) else None


def _labels(item: dict[str, Any]) -> tuple[str, str]:
    """What a finding says (its claim, summary, title, ...) and a second, different line of it if any."""
    texts = [str(v).strip()[:300] for v in map(item.get, _LABEL_KEYS)
             if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip()]
    texts = list(dict.fromkeys(texts))
    if texts:
        return texts[0], texts[1] if len(texts) > 1 else ""
    example = item.get("example")
    if isinstance(example, dict):
        return _labels(example)
    return json.dumps(_clean(item), ensure_ascii=False)[:300], ""


def _findings(result: Any) -> tuple[list[dict[str, Any]], int]:
    """Every dict in the result that carries a span, with its place in the result (a bounded walk)."""
    found: list[dict[str, Any]] = []
    total = visited = 0
    stack: list[tuple[str, Any, int]] = [("result", result, 0)]
    while stack and visited < 200_000:
        path, value, depth = stack.pop()
        visited += 1
        if depth > 30:
            continue
        children: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            span = _span_of(value)
            if span is not None:
                total += 1
                if len(found) < _MAX_FINDINGS:
                    tag = next((str(value[k]) for k in _TAG_KEYS if isinstance(value.get(k), str)), "")
                    file = value.get("file")
                    label, detail = _labels(value)
                    found.append({"path": path, "label": label, "detail": detail, "tag": tag[:40],
                                  "file": file if isinstance(file, str) else None,
                                  "s": min(span), "e": max(span)})
            children = [(f"{path}.{k}", v) for k, v in value.items() if isinstance(v, (dict, list))
                        and not (span is not None and k in ("example", "span"))]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(value) if isinstance(v, (dict, list))]
        stack.extend((p, v, depth + 1) for p, v in reversed(children))
    return found, total


# -- the page -------------------------------------------------------------------


def _template() -> tuple[str, str]:
    """The page before and after its data, with the Content-Security-Policy and title placeholders left in."""
    page = resources.files("rlm").joinpath("report_page.html").read_text(encoding="utf-8")
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


def _data(run: _Run, other_runs: list[str], skipped: int, head_tail_bytes: int) -> Iterator[str]:
    """The page's JSON, piece by piece, so no copy of the whole of it is ever held."""
    start = run.start or {}
    end = run.end or {}
    config = start.get("config") if isinstance(start.get("config"), dict) else {}
    summary = end.get("budget_summary") if isinstance(end.get("budget_summary"), dict) else {}

    result: dict[str, Any] = {"present": "result" in end}
    if "result" in end:
        found, total = _findings(end["result"])
        text = json.dumps(_clean(end["result"]), ensure_ascii=False, indent=2)
        result.update(text=text[:_MAX_RESULT_CHARS], truncated=max(len(text) - _MAX_RESULT_CHARS, 0),
                      findings=found, findings_total=total)
        for finding in found:
            bar, finding["s"], finding["e"] = run.place(finding["s"], finding["e"], finding.pop("file"))[0]
            finding["bar"] = bar.order
            bar.touched = True
    bars, hidden, totals, position = run.bars_out()
    for finding in result.get("findings", ()):
        finding["bar"] = position[finding["bar"]]

    meta = _js(_clean({
        "v": 1,
        "run": {
            "id": run.run_id, "task": start.get("task"), "depth": start.get("depth"), "status": end.get("status"),
            "error": end.get("error"), "started": start.get("ts", run.t0),
            "duration": round(run.t_last - (run.t0 or 0.0), 3), "ended": run.end is not None,
            "nested_runs": run.nested_runs, "other_runs": other_runs[-50:], "other_runs_total": len(other_runs),
            "skipped_lines": skipped, "events": run.events,
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
        "config": config,
        "summary": summary,
        "kinds": run.kinds.items,
        "models": run.models.items,
        "generated": {"at": datetime.now(UTC).isoformat(timespec="seconds"), "trace": run.trace.name},
    }))

    ci, cf = run.col_i, run.col_f
    t0 = run.t0 or 0.0
    columns = {
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
    base = head_tail_bytes + len(meta) + sum(map(len, columns.values())) + 8 * run.rows
    strings = run.strings.fit(max(min(_STRING_BUDGET, _TARGET_BYTES - base - _CHUNK_TEXT_BUDGET // 2), 100_000))
    budget = max(min(_CHUNK_TEXT_BUDGET, _TARGET_BYTES - base - strings), 0)
    text_idx, status, counts = run.chunk_texts(budget)
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
    trace_path = Path(os.fspath(trace))
    out_path = Path(os.fspath(out))
    _check_trace(trace_path)
    ids = _run_ids(trace_path)
    if not ids:
        _no_events(trace_path)
    if run_id is None:
        run_id = ids[-1]
    run = _Run(run_id, trace_path)
    skipped = 0
    for line in _lines(trace_path):
        m = _LINE_RUN.match(line)
        if m is not None and m.group(1) != run_id:
            continue
        event = _event(line)
        if event is None:
            skipped += 1  # e.g. the half-written last line of a killed process
        elif event["run_id"] == run_id:
            run.feed(event)
    if not run.events:
        listed = ", ".join(ids[-10:]) + (f" (and {len(ids) - 10} earlier)" if len(ids) > 10 else "")
        raise ReportError(
            f"Run {run_id!r} is not in {trace_path}; it holds run(s) {listed}. Pass one of them to --run-id, "
            "or leave --run-id out for the last run.",
            reason="unknown_run", path=str(trace_path), run_ids=tuple(ids),
        )
    task = run.start.get("task") if run.start else None
    head, tail = _frame(f"rlm report: {task or 'run'} ({run_id})")
    other = [rid for rid in ids if rid != run_id]
    pieces = _data(run, other, skipped, len(head.encode()) + len(tail.encode()))
    size = _write(out_path, _framed(head, pieces, tail))
    return ReportStats(path=out_path, bytes=size, subcalls=run.rows, run_id=run_id,
                       seconds=round(time.perf_counter() - began, 3))


def _framed(head: str, pieces: Iterable[str], tail: str) -> Iterator[str]:
    yield head
    yield from pieces
    yield tail


# -- command line ---------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see --help)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rlm.report TRACE.jsonl -o PATH.html [--run-id ID]``: exit 0, or 2 with one line on stderr."""
    parser = _Parser(prog="python -m rlm.report",
                     description="Build a self-contained HTML audit report from an rlm JSONL trace.")
    parser.add_argument("trace", help="the JSONL trace written by --trace")
    parser.add_argument("-o", "--output", required=True, metavar="PATH.html", help="the HTML file to write")
    parser.add_argument("--run-id", help="which run of the trace (default: the last one)")
    try:
        args = parser.parse_args(argv)
        stats = render_report(args.trace, args.output, run_id=args.run_id)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except (_UsageError, ReportError) as exc:
        print(f"rlm report: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlm report: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 (a bug of ours: still one line, never a traceback)
        print(f"rlm report: internal error: {type(exc).__name__}: {exc}. Please report it.", file=sys.stderr)
        return 2
    print(f"Wrote {stats.path} ({_size(stats.bytes)}, {stats.subcalls:,} subcalls, run {stats.run_id}) "
          f"in {stats.seconds:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
