"""Streaming with a dedupe guard and a capped list keeps memory bounded."""

from rlm.context_access import context_finditer


MAX_SAMPLES = 20


def users_seen(context):
    """Distinct users in the access log, with a sample of lines."""
    seen = set()
    order = []
    samples = []
    for m in context_finditer(context, r"user=(\w+)"):
        user = m.groups[0]
        if user not in seen:
            seen.add(user)
            order.append(user)
        if len(samples) < MAX_SAMPLES:
            samples.append(m.line)
    return {"users": order, "samples": samples}
