"""Calls into the checked module's own code: functions, lambdas, methods, closures and ``partial``.

A function is analysed once per distinct set of argument taints (and closure
and class attributes), and what it gives back is summarised, so a helper that
receives the context is checked with the context.
"""

from __future__ import annotations

import ast

from rlm.check import _threads
from rlm.check._analysis import Analysis
from rlm.check._frames import FnRef, Frame, Summary
from rlm.check._syntax import FunctionNode, positional_params, src
from rlm.check._values import ANSWERS, EMPTY, STREAM, SUBCALL, Fn, Inst, Taint, fns, union, wrap

_MAX_DEPTH = 40  # helpers calling helpers: deeper than this is not followed


class Functions(Analysis):
    """Function references, and the memoised analysis of calling them."""

    def new_ref(self, ref: FnRef, fr: Frame | None) -> int:
        self.refs.append(ref)
        index = len(self.refs) - 1
        if fr is not None:
            fr.defined.append(index)
        return index

    def lambda_ref(self, node: ast.Lambda, fr: Frame) -> int:
        return self.new_ref(FnRef(node, owner=fr, defaults=self.defaults(node, fr)), fr)

    def _module_ref(self, name: str) -> int:
        if name not in self.module_refs:
            self.module_refs[name] = self.new_ref(FnRef(self.module.functions[name]), None)
        return self.module_refs[name]

    def method_ref(self, cls: str, name: str) -> int | None:
        for stmt in self.module.classes[cls].body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                key = f"{cls}.{name}"
                if key not in self.module_refs:
                    self.module_refs[key] = self.new_ref(FnRef(stmt, cls=cls), None)
                return self.module_refs[key]
        return None

    def defaults(self, node: FunctionNode, fr: Frame) -> tuple[tuple[str, Taint], ...]:
        """Default values are evaluated where the function is defined."""
        args = node.args
        positional = positional_params(args)
        pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults),
                 *((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)]
        return tuple((name, t) for name, value in pairs if (t := self.eval(value, fr)))

    def _loaded_names(self, node: ast.AST) -> frozenset[str]:
        if id(node) not in self.loads:
            self.loads[id(node)] = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        return self.loads[id(node)]

    def finish(self, fr: Frame) -> None:
        """Check nested functions and lambdas defined in ``fr`` that no call reached with arguments."""
        for index in fr.defined:
            if index not in self.analysed_refs:
                self.summary(index, (), {})

    def summary(self, index: int, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> Summary:
        """Analyse a function reference called with arguments of these taints (memoised)."""
        self.analysed_refs.add(index)
        ref = self.refs[index]
        node = ref.node
        args = ref.bound + args
        closure_sig: frozenset[tuple[str, Taint]] = frozenset()
        if ref.owner is not None:
            owner = ref.owner
            closure_sig = frozenset((n, t) for n in self._loaded_names(node) if (t := owner.lookup(n)))
        attrs_sig = frozenset(self.class_attrs.get(ref.cls, {}).items()) if ref.cls else frozenset()
        key = (id(node), args, frozenset(kwargs.items()), closure_sig, attrs_sig)
        if key in self.memo:
            return self.memo[key]
        if key in self.in_progress or self.depth >= _MAX_DEPTH:
            return Summary()
        self.in_progress.add(key)
        self.depth += 1
        try:
            summary = self._analyse(ref, args, kwargs)
        finally:
            self.in_progress.discard(key)
            self.depth -= 1
        self.memo[key] = summary
        return summary

    def _bind(self, ref: FnRef, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> Frame:
        """The frame a call starts in: parameters bound to the arguments' taints, ``self`` to the instance."""
        node = ref.node
        params = positional_params(node.args)
        env: dict[str, Taint] = {}
        self_name = None
        is_static = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
        if ref.cls is not None and params and not is_static:
            self_name, params = params[0], params[1:]
            env[self_name] = frozenset({Inst(ref.cls)})
            for attr, t in self.class_attrs.get(ref.cls, {}).items():
                env[f"{self_name}.{attr}"] = t
        for name, t in zip(params, args):
            env[name] = t
        if node.args.vararg is not None and len(args) > len(params):
            env[node.args.vararg.arg] = union([wrap(t) for t in args[len(params):]])
        keyword_names = set(params) | {a.arg for a in node.args.kwonlyargs}
        for name, t in kwargs.items():
            if name in keyword_names:
                env[name] = t
        for name, t in ref.defaults:
            env.setdefault(name, t)  # lambda m, doc=context: ...
        for name in (*params, *(a.arg for a in node.args.kwonlyargs)):
            env.setdefault(name, EMPTY)  # a parameter shadows the closure
        return Frame(env, closure=ref.owner, cls=ref.cls, self_name=self_name)

    def _analyse(self, ref: FnRef, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> Summary:
        node = ref.node
        frame = self._bind(ref, args, kwargs)
        if isinstance(node, ast.Lambda):
            t = self.eval(node.body, frame)
            frame.returns.append(t)
            frame.returns_subcall.append(isinstance(node.body, ast.Call) and SUBCALL in t)
        else:
            self.body(node.body, frame)
        self.finish(frame)
        ret = union(frame.returns)
        returns_subcall = bool(frame.returns_subcall) and all(frame.returns_subcall)
        if frame.yields:  # a generator: what it returns is its items
            ret = union([wrap(t) for t in frame.yields]) | ({STREAM} if frame.yields_unbounded else EMPTY)
            returns_subcall = False
        if not returns_subcall:
            ret = ret - ANSWERS
        return Summary(ret, frame.subcall, returns_subcall)

    def callee_refs(self, func: ast.expr, fr: Frame) -> tuple[list[int], str | None]:
        """The function references ``func`` may call, and a class name when it instantiates one."""
        if isinstance(func, ast.Lambda):
            return [self.lambda_ref(func, fr)], None
        if isinstance(func, ast.Name):
            local = fr.lookup(func.id)
            if local is not None:
                return fns(local), None
            if func.id in self.module.functions:
                return [self._module_ref(func.id)], None
            if func.id in self.module.classes:
                return [], func.id
            return [], None
        if isinstance(func, ast.Attribute):
            receiver = self.last[id(func.value)] if id(func.value) in self.last else self.peek(func.value, fr)
            methods = self.methods(receiver, func.attr)
            if methods:
                return methods, None
        return fns(self.eval(func, fr)), None

    def methods(self, receiver: Taint, attr: str) -> list[int]:
        """The methods ``receiver.attr`` may be, for instances of the module's classes."""
        out = []
        for label in receiver:
            if isinstance(label, Inst) and label.cls in self.module.classes:
                index = self.method_ref(label.cls, attr)
                if index is not None:
                    out.append(index)
        return out

    def call_refs(self, refs: list[int], args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> Summary:
        summaries = [self.summary(i, args, kwargs) for i in refs]
        if not summaries:
            return Summary()
        return Summary(union([s.ret for s in summaries]), any(s.makes_subcall for s in summaries),
                       all(s.returns_subcall for s in summaries))

    def user_call(self, refs: list[int], e: ast.Call, fr: Frame) -> Taint:
        """A call of the module's own functions: their summary, and a subcall here if they make one."""
        args, kwargs = self.arguments(e, fr)
        summary = self.call_refs(refs, args, kwargs)
        if summary.makes_subcall:
            fr.mark_subcall(sequential=True)
        return summary.ret | {SUBCALL} if summary.returns_subcall else summary.ret

    def instantiate(self, cls: str, e: ast.Call, fr: Frame) -> Taint:
        """``Cls(...)``: attributes of a dataclass or set in ``__init__`` hold what was passed."""
        args, kwargs = self.arguments(e, fr)
        node = self.module.classes[cls]
        _threads.started_by_subclass(self, node, e)
        attrs = self.class_attrs.setdefault(cls, {})
        if any("dataclass" in src(d) for d in node.decorator_list):
            fields = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            for name, t in (*zip(fields, args), *kwargs.items()):
                if t:
                    attrs[name] = attrs.get(name, EMPTY) | t
        init = self.method_ref(cls, "__init__")
        if init is not None:
            self.summary(init, args, kwargs)
        return frozenset({Inst(cls)})

    def partial(self, e: ast.Call, fr: Frame) -> Taint:
        """``functools.partial(fn, *args)``: a new reference with those arguments bound."""
        if not e.args:
            self.arguments(e, fr)
            return EMPTY
        refs, _ = self.callee_refs(e.args[0], fr)
        bound = tuple(self.eval(a, fr) for a in e.args[1:])
        for kw in e.keywords:
            self.eval(kw.value, fr)
        out = set()
        for index in refs:
            ref = self.refs[index]
            self.analysed_refs.add(index)
            out.add(Fn(self.new_ref(FnRef(ref.node, ref.bound + bound, ref.owner, ref.cls, ref.defaults), fr)))
        return frozenset(out)
