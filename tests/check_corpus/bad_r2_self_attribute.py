"""A small class keeps the context on self and slices it there."""

from rlm.subcalls import semantic_subcall


class _Reader:
    def __init__(self, ctx):
        self.ctx = ctx

    def page(self, n):
        return self.ctx[n * 3000:(n + 1) * 3000]  # expect: rule2


def first_pages(context):
    """Summaries of the first two pages."""
    reader = _Reader(context)
    return {"pages": [semantic_subcall("Summarize this page.", reader.page(i)) for i in range(2)]}
