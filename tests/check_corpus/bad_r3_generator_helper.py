"""A generator helper yields a window per match; the task asks the model about each one."""

from rlm.context_access import context_finditer, context_slice
from rlm.subcalls import semantic_subcall_bool


def _windows(doc, pattern):
    for m in context_finditer(doc, pattern):
        yield context_slice(doc, m.start - 200, m.end + 200)


def leaked_secrets(context):
    """Windows where a secret seems to leak."""
    flagged = [(w.start, w.end) for w in _windows(context, r"(?i)api[_-]?key") if semantic_subcall_bool("Leak?", w)]  # expect: rule3
    return {"leaks": flagged, "count": len(flagged)}
