"""A dict around the model's final answer is still the model's answer."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import semantic_subcall

MAX_HITS = 20


def customer_sentiment(context):
    """Overall customer sentiment in the support transcript."""
    quotes = [str(context_line(context, m.start)) for m in context_search(context, r"^Customer:", max_hits=MAX_HITS)]
    overall = semantic_subcall("Give the overall sentiment of these quotes.", f"{quotes}")
    return {"sentiment": overall}  # expect: rule4
