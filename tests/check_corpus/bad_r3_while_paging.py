"""Paging through the whole log with while True: each page is bounded, the pages are not."""

from rlm.context_access import context_line, context_search
from rlm.subcalls import semantic_subcall

PAGE = 10


def explain_every_warning(context):
    """Every warning, explained."""
    explained = []
    pos = 0
    while True:  # expect: rule3
        hits = context_search(context, r"WARN", max_hits=PAGE, start=pos)
        if not hits:
            break
        for m in hits:
            explained.append(semantic_subcall("Explain this warning.", context_line(context, m.start)))
        pos = hits[-1].end
    return {"warnings": explained}
