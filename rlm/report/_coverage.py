"""The coverage map: for each file of the context, which spans code searched, read and sent to the model.

Spans arrive in context offsets; a context of several files places each one in
the file(s) it covers. Each lane keeps the exact union of its spans in bounded
memory; only drawing coarsens them, to what a pixel can show.
"""

from __future__ import annotations

import bisect
from typing import Any

__all__ = ["LANES", "MAX_BARS", "Bar", "CoverageMap", "Lane"]

#: Lanes of the coverage map, in drawing order.
LANES = ("searched", "read", "sent")
MAX_BARS = 300  # files drawn on the map; more are counted, not drawn
_DRAWN_INTERVALS = 24_000  # per lane over all bars; more are merged at pixel resolution
_COMPACT_EVERY = 1 << 16  # pending intervals are merged into the union this often (bounded memory)


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


class Lane:
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


class Bar:
    """One file of the context: its length and what touched it."""

    __slots__ = ("lanes", "length", "max_end", "name", "order", "path", "rows", "searches", "touched")

    def __init__(self, name: str, length: int | None, order: int) -> None:
        self.name = name
        self.length = length
        self.order = order
        self.lanes = {lane: Lane() for lane in LANES}
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


class CoverageMap:
    """The bars of a run's context, and where a span in context offsets falls among them."""

    def __init__(self) -> None:
        self.by_name: dict[str, Bar] = {}
        self.bars: list[Bar] = []
        self.main: str | None = None  # the context's own name: spans with no file are drawn on its bar
        self.files_listed = False
        # A context of several files: each file's (start, end, bar) in context offsets, to place spans.
        self._file_spans: list[tuple[int, int, int]] = []

    def bar(self, name: str, length: int | None = None, path: object = None) -> int:
        """The index of the bar named ``name``, added if new; a length or path learned later is kept."""
        bar = self.by_name.get(name)
        if bar is None:
            bar = self.by_name[name] = Bar(name, length, len(self.bars))
            self.bars.append(bar)
        elif bar.length is None and length is not None:
            bar.length = length
        if isinstance(path, str) and path:
            bar.path = path
        return bar.order

    def add_file(self, order: int, start: int | None, length: int | None) -> None:
        """Bar ``order`` is a file of the context; ``[start, start + length)`` is where it lies in it, if known."""
        self.files_listed = True
        if start is not None and length is not None:
            bisect.insort(self._file_spans, (start, start + length, order))

    def named(self, name: str | None) -> Bar:
        """The bar of ``name``, else of the context as a whole."""
        return self.bars[self.bar(str(name or self.main or "<context>"))]

    def place(self, start: int, end: int, name: str | None) -> list[tuple[Bar, int, int]]:
        """Where a span of the context lies: (bar, start, end) in each file it covers, in file offsets."""
        spans = self._file_spans
        if not spans:
            return [(self.named(name), start, end)]
        index = max(bisect.bisect_right(spans, (start, float("inf"), 0)) - 1, 0)
        pieces = []
        for file_start, file_end, order in spans[index:]:
            if file_start >= end and not (file_start == start == end):
                break
            a, b = max(start, file_start), min(end, file_end)
            if b > a or (a == b == start and file_start <= start <= file_end):
                pieces.append((self.bars[order], a - file_start, b - file_start))
                if b == a:
                    break
        return pieces or [(self.bars[spans[-1][2]], 0, 0)]

    def shown(self) -> list[Bar]:
        """The bars the page lists: every file touched, and the context itself when it is not a list of files."""
        return [b for b in self.bars if b.touched or b.rows or (not self.files_listed and b.name == self.main)]

    def out(self) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[int]]:
        """The bars to draw, what was left out, coverage totals, and each bar's position on the page."""
        shown = self.shown()
        shown_names = {b.name for b in shown}
        untouched = [b.name for b in self.bars if b.name not in shown_names and b.name != self.main]
        limit = max(500, _DRAWN_INTERVALS // max(min(len(shown), MAX_BARS), 1))
        position = [-1] * len(self.bars)
        out: list[dict[str, Any]] = []
        totals = dict.fromkeys(LANES, 0)
        for k, bar in enumerate(shown):
            position[bar.order] = k
            lanes = _lanes_out(bar, limit if k < MAX_BARS else None)
            for lane in LANES:
                totals[lane] += lanes[lane]["covered"]
            out.append({"name": bar.name, "length": bar.size, "length_known": bar.length is not None,
                        "drawn": k < MAX_BARS, "subcalls": bar.rows, "searches": bar.searches, "lanes": lanes})
        if self.files_listed:  # the files' lengths; an access to the whole context counts in its own bar
            whole = sum(b.size for b in self.bars if b.name != self.main or b.name in shown_names)
        else:
            whole = sum(b.size for b in shown)
        hidden = {"not_drawn": max(len(shown) - MAX_BARS, 0), "untouched": len(untouched),
                  "untouched_names": untouched[:20]}
        total = {lane: {"covered": totals[lane], "length": whole,
                        "percent": 100.0 * totals[lane] / whole if whole else 0.0} for lane in LANES}
        return out, hidden, total, position


def _lanes_out(bar: Bar, limit: int | None) -> dict[str, dict[str, Any]]:
    """Each lane's coverage of ``bar``, with its intervals (at most ``limit``) when the bar is drawn."""
    length = bar.size
    lanes: dict[str, dict[str, Any]] = {}
    for lane in LANES:
        spans = bar.lanes[lane].union(length)
        covered = sum(b - a for a, b in spans)
        lanes[lane] = {"covered": covered, "percent": 100.0 * covered / length if length else 0.0,
                       "count": bar.lanes[lane].count}
        if limit is not None:
            lanes[lane]["iv"] = _deltas(_coarsen(spans, length, limit))
    return lanes
