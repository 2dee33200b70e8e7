"""String methods called on the context."""

from rlm.subcalls import parallel_map, semantic_subcall_bool


def suspicious_lines(context):
    """Lines that look like intrusion attempts."""
    lines = context.splitlines()  # expect: rule2
    candidates = [line for line in lines if "denied" in line.lower()][:20]
    flags = parallel_map(lambda line: semantic_subcall_bool("Is this an intrusion attempt?", line), candidates)
    return {"suspicious": [line for line, bad in zip(candidates, flags) if bad]}
