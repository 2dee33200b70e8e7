"""functools.partial binds the context; parallel_map runs it over every match."""

import functools

from rlm.context_access import context_finditer, context_slice
from rlm.subcalls import parallel_map, semantic_subcall


def _judge(doc, m):
    return semantic_subcall("Is this a real failure?", context_slice(doc, m.start - 200, m.end + 200))


def failures(context):
    """Every failure, judged."""
    judge = functools.partial(_judge, context)
    verdicts = parallel_map(judge, context_finditer(context, r"FAIL"))  # expect: rule3
    return {"verdicts": verdicts, "count": len(verdicts)}
