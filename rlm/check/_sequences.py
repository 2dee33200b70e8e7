"""Builtins and itertools that make, bound or consume sequences, and how many items they give.

``range(N)``, ``[:N]``, ``islice(it, N)`` and ``zip(range(N), it)`` are the
bounds rule 3 counts on; ``list(scan)`` and ``sorted(scan)`` keep a whole
scan in memory; iterating over the context itself is rule 2's.
"""

from __future__ import annotations

import ast

from rlm.check import _hazards, _rule2
from rlm.check._frames import Frame
from rlm.check._functions import Functions
from rlm.check._values import (
    CTX,
    EMPTY,
    FILE,
    LIST,
    STREAM,
    ULIST,
    UNBOUNDED,
    Count,
    Elem,
    Label,
    Taint,
    count,
    elems,
    no_counts,
    union,
    wrap,
)

MATERIALIZE = frozenset({"list", "tuple", "sorted", "reversed", "collections.deque"})
CONSUME = frozenset({"iter", "set", "frozenset", "dict", "any", "all", "sum", "min", "max", "next",
                     "collections.Counter", "enumerate", "filter", "zip", "map"})


class Sequences(Functions):
    """Calls of the builtins and itertools that walk sequences."""

    def iterate(self, node: ast.expr, fr: Frame) -> Taint:
        """Evaluate something iterated over, reporting iteration over the context itself."""
        t = self.eval(node, fr)
        _rule2.iterated(self, node, t)
        return t | {ULIST} if FILE in t else t

    def map_call(self, e: ast.Call, fr: Frame, kind: str) -> Taint:
        """Provided by the calls layer: ``map`` and ``parallel_map``."""
        raise NotImplementedError

    def sequence_call(self, name: str, e: ast.Call, fr: Frame) -> Taint | None:
        """``name`` is a builtin or itertools function of sequences: its taint; else None."""
        if name == "map":
            return self.map_call(e, fr, "map")
        if name == "filter":
            args, _ = self.arguments(e, fr)
            if len(args) > 1:
                _rule2.iterated(self, e.args[1], args[1])
            return args[1] & (UNBOUNDED | {LIST}) if len(args) > 1 else EMPTY
        if name == "range":
            return self._range(e, fr)
        if name in ("itertools.islice", "islice"):
            return self._islice(e, fr)
        if name in ("itertools.takewhile", "takewhile"):
            args, _ = self.arguments(e, fr)
            return no_counts(args[1]) - UNBOUNDED if len(args) > 1 else EMPTY
        if name == "zip":
            return self._zip(e, fr)
        if name == "enumerate" or name in MATERIALIZE or name in CONSUME:
            return self._iterating_builtin(name, e, fr)
        if name == "len":
            self.arguments(e, fr)
            return EMPTY
        return None

    def _range(self, e: ast.Call, fr: Frame) -> Taint:
        self.arguments(e, fr)
        if any(self.mentions_context_size(a, fr) for a in e.args):
            return frozenset({STREAM})  # every position of the context
        values = [self.const_int(a, fr) for a in e.args]
        ints = [v for v in values if v is not None]
        if not values or len(ints) != len(values):
            return EMPTY
        start, stop, step = (0, ints[0], 1) if len(ints) == 1 else (ints[0], ints[1], ints[2] if len(ints) > 2 else 1)
        return frozenset({Count(max(len(range(start, stop, step or 1)), 0))})

    def _islice(self, e: ast.Call, fr: Frame) -> Taint:
        args, _ = self.arguments(e, fr)
        if args:
            _rule2.iterated(self, e.args[0], args[0])
        bounds = [self.const_int(a, fr) for a in e.args[1:]]
        inner = no_counts(args[0]) - UNBOUNDED if args else EMPTY
        if len(bounds) == 1 and bounds[0] is not None:
            return inner | {Count(bounds[0])}
        if len(bounds) >= 2 and bounds[1] is not None:
            return inner | {Count(bounds[1] - (bounds[0] or 0))}
        return inner

    def _zip(self, e: ast.Call, fr: Frame) -> Taint:
        args, _ = self.arguments(e, fr)
        for node, t in zip(e.args, args):
            _rule2.iterated(self, node, t)
        counts = [c for c in (count(t) for t in args) if c is not None]
        items = union([wrap(elems(t)) for t in args])
        if counts:
            return items | {Count(min(counts))}  # zip(range(N), scan) is bounded by N
        if args and all(t & UNBOUNDED for t in args):
            return items | ({STREAM} if any(STREAM in t for t in args) else {ULIST})
        return items

    def _iterating_builtin(self, name: str, e: ast.Call, fr: Frame) -> Taint:
        args, _ = self.arguments(e, fr)
        if not args:
            return frozenset({LIST}) if name in MATERIALIZE or name in ("set", "frozenset", "dict") else EMPTY
        first = args[0]
        if CTX in first:
            _rule2.iterated(self, e.args[0], first, name)
        if name in ("enumerate", "iter"):
            return first
        if name in MATERIALIZE:
            _hazards.materialized(self, e, name, first)
            out: set[Label] = {LIST}
            out.update(label for label in first if isinstance(label, (Elem, Count)))
            if first & UNBOUNDED:
                out.add(ULIST)
            return frozenset(out)
        if name in ("set", "frozenset", "dict", "collections.Counter"):
            return no_counts(first) - UNBOUNDED | {LIST}
        if name == "next":
            return elems(first)
        return EMPTY  # any, all, sum, min, max: one value out
