"""A comprehension over the context."""

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall


def acronyms(context):
    """Acronyms used in the document, explained."""
    upper = [ch for ch in context if ch.isupper()]  # expect: rule2
    meaning = semantic_subcall("Explain the acronyms in this text.", context_head(context, 3000))
    return {"capitals": len(upper), "explanation": meaning}
