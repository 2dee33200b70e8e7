"""open_context returns the context again: still not a chunk."""

from rlm.context_access import context_head, open_context
from rlm.subcalls import semantic_subcall


def language(context):
    """The document's language, checked against its opening."""
    doc = open_context(context)
    guess = semantic_subcall("Which language is the opening in?", context_head(doc, 800))
    check = semantic_subcall(f"Is the whole text in {guess}?", doc)  # expect: rule1
    return {"language": guess, "consistent": check}
