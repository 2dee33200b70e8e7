"""The task opens the input file itself instead of using the context."""

from rlm.subcalls import semantic_subcall


def count_and_explain(context):
    """How many errors, and what the first one means."""
    with open(context.path, encoding="utf-8") as f:  # expect: rule2
        text = f.read()
    first = text.find("ERROR")
    window = text[max(first - 200, 0): first + 400]
    return {"errors": text.count("ERROR"), "first": semantic_subcall("Explain this error.", window)}
