"""The input file read line by line, a subcall per interesting line."""

from rlm.subcalls import semantic_subcall


def explain_lines(context):
    """Explanations of every line that mentions a timeout."""
    out = []
    with open(context.path) as handle:  # expect: rule2
        for line in handle:  # expect: rule3
            if "timeout" in line:
                out.append(semantic_subcall("Explain.", line))
    return {"explanations": out}
