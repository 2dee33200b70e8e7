"""parallel_map over every chunk: concurrency does not bound the number of calls."""

from rlm.context_access import context_chunks
from rlm.subcalls import parallel_map, semantic_subcall


def chunk_summaries(context):
    """A summary of every chunk."""
    summaries = parallel_map(lambda c: semantic_subcall("Summarize.", c), context_chunks(context, 2000))  # expect: rule3
    return {"summaries": summaries, "count": len(summaries)}
