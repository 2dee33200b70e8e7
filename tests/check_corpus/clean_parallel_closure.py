"""A nested function uses the context through the context functions only."""

from rlm.context_access import context_line, context_search, context_slice
from rlm.runtime import publish
from rlm.subcalls import parallel_map, semantic_subcall_choice

MAX_HITS = 100
MAX_CLASSIFIED = 12


def outage_severity(context):
    """Severity of the first outage reports."""
    hits = context_search(context, r"(?i)outage|unavailable", max_hits=MAX_HITS)
    results = publish("results", [])

    def judge(m):
        line = context_line(context, m.start)
        window = context_slice(context, line.start - 300, line.end + 300)
        verdict = semantic_subcall_choice(f"Severity of: {str(line)[:200]!r}?", window, ["sev1", "sev2", "sev3"],
                                          default="sev3")
        item = {"line": m.line, "severity": verdict}
        results.append(item)
        return item

    judged = parallel_map(judge, hits[:MAX_CLASSIFIED])
    return {"outages": judged, "count": len(judged), "sev1": sum(r["severity"] == "sev1" for r in judged)}
