"""What the page shows about one run, built from its trace events as they stream past.

A 100,000-subcall run is never held as a list of events: each subcall becomes a
row of typed columns, each string is kept once in a table the rows point into,
and coverage goes to the map (``_coverage``). Chunk texts are read back from the
context file as it is now and kept only while their SHA-256 still matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import mmap
import os
from array import array
from collections.abc import Iterator
from json.encoder import encode_basestring as _quote
from pathlib import Path
from typing import Any, NoReturn

from rlm.errors import ReportError
from rlm.report._coverage import CoverageMap
from rlm.trace import TraceReader, redact, secret_values

__all__ = ["Run", "Strings", "Names", "clean", "load_run"]

_SEARCH_FUNCTIONS = ("context_search", "context_finditer")
_CHUNK_TEXT_CHARS = 2048  # embedded per chunk: its first 2 KB
_MAX_INSTRUCTION = 2000  # characters kept while streaming; the page says how many more there were
_MAX_ANSWER = 4000
_MAX_SEARCHES = 500  # search patterns listed one by one
_CHART_POINTS = 800
_MAX_FINDINGS = 2000
_MAX_RESULT_CHARS = 200_000
_MAX_TRACEBACK = 8000

# What a row's chunk-text status means; the page words each one.
(_TEXT_NO_SPAN, _TEXT_FULL, _TEXT_PREFIX, _TEXT_OVER_CAP, _TEXT_CHANGED, _TEXT_MISSING, _TEXT_NOT_FILE,
 _TEXT_NO_HASH) = range(8)
_TEXT_COUNTS = {_TEXT_FULL: "embedded", _TEXT_PREFIX: "prefix", _TEXT_OVER_CAP: "over_cap", _TEXT_CHANGED: "changed",
                _TEXT_MISSING: "missing", _TEXT_NOT_FILE: "not_file", _TEXT_NO_HASH: "no_hash"}
_NO_HASH = bytes(32)

_INT_COLUMNS = ("seq", "kind", "ins", "ans", "bar", "s", "e", "tin", "tout", "counted", "rt", "fl", "model")
_FLOAT_COLUMNS = ("ts", "cost", "res", "lat")


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


def _pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = _int(value[0]), _int(value[1])
        if a is not None and b is not None:
            return a, b
    return None


def clean(value: Any, depth: int = 0) -> Any:
    """A copy that JSON.parse accepts: no NaN or infinity, bounded depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if depth > 40:
        return "…"
    if isinstance(value, dict):
        return {str(k): clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v, depth + 1) for v in value]
    return str(value)


def _json_size(text: str) -> int:
    """How many bytes ``text`` takes as a JSON string in the page, with its comma."""
    quoted = _quote(text)
    return (len(quoted) if quoted.isascii() else len(quoted.encode("utf-8", "surrogatepass"))) + 5 * text.count("<") + 1


# -- the page's string table ----------------------------------------------------


class Strings:
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


class Names:
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


