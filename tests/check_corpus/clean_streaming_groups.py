"""The whole log streamed with context_finditer and grouped in Python; the model sees a bounded sample."""
from __future__ import annotations
import re
from typing import Any
from rlm.context_access import Context, context_finditer, context_line, context_slice
from rlm.runtime import publish
from rlm.subcalls import parallel_map, semantic_subcall, semantic_subcall_choice

LOG_PROBLEMS = r"(?i)\b(error|exception|fatal)\b"
MAX_CLASSIFIED = 15
MAX_LINES_PER_GROUP = 5
SEVERITIES = ["critical", "error", "warning", "info"]


def _signature(line: str) -> str:
    return re.sub(r"\d+", "N", line)[:120]


def find_errors_in_log(context: Context) -> dict[str, Any]:
    """Error groups over the whole log."""
    groups: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    total = 0
    for m in context_finditer(context, LOG_PROBLEMS):
        total += 1
        line = context_line(context, m.start)
        key = _signature(str(line))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"signature": key, "count": 0, "first_line": m.line, "start": line.start,
                                   "end": line.end, "lines": []}
            order.append(key)
        group["count"] += 1
        if len(group["lines"]) < MAX_LINES_PER_GROUP:
            group["lines"].append(m.line)
    findings = publish("findings", [])

    def classify(group: dict[str, Any]) -> dict[str, Any]:
        window = context_slice(context, group["start"] - 200, group["end"] + 400)
        severity = semantic_subcall_choice("How severe?", window, choices=SEVERITIES, default="error")
        summary = semantic_subcall("What went wrong?", window)
        finding = {"severity": severity, "summary": summary.strip()[:300], **group}
        findings.append(finding)
        return finding

    top = sorted(order, key=lambda k: -groups[k]["count"])[:MAX_CLASSIFIED]
    classified = parallel_map(classify, [groups[k] for k in top])
    return {"findings": classified, "groups": len(groups), "matches": total,
            "unclassified_groups": max(len(groups) - MAX_CLASSIFIED, 0)}
