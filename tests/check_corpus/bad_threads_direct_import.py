"""Threads started by hand: the subcall in each runs outside the run's budget, deadline and trace."""

import threading

from rlm.context_access import context_search, context_slice
from rlm.subcalls import semantic_subcall


def label_errors(context):
    """A three-word label for each of the first eight errors, one thread each."""
    hits = context_search(context, r"ERROR", max_hits=8)
    labels = {}

    def label(m):
        window = context_slice(context, m.start, m.end + 200)
        labels[m.start] = semantic_subcall("Label this error in three words.", window)

    workers = [threading.Thread(target=label, args=(m,)) for m in hits]  # expect: hazard
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"labels": labels, "count": len(hits)}
