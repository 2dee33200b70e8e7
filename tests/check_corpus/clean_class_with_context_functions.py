"""A class keeps the context and reaches it only through the context functions."""

from rlm.context_access import context_line, context_search, context_slice
from rlm.subcalls import semantic_subcall


class _Navigator:
    def __init__(self, ctx):
        self.ctx = ctx

    def around(self, pattern, radius=300):
        hits = context_search(self.ctx, pattern, max_hits=1)
        return context_slice(self.ctx, hits[0].start - radius, hits[0].end + radius) if hits else None

    def line_at(self, pos):
        return context_line(self.ctx, pos)


def introduction(context):
    """What the introduction says."""
    nav = _Navigator(context)
    intro = nav.around(r"(?i)introduction")
    first = nav.line_at(0)
    said = semantic_subcall("What does the introduction say?", intro) if intro is not None else None
    return {"first_line": str(first), "introduction": said, "size": len(context)}
