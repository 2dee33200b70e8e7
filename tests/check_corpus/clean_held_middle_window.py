"""Held out: len() arithmetic and an f-string of a bounded window."""

from rlm.context_access import context_slice
from rlm.subcalls import semantic_subcall

def middle(context):
    """The middle of the document."""
    mid = len(context) // 2
    window = context_slice(context, mid - 1000, mid + 1000)
    text = f"{window}"
    return {"middle": semantic_subcall("What happens here?", text), "at": mid}
