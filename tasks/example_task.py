"""Two example tasks, written as a template to copy: a log triage and a document analysis.

Every task has the same three phases (claude.md). PHASE 1: code narrows the input, no model.
PHASE 2: the model reads a bounded number of chunks, one per subcall. AGGREGATION: Python builds
the answer. Both tasks read the whole input (a streaming scan, flat memory whatever the size); only
the model's work is bounded, and code chooses what it reads so that rare and late events and the
middle and end of a document are not drowned out. Both publish what they have as it arrives, so a
run stopped by a limit keeps it.

Copy a task and the helpers below it to ``tasks/<name>.py``; run it with ``python run.py FILE --task NAME``.
This file is also the built-in ``find_errors_in_log`` and ``analyze_document``: the installed package
ships it, so ``rlm FILE --task find_errors_in_log`` works from any directory.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rlm.context_access import (
    Chunk,
    Context,
    Match,
    context_finditer,
    context_head,
    context_search,
    context_slice,
    context_tail,
)
from rlm.runtime import publish
from rlm.subcalls import fell_back, parallel_map, semantic_subcall, semantic_subcall_json

# ======================================================================================
# find_errors_in_log: every problem line counted by kind; the model explains a few kinds
# ======================================================================================

# Rule 3: the model's work is bounded, whatever the log's size.
MAX_TOP_SIGNATURES = 8  # the most frequent kinds of problem ...
MAX_RECENT_SIGNATURES = 4  # ... and the newest ones, so that a new failure late in the log is seen
MAX_SIGNATURES = 5000  # distinct kinds tracked; beyond that, lines are counted as "other" (flat memory)
MAX_EXAMPLES = 3
SAME_EVENT_BYTES = 8192  # a continuation line (a stack trace) this close below an event belongs to it
WINDOW_BEFORE, WINDOW_AFTER = 300, 700
MAX_LINE_TEXT = 500

# A whole line holding a problem word; it cannot cross a newline, so RE2 scans it in linear time.
LOG_PROBLEM_LINES = r"(?i)[^\n]*\b(?:error|exception|fatal|critical|traceback|panic)\b[^\n]*"
SEVERITIES = ["critical", "error", "warning", "info"]
# Words models use for the same levels: read as the nearest severity rather than dropped.
SEVERITY_SYNONYMS = {"fatal": "critical", "severe": "critical", "emergency": "critical", "high": "error",
                     "major": "error", "err": "error", "medium": "warning", "moderate": "warning", "warn": "warning",
                     "low": "info", "minor": "info", "notice": "info", "debug": "info"}


def find_errors_in_log(context: Context) -> dict[str, Any]:
    """Every problem in a log, grouped by kind and counted exactly; the frequent and the newest kinds explained."""
    # ===== PHASE 1: Programmatic Narrowing =====
    # Code reads every line and groups the problems by kind (streaming, flat memory); no LLM.
    scan = _scan_log(context)
    kinds = sorted(scan.kinds.values(), key=lambda k: (-k.count, k.first.start))
    findings = publish("findings", [_finding(kind) for kind in kinds])
    # The model explains the most frequent kinds, and the kinds that appeared last (a new failure is rare).
    pairs = list(zip(kinds, findings))
    chosen = pairs[:MAX_TOP_SIGNATURES]
    chosen += sorted(pairs[MAX_TOP_SIGNATURES:], key=lambda p: -p[0].first.start)[:MAX_RECENT_SIGNATURES]

    # ===== PHASE 2: Semantic Interpretation =====
    # One bounded window around an example of each chosen kind, one subcall each, in parallel.
    answered = parallel_map(lambda pair: _explain(context, *pair), chosen)

    # ===== AGGREGATION =====
    # Python counts; the model's answers only fill in each finding's severity and summary.
    classified = sum(answered)
    return {
        "findings": findings,
        "count": len(findings),
        "by_severity": dict(Counter(f["severity"] for f in findings if f["severity"] is not None)),
        "metadata": {
            "bytes_scanned": len(context),
            "files": max(len(context.files), 1),
            "problem_lines": scan.problem_lines,
            "events": scan.events,
            "signatures": len(scan.kinds),
            "other_lines": scan.other,
            "classified": classified,
            "unclassified": len(findings) - classified,
        },
    }


@dataclass
class _Kind:
    """One kind of problem: its signature, where it first and last occurred, how often, a few examples."""

    text: str
    first: Match
    last: Match
    count: int = 0
    examples: list[Match] = field(default_factory=list)


@dataclass(frozen=True)
class _LogScan:
    kinds: dict[str, _Kind]
    problem_lines: int
    events: int
    other: int  # events past MAX_SIGNATURES kinds, counted but not grouped


def _scan_log(context: Context) -> _LogScan:
    """Every problem line of the log, read once: events grouped by signature and counted."""
    kinds: dict[str, _Kind] = {}
    # Lines that differ only in their digits have one signature (every digit is masked): a bounded cache.
    cache: dict[str, str] = {}
    problem_lines = events = other = 0  # locals, not the scan's fields: this loop runs once per problem line
    for m, starts_event in _problem_lines(context):
        problem_lines += 1
        if not starts_event:
            continue
        events += 1
        key = str(m.text).encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO).decode("utf-8", "replace")
        signature = cache.get(key)
        if signature is None:
            if len(cache) > 50_000:
                cache.clear()
            signature = cache[key] = _signature(key)
        kind = kinds.get(signature)
        if kind is None:
            if len(kinds) >= MAX_SIGNATURES:
                other += 1
                continue
            kind = kinds[signature] = _Kind(signature, m, m)
        kind.count += 1
        kind.last = m
        if len(kind.examples) < MAX_EXAMPLES:
            kind.examples.append(m)
    return _LogScan(kinds, problem_lines, events, other)


def _problem_lines(context: Context) -> Iterator[tuple[Match, bool]]:
    """Every problem line of the log, in order, and whether it starts an event.

    A continuation line (a stack trace under an error: indented, ``Traceback``, ``Caused by``, ...)
    within SAME_EVENT_BYTES below the previous problem line is part of that event, not one of its own.
    """
    last_end, last_file = -(10**18), None
    for m in context_finditer(context, LOG_PROBLEM_LINES):
        file = m.file
        near = file == last_file and m.start - last_end <= SAME_EVENT_BYTES
        continues = near and bool(_CONTINUATION.match(str(m.text)))
        last_end, last_file = m.end, file
        yield m, not continues


_CONTINUATION = re.compile(r"^(?:\s|Traceback\b|Caused by\b|During handling\b|[\w.$]*(?:Error|Exception)\b)")
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
    r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* +\d{1,2}\b")
_MASKS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@%+~-]+){2,}[\\/]?"), "<path>"),
    (re.compile(r"\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`"), "<str>"),
    (re.compile(r"\d+(?:[.,]\d+)*"), "<n>"),
]
_SPACES = re.compile(r"\s+")
# bytes.translate is ten times faster than str.translate (measured): the key goes through bytes.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _signature(line: str) -> str:
    """A log line with what varies between occurrences masked: timestamps, ids, IPs, paths, quotes, numbers."""
    text = _TIMESTAMP.sub("", line)
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return _SPACES.sub(" ", text).strip()[:300]


def _finding(kind: _Kind) -> dict[str, Any]:
    """What Python knows of a kind; the model's severity and summary start empty."""
    return {"signature": kind.text, "count": kind.count, "first_line": _where(kind.first),
            "last_line": _where(kind.last), "example": _example(kind.examples[0]),
            "examples": [_example(m) for m in kind.examples], "severity": None, "summary": None}


