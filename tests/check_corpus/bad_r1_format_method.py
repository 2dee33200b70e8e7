"""str.format puts the context into the prompt."""

from rlm.context_access import context_tail
from rlm.subcalls import semantic_subcall

TEMPLATE = "You are a log analyst.\n\nLOG:\n{}\n\nList the distinct failures."


def failures(context):
    """Distinct failures in the log."""
    prompt = TEMPLATE.format(context)  # expect: rule1
    listed = semantic_subcall(prompt, context_tail(context, 500))
    return {"failures": [line.strip("- ") for line in listed.splitlines() if line.strip()]}
