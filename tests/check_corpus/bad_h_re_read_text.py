"""re.finditer over text read from the file: two problems on two lines."""

import re

from rlm.subcalls import semantic_subcall


def slow_requests(context):
    """Requests slower than a second, and the slowest one explained."""
    text = context.read()  # expect: rule2
    slow = [(int(m.group(1)), m.start()) for m in re.finditer(r"took (\d+)ms", text)][:1000]  # expect: hazard
    slow.sort(reverse=True)
    worst = semantic_subcall("Why is this slow?", text[slow[0][1]: slow[0][1] + 500]) if slow else None
    return {"slow": len(slow), "worst": worst}
