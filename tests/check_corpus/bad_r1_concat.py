"""String concatenation with the context, inside a nested function."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import parallel_map, semantic_subcall


def triage(context):
    """One sentence per error, with the whole log for background."""
    hits = context_search(context, r"ERROR", max_hits=8)

    def explain(m):
        background = "Full log for reference:\n" + context  # expect: rule1
        return semantic_subcall(background, context_line(context, m.start))

    return {"explanations": parallel_map(explain, hits), "count": len(hits)}
