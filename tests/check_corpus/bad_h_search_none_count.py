"""max_hits=None to count matches: every match is listed just to be counted."""

from rlm.context_access import context_search


def error_count(context):
    """How many errors the log holds."""
    total = len(context_search(context, r"ERROR", max_hits=None))  # expect: hazard
    return {"errors": total}
