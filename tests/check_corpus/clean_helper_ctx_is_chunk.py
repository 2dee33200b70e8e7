"""A helper whose parameter is named ctx receives a chunk, not the context."""

from rlm.context_access import context_search, context_slice
from rlm.subcalls import parallel_map, semantic_subcall

MAX_HITS = 10


def _summarize(ctx):
    prompt = f"Summarize this excerpt of {len(ctx)} characters:\n{ctx}"
    return semantic_subcall(prompt, ctx)


def excerpt_summaries(context):
    """Summaries of the excerpts around each mention of 'revenue'."""
    hits = context_search(context, r"(?i)revenue", max_hits=MAX_HITS)
    windows = [context_slice(context, m.start - 300, m.end + 300) for m in hits]
    return {"summaries": parallel_map(_summarize, windows), "count": len(windows)}
