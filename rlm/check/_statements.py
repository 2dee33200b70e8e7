"""Statements: names bound, branches merged, loops walked twice and judged, a task's return judged."""

from __future__ import annotations

import ast
from collections.abc import Sequence

from rlm.check import _hazards, _rule1, _rule2, _rule3, _rule4
from rlm.check._expressions import Expressions
from rlm.check._findings import Finding
from rlm.check._frames import FnRef, Frame, Loop
from rlm.check._syntax import dotted, positional_params, root_name
from rlm.check._values import (
    AGG,
    CTX,
    EMPTY,
    LIST,
    SUBCALL,
    ULIST,
    UNBOUNDED,
    WHOLE_TEXT,
    Fn,
    Taint,
    elems,
    merge,
    no_counts,
    wrap,
)


class Checker(Expressions):
    """Walks the tasks of one parsed module and collects findings."""

    def check_task(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """Check one task: its first parameter is the context."""
        params = positional_params(fn.args)
        env: dict[str, Taint] = {params[0]: frozenset({CTX})} if params else {}
        frame = Frame(env, is_task=True)
        self.body(fn.body, frame)
        self.finish(frame)

    def findings(self) -> list[Finding]:
        return self.out.in_order()

    def body(self, body: Sequence[ast.stmt], fr: Frame) -> None:
        for stmt in body:
            self._stmt(stmt, fr)

    def _branches(self, bodies: Sequence[Sequence[ast.stmt]], fr: Frame, guard: ast.expr | None,
                  fallthrough: bool) -> None:
        """Alternative blocks: each starts from the same names; after them a name holds what any gave it."""
        before = dict(fr.env)
        results = [before] if fallthrough else []
        for body in bodies:
            fr.env = dict(before)
            if guard is not None:
                fr.guards.append((guard, len(fr.loops)))
            self.body(body, fr)
            if guard is not None:
                fr.guards.pop()
            results.append(fr.env)
        fr.env = merge(*results) if results else before

    def _stmt(self, s: ast.stmt, fr: Frame) -> None:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in s.decorator_list:
                self.eval(deco, fr)
            ref = FnRef(s, owner=fr, defaults=self.defaults(s, fr))
            fr.env[s.name] = frozenset({Fn(self.new_ref(ref, fr))})
        elif isinstance(s, ast.ClassDef):
            fr.env[s.name] = EMPTY
        elif isinstance(s, ast.Return):
            self._return(s, fr)
        elif isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            self._assignment(s, fr)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self._for(s, fr)
        elif isinstance(s, ast.While):
            self._while(s, fr)
        elif isinstance(s, (ast.If, ast.Try, ast.TryStar, ast.Match, ast.With, ast.AsyncWith)):
            self._compound(s, fr)
        elif isinstance(s, ast.Expr):
            self.eval(s.value, fr)
        elif isinstance(s, ast.Raise):
            if s.exc is not None:
                self.eval(s.exc, fr)
        elif isinstance(s, ast.Assert):
            self.eval(s.test, fr)
            if s.msg is not None:
                self.eval(s.msg, fr)

    def _return(self, s: ast.Return, fr: Frame) -> None:
        t = self.eval(s.value, fr) if s.value is not None else EMPTY
        fr.returns.append(t)
        fr.returns_subcall.append(isinstance(s.value, ast.Call) and SUBCALL in t)
        if fr.is_task and s.value is not None:
            _rule4.returned(self, s.value, t, fr)

    def _compound(self, s: ast.If | ast.Try | ast.TryStar | ast.Match | ast.With | ast.AsyncWith, fr: Frame) -> None:
        """Branches and blocks (loops apart)."""
        if isinstance(s, ast.If):
            self.eval(s.test, fr)
            self._branches([s.body, s.orelse] if s.orelse else [s.body], fr, s.test, fallthrough=not s.orelse)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                t = self.eval(item.context_expr, fr)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, t, fr, None)
            self.body(s.body, fr)
        elif isinstance(s, (ast.Try, ast.TryStar)):
            self.body(s.body, fr)
            self._branches([h.body for h in s.handlers] + [s.orelse], fr, None, fallthrough=True)
            self.body(s.finalbody, fr)
        else:
            self.eval(s.subject, fr)
            self._branches([case.body for case in s.cases], fr, None, fallthrough=True)

    def _assignment(self, s: ast.Assign | ast.AnnAssign | ast.AugAssign, fr: Frame) -> None:
        if isinstance(s, ast.AugAssign):
            self._augassign(s, fr)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self.assign(s.target, self.eval(s.value, fr), fr, s.value)
        elif len(s.targets) == 1 and isinstance(s.targets[0], (ast.Tuple, ast.List)) \
                and isinstance(s.value, (ast.Tuple, ast.List)) and len(s.targets[0].elts) == len(s.value.elts) \
                and not any(isinstance(e, ast.Starred) for e in (*s.targets[0].elts, *s.value.elts)):
            for target, value in zip(s.targets[0].elts, s.value.elts):  # a, b = x, y: each its own
                self.assign(target, self.eval(value, fr), fr, value)
        else:
            t = self.eval(s.value, fr)
            for target in s.targets:
                self.assign(target, t, fr, s.value)

    def assign(self, target: ast.expr, t: Taint, fr: Frame, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            fr.env[target.id] = t
            number = self.const_int(value, fr) if value is not None else None
            if number is not None:
                fr.ints[target.id] = number
            else:
                fr.ints.pop(target.id, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            inner = elems(t) | t - {LIST} - UNBOUNDED
            for elt in target.elts:
                self.assign(elt.value if isinstance(elt, ast.Starred) else elt, no_counts(inner), fr, None)
        elif isinstance(target, ast.Attribute):
            self._assign_attribute(target, t, fr)
        elif isinstance(target, ast.Subscript):
            self.eval(target.slice, fr)
            base = self.eval(target.value, fr)
            if CTX in base:
                _rule2.assigned_into(self, target)
            root = root_name(target)
            current = fr.lookup(root) if root is not None else None
            if root is not None and current is not None:
                fr.env[root] = current | wrap(t)  # d["doc"] = ctx: the container now holds it
        elif isinstance(target, ast.Starred):
            self.assign(target.value, t, fr, None)

    def _assign_attribute(self, target: ast.Attribute, t: Taint, fr: Frame) -> None:
        """``obj.attr = value``; in a method, ``self.attr`` is the class's, for every instance."""
        self.eval(target.value, fr)
        key = dotted(target)
        if key is None:
            return
        fr.env[key] = t
        if fr.cls is not None and isinstance(target.value, ast.Name) and target.value.id == fr.self_name:
            attrs = self.class_attrs.setdefault(fr.cls, {})
            attrs[target.attr] = attrs.get(target.attr, EMPTY) | t

    def _augassign(self, s: ast.AugAssign, fr: Frame) -> None:
        t = _rule1.added_in_place(self, s, self.eval(s.value, fr))
        current = self.eval(s.target, fr) if isinstance(s.target, ast.Name) else EMPTY
        new = current | (t & (WHOLE_TEXT | {AGG})) | wrap(elems(t))
        if isinstance(s.op, ast.Add) and fr.loops:
            new |= {AGG}  # text (or a list) accumulated in a loop
            if fr.in_unbounded_loop():
                new |= {ULIST}
        if isinstance(s.target, ast.Name):
            fr.env[s.target.id] = new
            fr.ints.pop(s.target.id, None)
        else:
            self.assign(s.target, new, fr, None)

    def _for(self, s: ast.For | ast.AsyncFor, fr: Frame) -> None:
        it = self.iterate(s.iter, fr)
        loop = Loop(s, it)
        fr.loops.append(loop)
        before = dict(fr.env)
        for _ in range(2):  # twice, so values carried round the loop are seen
            self.assign(s.target, elems(it), fr, None)
            self.body(s.body, fr)
            fr.env = merge(before, fr.env)
        fr.loops.pop()
        self.body(s.orelse, fr)
        bounded_exit = _rule3.bounded_exit(self, s, fr)
        unbounded = bool(it & UNBOUNDED) and not bounded_exit
        if not _rule3.judge_for(self, s, loop, unbounded):
            _hazards.judge_for(self, s, loop, it, unbounded, bounded_exit)

    def _while(self, s: ast.While, fr: Frame) -> None:
        self.eval(s.test, fr)
        loop = Loop(s)
        fr.loops.append(loop)
        before = dict(fr.env)
        for _ in range(2):
            self.body(s.body, fr)
            self.eval(s.test, fr)
            fr.env = merge(before, fr.env)
        fr.loops.pop()
        self.body(s.orelse, fr)
        _rule3.judge_while(self, s, loop, fr)
