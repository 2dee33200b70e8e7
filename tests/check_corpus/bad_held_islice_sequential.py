"""Held out: islice bounds the stream, but twenty sequential subcalls follow."""

import itertools
from rlm.context_access import context_finditer, context_line
from rlm.subcalls import semantic_subcall

def sample(context):
    """A sample of errors explained."""
    first = list(itertools.islice(context_finditer(context, "ERROR"), 20))
    return {"explained": [semantic_subcall("Why?", context_line(context, m.start)) for m in first]}  # expect: hazard
