"""re on a bounded chunk or on a match's text is fine: only the whole context is a hazard."""

import re

from rlm.context_access import context_search, context_tail
from rlm.subcalls import semantic_subcall

VERSION = re.compile(r"v(\d+)\.(\d+)")


def release_notes(context):
    """Version numbers near the end, and what changed last."""
    ending = context_tail(context, 2000)
    versions = re.findall(r"\d+\.\d+\.\d+", ending)
    hits = context_search(context, r"(?i)changelog", max_hits=3)
    tags = [VERSION.search(str(m.text)) for m in hits]
    last = semantic_subcall("What changed in the last release?", ending)
    return {"versions": versions, "tags": [t.group(0) for t in tags if t], "last_change": last}
