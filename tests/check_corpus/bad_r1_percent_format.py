"""Old-style % formatting of the context."""

from rlm.subcalls import semantic_subcall_bool


def mentions_outage(context):
    """Does the report mention an outage?"""
    prompt = "Does this report mention an outage?\n%s" % (context,)  # expect: rule1
    return {"outage": semantic_subcall_bool(prompt, "")}
