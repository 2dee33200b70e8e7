"""ThreadPoolExecutor imported under another name is still a pool of the task's own."""

from concurrent.futures import ThreadPoolExecutor as P

from rlm.context_access import context_line, context_search
from rlm.subcalls import semantic_subcall_choice


def severities(context):
    """The severity of the first thirty warnings, four at a time."""
    hits = context_search(context, r"WARN", max_hits=30)

    def judge(m):
        return semantic_subcall_choice("Severity?", context_line(context, m.start), ["low", "high"], default="low")

    pool = P(4)  # expect: hazard
    verdicts = [pool.submit(judge, m) for m in hits]
    high = sum(1 for v in verdicts if v.result() == "high")
    pool.shutdown()
    return {"high": high, "checked": len(hits)}
