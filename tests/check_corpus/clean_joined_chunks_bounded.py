"""str() of a chunk and a join of a few bounded chunks are bounded text."""

from rlm.context_access import context_line, context_search, context_slice
from rlm.subcalls import semantic_subcall

MAX_HITS = 5


def deadline_context(context):
    """The deadlines the document mentions, with one line each."""
    hits = context_search(context, r"(?i)deadline", max_hits=MAX_HITS)
    lines = [str(context_line(context, m.start)) for m in hits]
    excerpt = "\n---\n".join(str(context_slice(context, m.start - 100, m.end + 100)) for m in hits)
    dates = semantic_subcall("List the dates in these excerpts.", excerpt)
    return {"lines": lines, "dates": [d.strip() for d in dates.split(",") if d.strip()], "hits": len(hits)}
