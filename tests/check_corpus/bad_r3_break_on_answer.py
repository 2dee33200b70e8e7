"""Breaking out on a model answer is not a bound: the model may never say yes."""

from rlm.context_access import context_finditer, context_line
from rlm.subcalls import semantic_subcall_bool


def root_cause(context):
    """The first error the model calls a root cause."""
    for m in context_finditer(context, r"ERROR"):  # expect: rule3
        line = context_line(context, m.start)
        if semantic_subcall_bool("Is this the root cause of the outage?", line):
            return {"line": m.line, "text": str(line)}
    return {"line": None}
