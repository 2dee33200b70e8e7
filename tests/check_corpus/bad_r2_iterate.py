"""Iterating over the context line by line."""

from rlm.context_access import context_search
from rlm.subcalls import semantic_subcall_choice


def error_lines(context):
    """Severity of each error line."""
    errors = []
    for line in context:  # expect: rule2
        if "ERROR" in line:
            errors.append(line)
    hits = context_search(context, r"ERROR", max_hits=5)
    severities = [semantic_subcall_choice("Severity?", str(m.text), ["high", "low"], default="low") for m in hits]
    return {"errors": errors[:20], "severities": severities}
