"""list() of an unbounded scan keeps every match in memory."""

from rlm.context_access import context_finditer, context_line
from rlm.subcalls import parallel_map, semantic_subcall

MAX_EXPLAINED = 5


def error_overview(context):
    """How many errors, and the first few explained."""
    hits = list(context_finditer(context, r"ERROR"))  # expect: hazard
    explained = parallel_map(lambda m: semantic_subcall("Explain.", context_line(context, m.start)),
                             hits[:MAX_EXPLAINED])
    return {"errors": len(hits), "explained": explained}