def _where(m: Match) -> dict[str, Any]:
    return {"file": m.file, "line": m.line}


def _example(m: Match) -> dict[str, Any]:
    line = m.text
    text = str(line)[:MAX_LINE_TEXT]
    end = line.offset_of(len(text))
    file_start = m.start - m.file_span[0]
    return {"text": text, "file": m.file, "line": m.line, "span": [m.start, end],
            "file_span": [m.start - file_start, end - file_start]}


def _explain(context: Context, kind: _Kind, finding: dict[str, Any]) -> bool:
    """One subcall on a window around the kind's first example; fills in the finding if the answer reads."""
    example = kind.examples[0]
    window = context_slice(context, example.start - WINDOW_BEFORE, example.end + WINDOW_AFTER)
    answer = semantic_subcall_json(
        f"This log excerpt holds a problem that occurred {kind.count} times; its line is:\n"
        f"{str(example.text)[:300]}\nHow severe is it, and what went wrong? Answer as "
        '{"severity": "critical|error|warning|info", "summary": "<one short sentence>"}.',
        window,
        default={},
    )
    said = str(answer.get("severity", "")).strip().lower() if isinstance(answer, dict) else ""
    summary = str(answer.get("summary", "")).strip() if isinstance(answer, dict) else ""
    severity = SEVERITY_SYNONYMS.get(said, said)
    if not summary and severity not in SEVERITIES:
        return False  # nothing read (semantic_subcall_json counted the default): left unclassified
    if severity not in SEVERITIES:  # a summary, but a severity outside the vocabulary: kept, and counted
        fell_back(None)
        finding.update(severity=None, severity_answer=said[:50], summary=summary[:300] or None,
                       window=[window.start, window.end])
        return True
    finding.update(severity=severity, summary=summary[:300] or None, window=[window.start, window.end])
    return True


