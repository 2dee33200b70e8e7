"""Scan the whole log, group in Python, and ask the model about a bounded sample."""

import re
from collections import Counter

from rlm.context_access import context_finditer, context_line
from rlm.subcalls import parallel_map, semantic_subcall

PROBLEMS = r"(?i)\b(error|exception|fatal)\b[^\n]*"
MAX_GROUPS = 10
EXAMPLES_PER_GROUP = 3


def _signature(text):
    return re.sub(r"\d+", "N", text)[:80]


def grouped_errors(context):
    """Error groups across the whole log, the biggest explained."""
    counts = Counter()
    first_at = {}
    examples = {}
    total = sum(1 for _ in context_finditer(context, r"\n"))
    for m in context_finditer(context, PROBLEMS):
        sig = _signature(str(m.text))
        counts[sig] += 1
        first_at.setdefault(sig, m.start)
        bucket = examples.setdefault(sig, [])
        if len(bucket) < EXAMPLES_PER_GROUP:
            bucket.append(m.line)
    top = [sig for sig, _ in counts.most_common(MAX_GROUPS)]
    explained = parallel_map(lambda sig: semantic_subcall("What does this error mean?",
                                                          context_line(context, first_at[sig])), top)
    return {"groups": [{"signature": s, "count": counts[s], "lines": examples[s], "meaning": e}
                       for s, e in zip(top, explained)], "lines": total, "distinct": len(counts)}
