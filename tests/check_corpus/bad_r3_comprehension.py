"""A comprehension asks the model about every chunk."""

from rlm.context_access import context_chunks
from rlm.subcalls import semantic_subcall_bool


def chunks_with_pii(context):
    """Which parts of the document hold personal data."""
    spans = [
        (c.start, c.end) for c in context_chunks(context) if semantic_subcall_bool("Personal data here?", c)  # expect: rule3
    ]
    return {"spans": spans, "count": len(spans)}
