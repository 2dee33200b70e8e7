"""An executor reached through a module alias: its workers do not carry the run."""

import concurrent.futures as cf

from rlm.context_access import context_chunks
from rlm.subcalls import semantic_subcall_bool

MAX_CHUNKS = 20


def chunks_mentioning_refunds(context):
    """Which of the first chunks discuss refunds."""
    chunks = []
    for i, chunk in enumerate(context_chunks(context, 4000)):
        if i >= MAX_CHUNKS:
            break
        chunks.append(chunk)

    def ask(chunk):
        return semantic_subcall_bool("Does this discuss refunds?", chunk, default=False)

    with cf.ThreadPoolExecutor(max_workers=4) as pool:  # expect: hazard
        answers = list(pool.map(ask, chunks))
    return {"refund_chunks": sum(answers), "checked": len(chunks)}