class Run:
    """Everything the page shows about one run, built event by event."""

    def __init__(self, run_id: str, trace: Path) -> None:
        self.run_id = run_id
        self.trace = trace
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.other_runs: list[str] = []  # the trace's other runs, in order
        self.skipped_lines = 0  # lines of the trace that are not events (a killed process's last line)
        self.nested_runs = 0
        self.t0: float | None = None
        self.t_last = 0.0
        self.events: dict[str, int] = {}
        self.access_counts: dict[str, int] = {}
        self.searches: list[tuple[int, int, int, int, int]] = []  # bar, start, end, hits, pattern
        self.search_total = 0
        self.trips: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.strings = Strings()
        self.kinds = Names()
        self.models = Names()
        self.coverage = CoverageMap()
        self.unit = "positions"
        # One typed array per field: 100,000 rows cost a few MB, not a list of dicts.
        self.col_i: dict[str, array[int]] = {name: array("q") for name in _INT_COLUMNS}
        self.col_f: dict[str, array[float]] = {name: array("d") for name in _FLOAT_COLUMNS}
        self.hashes = bytearray()  # 32 bytes a row

    @property
    def rows(self) -> int:
        return len(self.hashes) // 32

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
        context = ev.get("context")
        if self.start is None:
            self.start = ev
            if isinstance(context, dict):
                self.coverage.main = str(context.get("name") or "<context>")
                self.unit = str(context.get("unit") or "positions")
            self._context(context, top=True)
        else:  # a nested run writing into its parent's trace
            self.nested_runs += 1
            self._context(context, top=False)

    def _context(self, context: object, *, top: bool) -> None:
        """A bar for the context and one for each of its files; the top-level run's files also say where they lie."""
        if not isinstance(context, dict):
            return
        files = context.get("files")
        for entry in files if isinstance(files, list) else ():
            if isinstance(entry, dict) and entry.get("name") is not None:
                length = _int(entry.get("length"))
                order = self.coverage.bar(str(entry["name"]), length, entry.get("path"))
                self.coverage.add_file(order, _int(entry.get("start")) if top else None, length)
        self.coverage.bar(str(context.get("name") or "<context>"), _int(context.get("length")), context.get("path"))

    def _access(self, ev: dict[str, Any]) -> None:
        function = str(ev.get("function") or "?")
        self.access_counts[function] = self.access_counts.get(function, 0) + 1
        start, end = _int(ev.get("start")), _int(ev.get("end"))
        name = str(ev.get("file") or ev.get("context") or self.coverage.main or "<context>")
        if start is None or end is None:
            self.coverage.bar(name)
            return
        pieces = self.coverage.place(start, end, name)
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
            bar = self.coverage.named(get("file"))
            start = end = -1
        else:
            bar, start, end = self.coverage.place(start, end, get("file"))[0]  # a chunk never spans two files
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

    # -- what the page is built from -----------------------------------------
    def result(self) -> dict[str, Any]:
        """The run's result as text, and its findings placed on the map (which marks their bars as shown)."""
        end = self.end or {}
        if "result" not in end:
            return {"present": False}
        found, total = _findings(end["result"])
        text = json.dumps(clean(end["result"]), ensure_ascii=False, indent=2)
        for finding in found:
            bar, finding["s"], finding["e"] = self.coverage.place(finding["s"], finding["e"], finding.pop("file"))[0]
            finding["bar"] = bar.order
            bar.touched = True
        return {"present": True, "text": text[:_MAX_RESULT_CHARS], "truncated": max(len(text) - _MAX_RESULT_CHARS, 0),
                "findings": found, "findings_total": total}

    def chunk_texts(self, budget: int) -> tuple[array[int], array[int], dict[str, int]]:
        """Read each row's chunk from the file as it is now; keep its text only if the SHA-256 still matches.

        Returns each row's string index (-1: none), its text status and how many rows have each status.
        """
        text_idx = array("q", [-1]) * self.rows
        status = array("q", [_TEXT_NO_SPAN]) * self.rows
        by_bar: dict[int, list[int]] = {}
        for i, (start, bar) in enumerate(zip(self.col_i["s"], self.col_i["bar"])):
            if start >= 0:
                by_bar.setdefault(bar, []).append(i)
        texts = _ChunkTexts(self, budget)
        for order, rows in by_bar.items():
            file = self.coverage.bars[order]
            path = _resolve(file.path, file.name, self.trace.parent) if self.unit == "bytes" else None
            if path is None:  # in-memory text (positions are characters; nothing on disk) or no file now
                for i in rows:
                    status[i] = _TEXT_NOT_FILE if self.unit != "bytes" else _TEXT_MISSING
                continue
            with _mapped(path) as data:
                for i in rows:
                    status[i], text_idx[i] = texts.row(data, i)
        return text_idx, status, {key: status.count(code) for code, key in _TEXT_COUNTS.items()}

    def chart(self) -> dict[str, Any]:
        """Spend, spend plus reservations in flight, and calls over time, at most _CHART_POINTS samples."""
        t0 = self.t0 or 0.0
        changes: list[tuple[float, int, float, float, int]] = []
        for ts, lat, cost, res in zip(self.col_f["ts"], self.col_f["lat"], self.col_f["cost"], self.col_f["res"]):
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
        samples = _bucketed(samples, end_t)
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


def _bucketed(samples: list[tuple[float, float, float, int]],
              end_t: float) -> list[tuple[float, float, float, int]]:
    """At most about _CHART_POINTS samples: the last of each time slot, with the slot's highest peak."""
    if len(samples) <= _CHART_POINTS:
        return samples
    width = (end_t or 1.0) / _CHART_POINTS
    buckets = [samples[0]]
    for t, s, peak, c in samples[1:]:
        slot = (math.floor(t / width) + 1) * width
        if buckets[-1][0] == slot:
            buckets[-1] = (slot, s, max(buckets[-1][2], peak), c)
        else:
            buckets.append((slot, s, peak, c))
    return buckets


