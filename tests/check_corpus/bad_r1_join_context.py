"""Joining the context's characters rebuilds the whole document as a string."""

from rlm.subcalls import semantic_subcall


def keywords(context):
    """Keywords of the document."""
    text = "".join(context)  # expect: rule1
    words = semantic_subcall("List ten keywords.", text[:2000])
    return {"keywords": words.split(", ")[:10]}
