"""A counter and a break bound a streaming loop that makes subcalls."""

from rlm.context_access import context_finditer, context_line
from rlm.subcalls import semantic_subcall_bool

MAX_JUDGED = 8


def judged_denials(context):
    """Access denials, the first few judged by the model."""
    judged = 0
    malicious = 0
    seen = 0
    for m in context_finditer(context, r"access denied"):
        seen += 1
        if judged >= MAX_JUDGED:
            break
        if semantic_subcall_bool("Malicious?", context_line(context, m.start)):
            malicious += 1
        judged += 1
    return {"seen": seen, "judged": judged, "malicious": malicious}
