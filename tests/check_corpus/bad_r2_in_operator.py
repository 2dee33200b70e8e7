"""'in' on the context to test for a phrase."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import semantic_subcall


def has_traceback(context):
    """Whether the log holds a Python traceback, and what raised it."""
    if "Traceback (most recent call last)" not in context:  # expect: rule2
        return {"traceback": False}
    hit = context_search(context, r"Traceback", max_hits=1)[0]
    return {"traceback": True, "cause": semantic_subcall("What raised it?", context_line(context, hit.start))}
