"""A loop bounded by max_hits and a slice."""

from rlm.context_access import context_line, context_search
from rlm.runtime import publish
from rlm.subcalls import semantic_subcall

MAX_HITS = 50
MAX_EXPLAINED = 10


def explain_exceptions(context):
    """The first exceptions, explained."""
    out = publish("explained", [])
    hits = context_search(context, r"Exception", max_hits=MAX_HITS)
    for m in hits[:MAX_EXPLAINED]:
        out.append({"line": m.line, "why": semantic_subcall("Why?", context_line(context, m.start))})
    return {"explained": out, "seen": len(hits)}
