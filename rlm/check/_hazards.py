"""Hazards (advice, not rules): code that works on a small document and fails on a large one.

``re`` on the whole context (the run's deadline cannot stop it), every match
of an unbounded scan kept in memory, and more than :data:`HANDFUL`
sequential subcalls in a loop where ``parallel_map`` would do.
"""

from __future__ import annotations

import ast

from rlm.check._analysis import Analysis
from rlm.check._frames import Loop
from rlm.check._syntax import src
from rlm.check._values import LIST, STREAM, ULIST, WHOLE, WHOLE_TEXT, Taint, count

#: More sequential subcalls than this in one loop is a hazard (``parallel_map`` would do).
HANDFUL = 10


def regex_on(an: Analysis, function: str, e: ast.Call, node: ast.expr | None, t: Taint) -> Taint:
    """``re.<function>`` (or a pattern's method) scanning ``node`` (of taint ``t``); what it gives."""
    if not t & WHOLE_TEXT or node is None:
        return frozenset()
    an.report(e, "H-re", f"{src(e.func)}() scans the whole context ({src(node)}) where the run's deadline "
                         "cannot stop it")
    if function == "finditer":
        return frozenset({STREAM})
    if function in ("findall", "split"):
        return frozenset({ULIST, LIST})
    return frozenset({WHOLE}) if function in ("sub", "subn") else frozenset()


def materialized(an: Analysis, e: ast.Call, name: str, t: Taint) -> None:
    """``list(scan)``, ``sorted(scan)``: every item of an unbounded scan in memory."""
    if STREAM in t:
        an.report(e, "H-materialize", f"{name}(...) keeps every item of an unbounded scan of the context in memory")


def every_match_listed(an: Analysis, e: ast.Call) -> None:
    an.report(e, "H-materialize", "max_hits=None lists every match in the context in memory")


def judge_for(an: Analysis, s: ast.For | ast.AsyncFor, loop: Loop, it: Taint, unbounded: bool,
              bounded_exit: bool) -> None:
    """A for loop that rule 3 let pass: what it keeps of an unbounded scan, how many subcalls in a row."""
    if unbounded and STREAM in it:  # a list already built was reported where it was built
        for call, guards in loop.appends:
            # Under an if, the task decides what it keeps (a filter, a dedupe, a cap): only keeping
            # every item is a hazard.
            if not guards:
                an.report(call, "H-accumulate", f"{src(call.func)}(...) keeps an item for every match of an "
                                                f"unbounded scan ({src(s.iter)})")
    elif loop.sequential and (count(it) or 0) > HANDFUL and not bounded_exit:
        an.report(s, "H-sequential", f"this loop makes up to {count(it)} subcalls one after another")


def judge_comprehension(an: Analysis, e: ast.expr, scan: ast.expr, loop: Loop, unbounded: bool, streams: bool,
                        n: int | None) -> None:
    """A comprehension that rule 3 let pass."""
    if unbounded and isinstance(e, ast.ListComp) and streams:
        an.report(scan, "H-materialize", "this list comprehension keeps every item of an unbounded scan of the "
                                         "context in memory")
    elif loop.sequential and (n or 0) > HANDFUL:
        an.report(e, "H-sequential", f"this comprehension makes up to {n} subcalls one after another")
