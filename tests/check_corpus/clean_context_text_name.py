"""A local string named context_text is not the context."""

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall

context_text = "You are reading a product manual."


def manual_purpose(context):
    """What the manual is for."""
    context_hint = f"{context_text} Answer briefly."
    opening = context_head(context, 2000)
    return {"purpose": semantic_subcall(context_hint + " What is this manual for?", opening), "hint": context_hint}