# ======================================================================================
# analyze_document: the structure found by code; the model reads windows spread over it
# ======================================================================================

# Rule 3: the model's work is bounded, whatever the document's size.
MAX_DOCUMENT_WINDOWS = 8
DOCUMENT_WINDOW = 2400
MAX_HEADINGS = 2000
MAX_CLAIMS_PER_WINDOW = 3
CONFIDENCE = {"high", "medium", "low"}

# Phrases that introduce a claim or a finding; code finds every one, the model reads a bounded few.
SIGNALS = (
    r"(?i)\b(?:in conclusion|in summary|to summarize|we find|we found|results? show|key finding|importantly|"
    r"therefore|as a result|this means|demonstrates?|shows? that|suggests? that|concluded?)\b"
)
HEADINGS = (
    r"(?m)^(?:#{1,6}[ \t]+\S[^\n]*"  # Markdown
    r"|\d+(?:\.\d+)*\.?[ \t]+[A-Z][^\n]{0,80}"  # 1. Introduction, 2.3 Results
    r"|[A-Z][A-Z0-9 ,:&'()-]{3,80})$"  # ALL CAPS
    r"|^[^\n]{3,80}\n(?:=+|-+)[ \t]*$"  # underlined
)


def analyze_document(context: Context) -> dict[str, Any]:
    """Title, structure, key claims citing their spans (from the beginning, the middle and the end), conclusion."""
    # ===== PHASE 1: Programmatic Narrowing =====
    # Code finds the headings and spreads bounded windows over the whole length; no LLM.
    sections = _sections(context)
    windows = _windows(context, sections)
    key_points: list[dict[str, Any]] = []
    analysis: dict[str, Any] = publish("analysis", {"title": _title(context, sections), "key_points": key_points,
                                                    "conclusion": None, "conclusion_span": None})

    # ===== PHASE 2: Semantic Interpretation =====
    # The model lists each window's claims (in parallel), then states the conclusion; Python checks every quote.
    seen: set[str] = set()
    parallel_map(lambda window: _read_claims(context, window, key_points, seen), windows)
    ending = _conclusion_window(context, sections)
    if ending.strip():
        analysis["conclusion"] = semantic_subcall("State the document's conclusion in one sentence.", ending).strip()
        analysis["conclusion_span"] = [ending.start, ending.end]

    # ===== AGGREGATION =====
    # Python orders the claims and reports what was read.
    key_points.sort(key=lambda p: p["span"][0])
    read = [(start, end) for _, start, end in windows]
    return {
        "analysis": analysis,
        "sections": [{"heading": s.heading, "level": s.level, "span": [s.start, s.end]} for s in sections[:200]],
        "metadata": {
            "bytes": len(context),
            "sections": len(sections),
            "windows": [list(w) for w in read],
            "coverage": _coverage(read, len(context) or 1),
        },
    }


@dataclass(frozen=True)
class _Section:
    heading: str
    level: int
    start: int
    end: int


def _sections(context: Context) -> list[_Section]:
    """The document's structure, found by code: headings and the spans they head."""
    heads: list[Match] = context_search(context, HEADINGS, max_hits=MAX_HEADINGS)
    found: list[tuple[str, int, int]] = []
    for m in heads:
        raw = str(m.text).split("\n")[0].strip()
        if raw.startswith("#"):
            level = len(raw) - len(raw.lstrip("#"))
        else:
            level = raw.split()[0].rstrip(".").count(".") + 1 if raw[:1].isdigit() else 1
        title = raw.lstrip("#").strip()
        if title:
            found.append((title[:200], min(level, 6), m.start))
    # Each file of a many-file context starts a section; so does what comes before the first heading.
    starts = {start for _, start, _ in context.file_spans} | {0}
    found += [("", 0, start) for start in starts if all(start != f[2] for f in found)]
    found.sort(key=lambda f: f[2])
    sections = []
    for i, (title, level, start) in enumerate(found):
        end = found[i + 1][2] if i + 1 < len(found) else len(context)
        if end > start:
            sections.append(_Section(title, level, start, end))
    return sections


