"""Walking every position of the context with range(len(...))."""

from rlm.context_access import context_slice
from rlm.subcalls import semantic_subcall

STEP = 4000


def rolling_summary(context):
    """Notes on the document, window by window."""
    notes = []
    for start in range(0, len(context), STEP):  # expect: rule3
        notes.append(semantic_subcall("Key point?", context_slice(context, start, start + STEP)))
    return {"notes": notes}
