"""isinstance, getattr, typing.cast and len may look at the context without reading it."""

import typing

from rlm.context_access import Context, context_head
from rlm.subcalls import semantic_subcall


def safe_summary(context):
    """A summary of the opening, whatever the context is."""
    doc = typing.cast(Context, context)
    name = getattr(doc, "name", "<text>")
    mapped = isinstance(doc, Context) and doc.path is not None
    opening = context_head(doc, 2000)
    return {"name": name, "mapped": mapped, "size": len(doc), "summary": semantic_subcall("Summarize.", opening)}
