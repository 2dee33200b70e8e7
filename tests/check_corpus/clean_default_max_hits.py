"""context_search without max_hits is bounded by its default of 100, and parallel_map runs the calls."""

from rlm.context_access import context_line, context_search
from rlm.subcalls import parallel_map, semantic_subcall_bool


def _is_retryable(line):
    return semantic_subcall_bool("Is this failure retryable?", line)


def retryable_failures(context):
    """Which failures could be retried."""
    hits = context_search(context, r"(?i)failed")
    lines = [context_line(context, m.start) for m in hits]
    flags = parallel_map(_is_retryable, lines)
    return {"retryable": [m.line for m, ok in zip(hits, flags) if ok], "checked": len(hits)}
