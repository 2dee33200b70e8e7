"""Slicing the context like a string."""

from rlm.subcalls import semantic_subcall


def opening_summary(context):
    """Summary of the first pages."""
    head = context[:4000]  # expect: rule2
    return {"summary": semantic_subcall("Summarize the opening.", head), "chars": len(head)}
