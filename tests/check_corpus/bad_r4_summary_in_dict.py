"""Python counts, but the headline is a summarize-everything subcall over all the answers."""

from rlm.context_access import context_line, context_search
from rlm.subcalls import parallel_map, semantic_subcall


def failure_digest(context):
    """A digest of the failures in the log."""
    hits = context_search(context, r"FAILED", max_hits=20)
    answers = parallel_map(lambda m: semantic_subcall("What failed?", context_line(context, m.start)), hits)
    return {
        "count": len(answers),
        "summary": semantic_subcall("Summarize these failures.", "\n".join(answers)),  # expect: rule4
    }
