"""context_slice from 0 to len(context) is the whole document under another name."""

from rlm.context_access import context_slice
from rlm.subcalls import semantic_subcall


def abstract(context):
    """A short abstract of the paper."""
    everything = context_slice(context, 0, len(context))
    text = semantic_subcall("Write a three-sentence abstract.", everything)  # expect: rule1
    return {"abstract": text.strip(), "chars": len(context)}
