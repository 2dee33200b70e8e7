"""Threads and processes a task starts itself: subcalls made there escape the run.

The run (its budget, deadline, trace and cache) is carried in a ContextVar; a
thread of the task's own does not see it (``threading.Thread``, an executor,
``loop.run_in_executor``), and a process never does; ``asyncio.to_thread``
copies it, but nothing caps its pool by the run's ``max_workers``.
``parallel_map`` copies the run into each of its workers, up to that cap, so
concurrency goes through it.
"""

from __future__ import annotations

import ast
from types import MappingProxyType

from rlm.check._analysis import Analysis
from rlm.check._syntax import src

_THREAD, _PROCESS = "a thread of the task's own", "a process of the task's own"
_COPIED = "a thread of the task's own, with a copy of the run"  # asyncio.to_thread copies the ContextVars
_WHY = MappingProxyType({
    _THREAD: "subcalls made there run outside the run's budget, deadline and trace",
    _PROCESS: "subcalls made there run outside the run's budget, deadline and trace",
    _COPIED: "the run's max_workers does not cap how many run at once",
})
_STARTERS = MappingProxyType({
    "threading.Thread": _THREAD,
    "threading.Timer": _THREAD,
    "_thread.start_new_thread": _THREAD,
    "_thread.start_new": _THREAD,
    "concurrent.futures.ThreadPoolExecutor": _THREAD,
    "concurrent.futures.thread.ThreadPoolExecutor": _THREAD,
    "concurrent.futures.ProcessPoolExecutor": _PROCESS,
    "concurrent.futures.process.ProcessPoolExecutor": _PROCESS,
    "concurrent.futures.InterpreterPoolExecutor": _PROCESS,
    "asyncio.to_thread": _COPIED,
    "os.fork": _PROCESS,
    "os.forkpty": _PROCESS,
})
# What starts workers anywhere in multiprocessing (get_context: its only use is starting them); in
# multiprocessing.dummy and ThreadPool they are threads.
_MULTIPROCESSING_STARTERS = frozenset({"Process", "Pool", "ThreadPool", "Manager", "get_context"})
#: Methods of objects from other modules that hand work to a thread pool.
_STARTER_METHODS = frozenset({"run_in_executor"})


def _kind(qualname: str) -> str | None:
    """What calling ``qualname`` starts (a key of ``_WHY``), or None."""
    if qualname in _STARTERS:
        return _STARTERS[qualname]
    module, _, name = qualname.rpartition(".")
    if module.split(".")[0] != "multiprocessing" or name not in _MULTIPROCESSING_STARTERS:
        return None
    return _THREAD if module == "multiprocessing.dummy" or name == "ThreadPool" else _PROCESS


def _report(an: Analysis, e: ast.Call, what: str, kind: str) -> None:
    an.report(e, "H-threads", f"{what} starts {kind}: {_WHY[kind]}; make subcalls concurrently "
                              "through rlm.subcalls.parallel_map")


def started_by_call(an: Analysis, qualname: str, e: ast.Call) -> None:
    """A call of a function from another module: ``threading.Thread(...)``, ``ThreadPoolExecutor()``..."""
    kind = _kind(qualname)
    if kind is not None:
        _report(an, e, f"{qualname}()", kind)


def started_by_method(an: Analysis, e: ast.Call, func: ast.Attribute) -> None:
    """A method of an object from another module: ``loop.run_in_executor(...)``."""
    if func.attr in _STARTER_METHODS:
        _report(an, e, f"{src(func)}()", _THREAD)


def started_by_subclass(an: Analysis, cls: ast.ClassDef, e: ast.Call) -> None:
    """An instance of a class of the module that subclasses ``threading.Thread`` or ``multiprocessing.Process``."""
    for base in cls.bases:
        qualname = an.module.qualname(base, None)
        kind = _kind(qualname) if qualname is not None else None
        if kind is not None:
            _report(an, e, f"{cls.name}() (a {qualname})", kind)
            return