def _windows(context: Context, sections: list[_Section]) -> list[tuple[_Section, int, int]]:
    """Up to MAX_DOCUMENT_WINDOWS windows spread over the whole length: the beginning, the middle and the end.

    The document is cut into that many equal regions; each region's window is centred on its first signal
    phrase (a claim is likely there), or on its middle when it has none, and kept inside the section there,
    so a window never mixes two sections. A short document gets one window per section.
    """
    length = len(context)
    if not length:
        return []
    if len(sections) <= MAX_DOCUMENT_WINDOWS and all(s.end - s.start <= DOCUMENT_WINDOW for s in sections):
        return [(s, s.start, s.end) for s in sections]
    count = MAX_DOCUMENT_WINDOWS
    windows: list[tuple[_Section, int, int]] = []
    for region, signal in enumerate(_signal_per_region(context, count)):
        target = signal if signal is not None else (2 * region + 1) * length // (2 * count)
        section = next(s for s in sections if s.start <= target < s.end)
        latest = max(section.end - DOCUMENT_WINDOW, section.start)
        start = min(max(target - DOCUMENT_WINDOW // 3, section.start), latest)
        end = min(start + DOCUMENT_WINDOW, section.end)
        if windows and start < windows[-1][2]:
            start = windows[-1][2]  # no two windows read the same text
        if end > start:
            windows.append((section, start, end))
    return windows


def _signal_per_region(context: Context, regions: int) -> list[int | None]:
    """For each of ``regions`` equal parts of the document, where its first signal phrase is (every byte read)."""
    length = len(context) or 1
    found: list[int | None] = [None] * regions
    for m in context_finditer(context, SIGNALS):
        region = min(m.start * regions // length, regions - 1)
        if found[region] is None:
            found[region] = m.start
    return found


def _title(context: Context, sections: list[_Section]) -> str:
    titled = next((s.heading for s in sections if s.heading), "")
    if titled:
        return titled
    for line in context_head(context, 2000).splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _read_claims(context: Context, window: tuple[_Section, int, int], key_points: list[dict[str, Any]],
                 seen: set[str]) -> int:
    """One subcall on one window; each new claim is added to ``key_points`` with the span its quote was found at."""
    section, start, end = window
    chunk = context_slice(context, start, end)
    answer = semantic_subcall_json(
        f"List the key claims this excerpt makes (at most {MAX_CLAIMS_PER_WINDOW}) as "
        '{"claims": [{"claim": "<one sentence>", "quote": "<the exact words of the excerpt it rests on>", '
        '"confidence": "high|medium|low"}]}.',
        chunk,
        default={"claims": []},
    )
    claims = answer.get("claims") if isinstance(answer, dict) else answer
    added = 0
    for point in (claims if isinstance(claims, list) else [])[:MAX_CLAIMS_PER_WINDOW]:
        claim = str(point.get("claim", "")).strip() if isinstance(point, dict) else ""
        key = " ".join(re.findall(r"\w+", claim.lower()))
        if not claim or key in seen:
            continue
        seen.add(key)
        quote = str(point.get("quote", "")).strip()
        span = _cite(chunk, quote) or _cite(chunk, claim)
        confidence = str(point.get("confidence", "")).lower()
        key_points.append({
            "claim": claim,
            "confidence": confidence if confidence in CONFIDENCE else "low",
            "span": list(span) if span else [chunk.start, chunk.end],
            "verified": span is not None,  # the quote was found in the text the model read
            "section": section.heading,
            "file": chunk.file,
        })
        added += 1
    return added


def _cite(chunk: Chunk, quote: str) -> tuple[int, int] | None:
    """The context span of ``quote`` in the chunk, ignoring differences of whitespace; None if it is not there."""
    if len(quote) < 8:
        return None
    span = chunk.span_of(quote)
    if span is not None:
        return span
    words = quote.split()
    pattern = r"\s+".join(map(re.escape, words))
    found = re.search(pattern, chunk)
    return (chunk.offset_of(found.start()), chunk.offset_of(found.end())) if found else None


def _conclusion_window(context: Context, sections: list[_Section]) -> Chunk:
    for section in reversed(sections):
        if re.search(r"(?i)conclu|summary|discussion|outlook", section.heading):
            return context_slice(context, section.start, min(section.end, section.start + DOCUMENT_WINDOW))
    return context_tail(context, DOCUMENT_WINDOW // 4)


def _coverage(read: list[tuple[int, int]], length: int) -> dict[str, bool]:
    """Whether the windows read reached the beginning, the middle and the end third of the document."""
    return {
        "beginning": any(s < length / 3 for s, _ in read),
        "middle": any(e > length / 3 and s < 2 * length / 3 for s, e in read),
        "end": any(e > 2 * length / 3 for _, e in read),
    }