# -- chunk texts, read back from disk ---------------------------------------------


class _ChunkTexts:
    """Chunk texts checked against the trace's SHA-256 and embedded while ``budget`` bytes of JSON last."""

    def __init__(self, run: Run, budget: int) -> None:
        self.strings = run.strings
        self.starts, self.ends = run.col_i["s"], run.col_i["e"]
        self.hashes = memoryview(run.hashes)
        self.budget = budget
        self.used = 0
        self.secrets = secret_values()

    def row(self, data: bytes | mmap.mmap, i: int) -> tuple[int, int]:
        """Row ``i``'s text status and string index (-1 when its text is not embedded)."""
        expected = self.hashes[32 * i:32 * i + 32]
        if expected == _NO_HASH:
            return _TEXT_NO_HASH, -1
        text = data[self.starts[i]:self.ends[i]].decode("utf-8", errors="replace")
        if hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() != expected:
            return _TEXT_CHANGED, -1
        if self.used >= self.budget:
            return _TEXT_OVER_CAP, -1
        shown = redact(text[:_CHUNK_TEXT_CHARS], self.secrets)
        size = _json_size(shown)
        if self.used + size > self.budget:
            return _TEXT_OVER_CAP, -1
        before = len(self.strings.items)
        idx = self.strings.add(shown)
        if len(self.strings.items) > before:
            self.used += size
        if len(text) > _CHUNK_TEXT_CHARS:
            self.strings.cut[idx] = max(self.strings.cut.get(idx, 0), len(text))
            return _TEXT_PREFIX, idx
        return _TEXT_FULL, idx


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
    return json.dumps(clean(item), ensure_ascii=False)[:300], ""


def _finding(path: str, item: dict[str, Any], span: tuple[int, int]) -> dict[str, Any]:
    tag = next((str(item[k]) for k in _TAG_KEYS if isinstance(item.get(k), str)), "")
    file = item.get("file")
    label, detail = _labels(item)
    return {"path": path, "label": label, "detail": detail, "tag": tag[:40],
            "file": file if isinstance(file, str) else None, "s": min(span), "e": max(span)}


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
                    found.append(_finding(path, value, span))
            children = [(f"{path}.{k}", v) for k, v in value.items() if isinstance(v, (dict, list))
                        and not (span is not None and k in ("example", "span"))]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(value) if isinstance(v, (dict, list))]
        stack.extend((p, v, depth + 1) for p, v in reversed(children))
    return found, total


# -- reading one run of a trace -------------------------------------------------


def load_run(trace: Path, run_id: str | None) -> Run:
    """Run ``run_id`` of ``trace`` (default: the last one), read through the trace reader.

    Raises :class:`ReportError` for a missing, unreadable or empty trace, or a run it does not hold.
    """
    _check_trace(trace)
    reader = TraceReader(trace)
    ids = reader.run_ids()
    if not ids:
        _no_events(trace, empty=reader.skipped == 0)
    chosen = ids[-1] if run_id is None else run_id
    run = Run(chosen, trace)
    for event in reader.events(chosen):
        run.feed(event)
    if not run.events:
        listed = ", ".join(ids[-10:]) + (f" (and {len(ids) - 10} earlier)" if len(ids) > 10 else "")
        raise ReportError(
            f"Run {chosen!r} is not in {trace}; it holds run(s) {listed}. Pass one of them to --run-id, "
            "or leave --run-id out for the last run.",
            reason="unknown_run", path=str(trace), run_ids=tuple(ids),
        )
    run.other_runs = [rid for rid in ids if rid != chosen]
    run.skipped_lines = reader.skipped
    return run


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


def _no_events(path: Path, *, empty: bool) -> NoReturn:
    where = str(path)
    if empty:
        raise ReportError(f"The trace {where} is empty. Run the task with --trace {where} first, then build the "
                          "report from it.", reason="empty", path=where)
    raise ReportError(f"{where} holds no trace events (no line is a JSON object with an event and a run_id). "
                      "Pass the JSONL file written by --trace.", reason="unreadable", path=where)
