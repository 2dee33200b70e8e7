"""Held out: the context itself is sent when the document is small."""

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall

def quick(ctx):
    """Quick look."""
    body = ctx
    if len(body) > 100_000:
        body = context_head(ctx, 8000)
    return {"gist": semantic_subcall("Gist?", body)}  # expect: rule1
