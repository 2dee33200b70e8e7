"""A loop that returns on its first match does one iteration at most."""

from rlm.context_access import context_finditer, context_line
from rlm.subcalls import semantic_subcall


def first_fatal(context):
    """The first fatal error, explained."""
    for m in context_finditer(context, r"FATAL"):
        line = context_line(context, m.start)
        return {"line": m.line, "why": semantic_subcall("Why did it die?", line)}
    return {"line": None, "why": None}
