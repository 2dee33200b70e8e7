"""A task parameter rebound to a chunk, and a public two-parameter helper that is not a task."""

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall


def describe(text, audience):
    return semantic_subcall(f"Describe this for {audience}: {text}", text)


def brief(context):
    """A brief of the opening for two audiences."""
    context = context_head(context, 3000)
    return {"executives": describe(context, "executives"), "engineers": describe(context, "engineers")}
