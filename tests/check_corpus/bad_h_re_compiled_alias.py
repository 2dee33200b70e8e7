"""A compiled pattern run over the context under an alias."""

import re

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def contacts(context):
    """E-mail addresses in the document, and who the sender is."""
    doc = context
    emails = EMAIL.findall(doc)  # expect: hazard
    sender = semantic_subcall("Who is the sender?", context_head(doc, 1500))
    return {"emails": sorted(set(emails))[:50], "sender": sender}
