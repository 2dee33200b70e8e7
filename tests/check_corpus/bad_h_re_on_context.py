"""Raw re over the whole text: not stopped by the run's deadline."""

import re

from rlm.context_access import context_line, context_search
from rlm.subcalls import semantic_subcall


def ip_addresses(context):
    """Distinct IP addresses and what the first one did."""
    ips = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", str(context)))  # expect: rule1, hazard
    first = context_search(context, r"\b\d{1,3}(?:\.\d{1,3}){3}\b", max_hits=1)
    action = semantic_subcall("What did this client do?", context_line(context, first[0].start)) if first else None
    return {"ips": sorted(ips), "first_action": action}
