"""Held out: next() on the chunk iterator in a while loop, a translation per chunk."""

from rlm.context_access import context_chunks
from rlm.subcalls import semantic_subcall

def translate(context):
    """Translate the document."""
    out = []
    it = context_chunks(context, 3000)
    while True:  # expect: rule3
        try:
            chunk = next(it)
        except StopIteration:
            break
        out.append(semantic_subcall("Translate to French.", chunk))
    return {"translation": "".join(out)}
