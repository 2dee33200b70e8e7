"""Held out: split() on the context."""

from rlm.subcalls import semantic_subcall

def lines_about(context):
    """Lines mentioning the database."""
    hits = [line for line in context.split("\n") if "database" in line]  # expect: rule2
    return {"count": len(hits), "first": semantic_subcall("Explain.", hits[0]) if hits else None}
