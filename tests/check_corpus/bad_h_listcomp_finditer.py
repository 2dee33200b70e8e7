"""A list comprehension over every newline of the document."""

from rlm.context_access import context_finditer


def line_lengths(context):
    """The longest line and the mean line length."""
    starts = [m.start for m in context_finditer(context, r"\n")]  # expect: hazard
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    return {"longest": max(gaps, default=0), "mean": sum(gaps) / len(gaps) if gaps else 0}
