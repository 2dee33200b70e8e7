"""zip(range(n), ...) and an enumerate index with break both bound a loop."""

from rlm.context_access import context_chunks, context_finditer, context_line
from rlm.subcalls import semantic_subcall


def first_parts(context):
    """The first parts of the document, and the first warnings explained."""
    parts = [semantic_subcall("Gist?", c) for _, c in zip(range(3), context_chunks(context, 3000))]
    warnings = []
    for i, m in enumerate(context_finditer(context, r"WARN")):
        if i >= 5:
            break
        warnings.append(semantic_subcall("Explain.", context_line(context, m.start)))
    return {"parts": parts, "warnings": warnings}
