"""Held out: sections between every heading, each summarized in parallel."""

from rlm.context_access import context_search, context_slice, context_chunks
from rlm.subcalls import semantic_subcall, parallel_map

def summarize_sections(context):
    """Summaries of each section."""
    heads = context_search(context, r"^## ", max_hits=None)  # expect: hazard
    sections = []
    for a, b in zip(heads, heads[1:]):
        sections.append(context_slice(context, a.start, b.start))
    summaries = parallel_map(lambda s: semantic_subcall("Summarize this section.", s), sections)  # expect: rule3
    return {"sections": summaries}
