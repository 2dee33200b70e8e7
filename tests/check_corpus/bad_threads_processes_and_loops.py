"""Processes, an event loop's executor, asyncio.to_thread and a Thread subclass: none carries the run."""

import asyncio
import multiprocessing as mp
import os
import threading

from rlm.context_access import context_head, context_search, context_slice
from rlm.subcalls import semantic_subcall


class Reader(threading.Thread):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def run(self):
        self.answer = semantic_subcall("What is this about?", self.text)


def _summary(text):
    return semantic_subcall("Summarize in one line.", text)


def in_processes(context):
    """Summaries of the first hits, in worker processes."""
    windows = [context_slice(context, m.start, m.end + 500) for m in context_search(context, r"ERROR", max_hits=5)]
    with mp.Pool(2) as pool:  # expect: hazard
        summaries = pool.map(_summary, windows)
    return {"summaries": summaries}


def forked(context):
    """A child process for the head of the document."""
    pid = os.fork()  # expect: hazard
    if pid == 0:
        semantic_subcall("What is this?", context_head(context, 2000))
        os._exit(0)
    return {"child": pid}


async def in_executor(context):
    """The head, asked from the event loop's default executor and from asyncio.to_thread."""
    head = context_head(context, 2000)
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, _summary, head)  # expect: hazard
    second = await asyncio.to_thread(_summary, head)  # expect: hazard
    return {"answers": [first, second]}


def subclassed(context):
    """A Thread subclass of the module's own."""
    reader = Reader(context_head(context, 2000))  # expect: hazard
    reader.start()
    reader.join()
    return {"answer": reader.answer}
