"""Concurrency through parallel_map, whose workers carry the run; a lock of one's own is fine."""

import os
import threading

from rlm.context_access import context_line, context_search
from rlm.subcalls import parallel_map, semantic_subcall_choice

MAX_HITS = 40


def severities(context):
    """The severity of the first warnings, judged concurrently."""
    hits = context_search(context, r"WARN", max_hits=MAX_HITS)
    lock = threading.Lock()
    seen = {"high": 0}

    def judge(m):
        verdict = semantic_subcall_choice("Severity?", context_line(context, m.start), ["low", "high"], default="low")
        if verdict == "high":
            with lock:
                seen["high"] += 1
        return verdict

    verdicts = parallel_map(judge, hits, max_workers=min(8, os.cpu_count() or 1))
    return {"verdicts": verdicts, "high": seen["high"], "checked": len(hits)}
