"""A helper asks the model for the final answer; the task returns it."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import semantic_subcall


def _final_answer(lines):
    return semantic_subcall("Combine these into the final answer.", "\n".join(lines))


def release_blockers(context):
    """What blocks the release?"""
    lines = [str(context_line(context, m.start)) for m in context_search(context, r"BLOCKER", max_hits=15)]
    return _final_answer(lines)  # expect: rule4
