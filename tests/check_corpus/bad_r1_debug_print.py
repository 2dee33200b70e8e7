"""A debugging print of the context left in the task."""

from rlm.context_access import context_search, context_slice
from rlm.subcalls import semantic_subcall


def first_error(context):
    """Explain the first error."""
    print("DEBUG context:", context)  # expect: rule1
    hits = context_search(context, r"ERROR", max_hits=1)
    if not hits:
        return {"error": None}
    window = context_slice(context, hits[0].start - 300, hits[0].end + 300)
    return {"error": semantic_subcall("What went wrong?", window), "line": hits[0].line}
