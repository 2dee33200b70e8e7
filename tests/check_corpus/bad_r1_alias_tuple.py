"""The context is aliased, then unpacked from a tuple, then formatted."""

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall


def summarize_sections(context):
    """Summaries of the opening and the whole."""
    doc = context
    text, limit = doc, 4000
    opening = context_head(doc, limit)
    first = semantic_subcall("Summarize the opening.", opening)
    prompt = "Compare the opening with the rest of the document:\n" f"{text}"  # expect: rule1
    rest = semantic_subcall(prompt, opening)
    return {"opening": first, "comparison": rest}
