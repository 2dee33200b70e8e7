"""len() of the context is allowed, also inside f-strings and comparisons."""

from rlm.context_access import context_head, context_tail
from rlm.subcalls import semantic_subcall


def size_aware_summary(context):
    """A summary sized to the document."""
    size = len(context)
    piece = context_head(context, 3000) if size > 3000 else context_tail(context, size)
    note = f"The document has {len(context)} characters; this is the opening."
    return {"summary": semantic_subcall(note, piece), "size": size, "short": len(context) < 3000}
