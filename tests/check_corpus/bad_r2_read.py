"""ctx.read() as if the context were a file object."""

from rlm.subcalls import semantic_subcall


def tone(context):
    """The tone of the letter."""
    body = context.read()  # expect: rule2
    return {"tone": semantic_subcall("Describe the tone in one word.", body[:1500])}
