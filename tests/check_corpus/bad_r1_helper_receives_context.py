"""A helper function receives the context and sends it to the model."""

from rlm.subcalls import semantic_subcall

QUESTION = "Which services are mentioned?"


def _ask(doc, question):
    return semantic_subcall(question, doc)  # expect: rule1


def services(context):
    """The services the log mentions."""
    answer = _ask(context, QUESTION)
    return {"question": QUESTION, "answer": answer}
