"""Held out: counting per host while streaming, no subcalls."""

from rlm.context_access import context_finditer
from collections import defaultdict

def per_host(context):
    """Requests per host."""
    hosts = defaultdict(int)
    for m in context_finditer(context, r"host=(\S+)"):
        hosts[m.groups[0]] += 1
    return {"hosts": dict(sorted(hosts.items(), key=lambda kv: -kv[1])[:20])}
