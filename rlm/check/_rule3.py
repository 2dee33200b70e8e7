"""Rule 3, bound all iterations: model work that grows with the document.

A loop, comprehension or map that makes subcalls over every match, chunk,
line or position of the context needs a bound; so does a while loop that
makes subcalls. A bound is a cap on the scan (``max_hits=N``, ``[:N]``,
``islice``, ``zip(range(N), ...)``), or a break / return under a test on a
counter, a ``len()`` or the clock. A break on a model answer is not one.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from rlm.check._analysis import Analysis
from rlm.check._frames import Frame, Loop
from rlm.check._syntax import LOOP_NODES, src, walk_local
from rlm.check._values import UNBOUNDED, Taint

AnyLoop = ast.For | ast.AsyncFor | ast.While


def judge_for(an: Analysis, s: ast.For | ast.AsyncFor, loop: Loop, unbounded: bool) -> bool:
    """A for loop over an unbounded scan making subcalls. Whether it was reported."""
    if unbounded and loop.subcall:
        an.report(s, "R3-loop", f"this loop over {src(s.iter)} makes subcalls for every item of an unbounded "
                                "scan of the context")
        return True
    return False


def judge_while(an: Analysis, s: ast.While, loop: Loop, fr: Frame) -> None:
    if loop.subcall and not (_while_bounded(an, s, fr) or bounded_exit(an, s, fr)):
        an.report(s, "R3-while", "this while loop makes subcalls and nothing bounds how many times it runs "
                                 "(a break on a model answer or an empty page is not a bound)")


def judge_comprehension(an: Analysis, scan: ast.expr, loop: Loop, unbounded: bool) -> bool:
    """A comprehension over an unbounded scan making subcalls, reported at the scan. Whether it was."""
    if unbounded and loop.subcall:
        an.report(scan, "R3-comprehension", f"this comprehension makes subcalls for every item of an unbounded "
                                            f"scan ({src(scan)})")
        return True
    return False


def judge_map(an: Analysis, e: ast.Call, kind: str, items: ast.expr | None, items_t: Taint) -> None:
    """``parallel_map`` or ``map`` of a function that makes subcalls: not over an unbounded scan."""
    if items_t & UNBOUNDED:
        an.report(e, "R3-parallel", f"{kind} makes subcalls for every item of an unbounded scan "
                                    f"({src(items) if items is not None else '?'})")


def _counters(loop: AnyLoop) -> set[str]:
    """Names the loop body counts with (``n += 1``, ``n = n + 1``, ``for n, x in enumerate(...)``)."""
    names: set[str] = set()
    for node in walk_local(loop.body):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) \
                and isinstance(node.value.left, ast.Name) \
                and any(isinstance(t, ast.Name) and t.id == node.value.left.id for t in node.targets):
            names.add(node.value.left.id)
    if isinstance(loop, (ast.For, ast.AsyncFor)) and isinstance(loop.iter, ast.Call) \
            and isinstance(loop.iter.func, ast.Name) and loop.iter.func.id == "enumerate" \
            and isinstance(loop.target, ast.Tuple) and isinstance(loop.target.elts[0], ast.Name):
        names.add(loop.target.elts[0].id)
    return names


def bounded_exit(an: Analysis, loop: AnyLoop, fr: Frame) -> bool:
    """A break or return that is unconditional, or under a test on a counter, a len() or the clock."""
    counters = _counters(loop)

    def visit(stmts: Sequence[ast.stmt], tests: tuple[ast.expr, ...], nested: bool) -> bool:
        for stmt in stmts:
            leaves = isinstance(stmt, ast.Return) or (isinstance(stmt, ast.Break) and not nested)
            if leaves and (not tests or any(_is_bound_test(an, t, counters, fr) for t in tests)):
                return True
            if isinstance(stmt, ast.If):
                inner = (*tests, stmt.test)
                found = visit(stmt.body, inner, nested) or visit(stmt.orelse, inner, nested)
            elif isinstance(stmt, LOOP_NODES):
                found = visit(stmt.body, tests, True)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                found = visit(stmt.body, tests, nested)
            elif isinstance(stmt, ast.Try):
                # leaving on an exception is not a bound: a handler's test is never a counter's
                found = any(visit(b, tests, nested) for b in (stmt.body, stmt.orelse, stmt.finalbody)) or any(
                    visit(h.body, (*tests, ast.Constant(False)), nested) for h in stmt.handlers)
            else:
                found = False
            if found:
                return True
        return False

    return visit(loop.body, (), False)


def _while_bounded(an: Analysis, s: ast.While, fr: Frame) -> bool:
    if isinstance(s.test, ast.Constant):
        return False
    if _is_bound_test(an, s.test, _counters(s), fr):
        return True
    if not isinstance(s.test, ast.Name):
        return False
    # while queue: ... queue.pop(): a work list that only shrinks
    methods = {n.func.attr for n in walk_local(s.body) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
               and n.func.value.id == s.test.id}
    return bool(methods & {"pop", "popleft"}) and not methods & {"append", "extend", "appendleft", "insert"}


def _is_bound_test(an: Analysis, test: ast.expr, counters: set[str], fr: Frame) -> bool:
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if any(an.mentions_context_size(o, fr) for o in operands):
            continue  # i < len(ctx) bounds nothing: the document has no fixed size
        for sub in (n for o in operands for n in ast.walk(o)):
            if isinstance(sub, ast.Name) and sub.id in counters:
                return True
            if isinstance(sub, ast.Call):
                if isinstance(sub.func, ast.Name) and sub.func.id == "len":
                    return True
                qualname = an.module.qualname(sub.func, fr)
                if qualname is not None and qualname.startswith("time."):
                    return True
    return False
