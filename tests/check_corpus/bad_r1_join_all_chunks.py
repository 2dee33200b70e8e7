"""Every chunk joined back together, then one summarize-everything call as the answer."""

from rlm.context_access import context_chunks
from rlm.subcalls import semantic_subcall


def summarize(context):
    """A summary of the whole document."""
    text = "\n".join(context_chunks(context, 8000))
    summary = semantic_subcall("Summarize this document.", text)  # expect: rule1
    return summary  # expect: rule4
