"""Streaming is right, but every matching line is kept in a list."""

from rlm.context_access import context_finditer, context_line


def timeout_lines(context):
    """Every line that mentions a timeout."""
    lines = []
    for m in context_finditer(context, r"(?i)timed? ?out"):
        lines.append(str(context_line(context, m.start)))  # expect: hazard
    return {"lines": lines[:100], "count": len(lines)}
