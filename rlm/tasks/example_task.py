"""Example tasks: a document analysis and a log triage, both bounded and both publishing partial results."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from rlm.context_access import (
    Context,
    context_chunks,
    context_head,
    context_line,
    context_search,
    context_slice,
    context_tail,
)
from rlm.runtime import publish
from rlm.subcalls import parallel_map, semantic_subcall, semantic_subcall_choice, semantic_subcall_json

# Rule 3: every iteration is bounded.
MAX_SIGNAL_HITS = 40
MAX_KEY_POINT_WINDOWS = 5
MAX_KEY_POINTS = 8
WINDOW_RADIUS = 300
SAME_EVENT_LINES = 3  # a hit this close below an event's line (a stack trace) belongs to that event
MAX_LOG_HITS = 200
MAX_CLASSIFIED = 15

SIGNALS = (
    r"(?i)\b(in conclusion|in summary|to summarize|conclusion|we find|we found|results? show|"
    r"key finding|importantly|therefore|as a result|this means|demonstrates?|shows? that)\b"
)
LOG_PROBLEMS = r"(?i)\b(error|exception|fatal|critical|traceback|panic)\b"
SEVERITIES = ["critical", "error", "warning", "info"]
CONFIDENCE = {"high", "medium", "low"}


def _title(context: Context) -> str:
    """The first non-empty line of the document, without Markdown heading marks."""
    for line in context_head(context, 2000).splitlines():
        cleaned = line.strip().lstrip("#").strip()
        if cleaned:
            return cleaned[:200]
    return ""


def _merge_windows(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping spans, so overlapping hits yield one window (and one claim), not several."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _claim_key(claim: str) -> str:
    return " ".join(re.findall(r"\w+", claim.lower()))


def analyze_document(context: Context) -> dict[str, Any]:
    """Title, key claims with confidence, and the conclusion of a document."""
    # ===== PHASE 1: Programmatic narrowing (no LLM) =====
    key_points: list[dict[str, Any]] = []
    analysis: dict[str, Any] = publish("analysis", {"title": _title(context), "key_points": key_points,
                                                    "conclusion": None})
    hits = context_search(context, SIGNALS, max_hits=MAX_SIGNAL_HITS)
    windows = _merge_windows([(m.start - WINDOW_RADIUS, m.end + WINDOW_RADIUS) for m in hits])
    chunks = [context_slice(context, a, b) for a, b in windows[:MAX_KEY_POINT_WINDOWS]]
    if not chunks:  # no signal phrases: read the opening instead
        chunks = [c for _, c in zip(range(MAX_KEY_POINT_WINDOWS), context_chunks(context, 2 * WINDOW_RADIUS))]

    # ===== PHASE 2: Semantic interpretation (bounded chunks, depth 1) =====
    seen: set[str] = set()
    for chunk in chunks:
        answer = semantic_subcall_json(
            "List the key claims this excerpt makes (at most 3) as "
            '{"claims": [{"claim": "<one sentence>", "confidence": "high|medium|low"}]}.',
            chunk,
            default={"claims": []},
        )
        claims = answer.get("claims") if isinstance(answer, dict) else answer
        for point in claims if isinstance(claims, list) else []:
            claim = str(point.get("claim", "")).strip() if isinstance(point, dict) else ""
            if not claim or _claim_key(claim) in seen or len(key_points) >= MAX_KEY_POINTS:
                continue
            seen.add(_claim_key(claim))  # overlapping windows must not repeat a claim
            confidence = str(point.get("confidence", "")).lower()
            key_points.append({
                "claim": claim,
                "confidence": confidence if confidence in CONFIDENCE else "low",
                "span": [chunk.start, chunk.end],
            })
    ending = context_tail(context, 2 * WINDOW_RADIUS)
    if ending.strip():
        analysis["conclusion"] = semantic_subcall("State the document's conclusion in one sentence.", ending).strip()

    # ===== AGGREGATION (Python) =====
    return {
        "analysis": analysis,
        "metadata": {"signal_hits": len(hits), "chunks_examined": len(chunks), "conclusion_span": list(ending.span)},
    }


def find_errors_in_log(context: Context) -> dict[str, Any]:
    """Error and exception lines of a log, each classified by severity and summarised."""
    # ===== PHASE 1: Programmatic narrowing (no LLM) =====
    matches = context_search(context, LOG_PROBLEMS, max_hits=MAX_LOG_HITS)
    events: list[dict[str, Any]] = []
    for m in matches:
        line_no = m.line
        if events and line_no <= events[-1]["related_lines"][-1] + SAME_EVENT_LINES:
            if line_no not in events[-1]["related_lines"]:  # a stack trace line of the same event
                events[-1]["related_lines"].append(line_no)
            continue
        line = context_line(context, m.start)
        events.append({"line": line_no, "related_lines": [line_no], "start": line.start, "end": line.end,
                       "text": str(line)[:500], "match": str(m.text)})
    findings = publish("findings", [])

    # ===== PHASE 2: Semantic interpretation, in parallel =====
    def classify(event: dict[str, Any]) -> dict[str, Any]:
        window = context_slice(context, event["start"] - 200, event["end"] + 400)
        severity = semantic_subcall_choice(
            f"How severe is this log event: {event['text'][:300]!r}? Use the surrounding lines as context.",
            window,
            choices=SEVERITIES,
            default="error",
        )
        summary = semantic_subcall(f"In one short sentence, what went wrong in: {event['text'][:300]!r}?", window)
        # Python's fields are written last: a model answer can never overwrite them.
        finding = {"severity": severity, "summary": summary.strip()[:300], **event,
                   "window": [window.start, window.end]}
        findings.append(finding)
        return finding

    classified = parallel_map(classify, events[:MAX_CLASSIFIED])

    # ===== AGGREGATION (Python) =====
    classified.sort(key=lambda f: f["line"])
    return {
        "findings": classified,
        "count": len(classified),
        "by_severity": dict(Counter(f["severity"] for f in classified)),
        "metadata": {
            "matches_examined": len(matches),
            "events": len(events),
            "unclassified_events": max(len(events) - MAX_CLASSIFIED, 0),
            "search_stopped_at_max_hits": len(matches) == MAX_LOG_HITS,
        },
    }
