"""Expressions: what each evaluates to, as a taint, and what it breaks on the way."""

from __future__ import annotations

import ast

from rlm.check import _hazards, _rule1, _rule2, _rule3
from rlm.check._calls import Calls
from rlm.check._frames import Frame, Loop
from rlm.check._syntax import dotted
from rlm.check._values import (
    CTX,
    EMPTY,
    LIST,
    STREAM,
    STRINGIFIED,
    ULIST,
    UNBOUNDED,
    WHOLE,
    Count,
    Fn,
    Label,
    Taint,
    count,
    elems,
    no_counts,
    union,
    wrap,
)

_Comprehension = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp


class Expressions(Calls):
    """Evaluates expressions; every taint is kept by node id, for the rules that look back."""

    def eval(self, e: ast.expr, fr: Frame) -> Taint:
        t = self._eval_inner(e, fr)
        self.last[id(e)] = t
        return t

    def assign(self, target: ast.expr, t: Taint, fr: Frame, value: ast.expr | None) -> None:
        """Provided by the statements layer: bind ``target`` (a walrus needs it too)."""
        raise NotImplementedError

    def _eval_inner(self, e: ast.expr, fr: Frame) -> Taint:
        if isinstance(e, ast.Name):
            found = fr.lookup(e.id)
            return found if found is not None else self.module.globals.get(e.id, EMPTY)
        if isinstance(e, ast.Attribute):
            return self._attribute(e, fr)
        if isinstance(e, ast.Subscript):
            return self._subscript(e, fr)
        if isinstance(e, ast.Call):
            return self.call(e, fr)
        if isinstance(e, ast.BinOp):  # here, not in _operation: a long a + b + ... chain recurses one frame less
            return _rule1.binop(self, e, fr)
        if isinstance(e, (ast.JoinedStr, ast.FormattedValue, ast.Compare, ast.BoolOp, ast.UnaryOp,
                          ast.IfExp)):
            return self._operation(e, fr)
        if isinstance(e, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
            return self._display(e, fr)
        if isinstance(e, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            return self._comprehension(e, fr)
        if isinstance(e, ast.Lambda):
            return frozenset({Fn(self.lambda_ref(e, fr))})
        if isinstance(e, ast.NamedExpr):
            t = self.eval(e.value, fr)
            self.assign(e.target, t, fr, e.value)
            return t
        if isinstance(e, (ast.Starred, ast.Await)):
            return self.eval(e.value, fr)
        if isinstance(e, (ast.Yield, ast.YieldFrom)):
            return self._yield(e, fr)
        if isinstance(e, ast.Slice):
            for part in (e.lower, e.upper, e.step):
                if part is not None:
                    self.eval(part, fr)
        return EMPTY  # a constant, or nothing the rules follow

    def _attribute(self, e: ast.Attribute, fr: Frame) -> Taint:
        key = dotted(e)
        if key is not None and fr.lookup(key) is not None:
            return fr.lookup(key) or EMPTY
        base = self.eval(e.value, fr)
        if CTX in base and _rule2.not_a_context_attribute(self, e, e.attr, called=False):
            return frozenset({WHOLE})
        return self.attribute_of(base, e.attr)

    def _operation(self, e: ast.expr, fr: Frame) -> Taint:
        """Operators, comparisons and f-strings."""
        if isinstance(e, ast.JoinedStr):
            return _rule1.fstring(self, e, fr)
        if isinstance(e, ast.FormattedValue):
            return self.eval(e.value, fr)
        if isinstance(e, ast.Compare):
            self.eval(e.left, fr)
            for op, right in zip(e.ops, e.comparators):
                rt = self.eval(right, fr)
                if isinstance(op, (ast.In, ast.NotIn)) and CTX in rt:
                    _rule2.contains(self, e)
            return EMPTY
        if isinstance(e, ast.BoolOp):
            return union([self.eval(v, fr) for v in e.values])
        if isinstance(e, ast.UnaryOp):
            self.eval(e.operand, fr)
            return EMPTY
        if isinstance(e, ast.IfExp):
            self.eval(e.test, fr)
            return self.eval(e.body, fr) | self.eval(e.orelse, fr)
        return EMPTY

    def _display(self, e: ast.List | ast.Tuple | ast.Set | ast.Dict, fr: Frame) -> Taint:
        """``[a, b]``, ``(a, *b)``, ``{k: v}``: a container of what its items are."""
        out: set[Label] = {LIST}
        if isinstance(e, ast.Dict):
            for k, v in zip(e.keys, e.values):
                if k is not None:
                    self.eval(k, fr)
                out |= wrap(self.eval(v, fr))
            return frozenset(out)
        for elt in e.elts:
            t = self.eval(elt, fr)
            out |= t & UNBOUNDED if isinstance(elt, ast.Starred) else wrap(t)
        if not any(isinstance(elt, ast.Starred) for elt in e.elts):
            out.add(Count(len(e.elts)))
        return frozenset(out)

    def _yield(self, e: ast.Yield | ast.YieldFrom, fr: Frame) -> Taint:
        t = self.eval(e.value, fr) if e.value is not None else EMPTY
        fr.yields.append(elems(t) if isinstance(e, ast.YieldFrom) else t)
        if fr.in_unbounded_loop() or (isinstance(e, ast.YieldFrom) and t & UNBOUNDED):
            fr.yields_unbounded = True
        return EMPTY

    def _subscript(self, e: ast.Subscript, fr: Frame) -> Taint:
        """``x[i]`` is an item; ``x[:N]`` bounds a sequence to N items (``x[:len(x)]`` does not)."""
        base = self.eval(e.value, fr)
        self.eval(e.slice, fr)
        if CTX in base:
            _rule2.indexed(self, e)
            return frozenset({WHOLE}) if isinstance(e.slice, ast.Slice) and e.slice.upper is None else EMPTY
        if not isinstance(e.slice, ast.Slice):
            return elems(base)
        lower, upper = self.const_int(e.slice.lower, fr), self.const_int(e.slice.upper, fr)
        keep = no_counts(base)
        if e.slice.upper is not None and (upper is None or upper >= 0) \
                and not any(isinstance(n, ast.Name) and n.id == "len" for n in ast.walk(e.slice.upper)):
            keep = keep - UNBOUNDED - {WHOLE, STRINGIFIED}
            if upper is not None and (lower or 0) >= 0:
                return keep | {Count(max(upper - (lower or 0), 0))}
            return keep
        if e.slice.upper is None and lower is not None and lower < 0:
            return keep - UNBOUNDED - {WHOLE, STRINGIFIED} | {Count(-lower)}
        return base

    def _comprehension(self, e: _Comprehension, fr: Frame) -> Taint:
        saved_env, saved_ints = dict(fr.env), dict(fr.ints)
        loop = Loop(e)
        unbounded = False
        n: int | None = None
        for i, gen in enumerate(e.generators):
            it = self.iterate(gen.iter, fr)
            if i == 0:
                n = count(it)
                fr.loops.append(loop)
            unbounded = unbounded or bool(it & UNBOUNDED)
            self.assign(gen.target, elems(it), fr, None)
            for cond in gen.ifs:
                self.eval(cond, fr)
        if isinstance(e, ast.DictComp):
            self.eval(e.key, fr)
            elt = self.eval(e.value, fr)
        else:
            elt = self.eval(e.elt, fr)
        fr.loops.pop()
        fr.env, fr.ints = saved_env, saved_ints
        out: set[Label] = set(wrap(elt))
        if isinstance(e, ast.GeneratorExp):
            out |= {STREAM} if unbounded else set()
        else:
            out.add(LIST)
            if unbounded and not isinstance(e, (ast.SetComp, ast.DictComp)):
                out.add(ULIST)
        if n is not None and not unbounded:
            out.add(Count(n))
        scan = e.generators[0].iter  # where a long comprehension is wrong
        if not _rule3.judge_comprehension(self, scan, loop, unbounded):
            streams = any(STREAM in self.seen(g.iter) for g in e.generators)  # a built list was reported already
            _hazards.judge_comprehension(self, e, scan, loop, unbounded, streams, n)
        return frozenset(out)
