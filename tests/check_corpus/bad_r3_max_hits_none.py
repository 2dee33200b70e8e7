"""Every hit of an unbounded search gets its own subcall."""

from rlm.context_access import context_line, context_search
from rlm.runtime import publish
from rlm.subcalls import semantic_subcall_choice


def classify_all_errors(context):
    """Severity of every error in the log."""
    results = publish("results", [])
    for m in context_search(context, r"ERROR|FATAL", max_hits=None):  # expect: rule3
        line = context_line(context, m.start)
        results.append({"line": m.line, "severity": semantic_subcall_choice("Severity?", line, ["high", "low"])})
    return {"results": results, "count": len(results)}
