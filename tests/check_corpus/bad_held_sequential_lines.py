"""Held out: thirty sequential subcalls, one per line."""

import re
from rlm.context_access import context_line, context_search
from rlm.subcalls import semantic_subcall_choice

def levels(context):
    """Levels."""
    lines = [str(context_line(context, m.start)) for m in context_search(context, r"level=", max_hits=30)]
    parsed = [re.search(r"level=(\w+)", l).group(1) for l in lines]
    judged = []
    for l in lines:  # expect: hazard
        judged.append(semantic_subcall_choice("Real level?", l, ["debug", "info", "warn", "error"], default="info"))
    return {"parsed": parsed, "judged": judged}
