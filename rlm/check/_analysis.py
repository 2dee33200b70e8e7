"""The state one check of one module carries, and the questions every rule may ask of it.

The flow analysis is layered, each layer a subclass in its own module:
functions (summaries of calls into the module's own code), calls, expressions,
statements. The rules are functions of this base, so they see the state but
no layer above it.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from rlm.check._findings import Findings
from rlm.check._frames import FnRef, Frame, Summary
from rlm.check._module import ModuleFacts
from rlm.check._syntax import dotted, is_len_call
from rlm.check._values import CTX, EMPTY, PATH, WHOLE_TEXT, Inst, Label, Taint


class Analysis:
    """What is known so far about one module: its names, the functions seen as values, the findings."""

    def __init__(self, tree: ast.Module, filename: str) -> None:
        self.module = ModuleFacts(tree)
        self.out = Findings(filename)
        self.refs: list[FnRef] = []  # every function seen as a value; a Fn label is an index here
        self.analysed_refs: set[int] = set()
        self.module_refs: dict[str, int] = {}
        self.class_attrs: dict[str, dict[str, Taint]] = {}  # what self.<attr> may hold, by class
        self.memo: dict[object, Summary] = {}
        self.in_progress: set[object] = set()
        self.loads: dict[int, frozenset[str]] = {}
        self.last: dict[int, Taint] = {}  # the taint of every expression evaluated, by node id
        self.depth = 0

    # -- what the layers above provide -------------------------------------------
    def eval(self, e: ast.expr, fr: Frame) -> Taint:
        """The taint of ``e`` in ``fr``, reporting what it breaks on the way."""
        raise NotImplementedError

    def body(self, body: Sequence[ast.stmt], fr: Frame) -> None:
        """Analyse statements in ``fr``."""
        raise NotImplementedError

    # -- shared questions ----------------------------------------------------------
    def report(self, node: ast.AST, code: str, message: str) -> None:
        self.out.report(node, code, message)

    def seen(self, node: ast.expr | None) -> Taint:
        """The taint an expression already evaluated had (nothing for one not evaluated)."""
        return self.last.get(id(node), EMPTY) if node is not None else EMPTY

    def arguments(self, e: ast.Call, fr: Frame) -> tuple[tuple[Taint, ...], dict[str, Taint]]:
        """Evaluate a call's arguments: positional taints, and keyword taints by name."""
        args = tuple(self.eval(a, fr) for a in e.args)
        kwargs = {kw.arg: self.eval(kw.value, fr) for kw in e.keywords if kw.arg is not None}
        for kw in e.keywords:
            if kw.arg is None:
                self.eval(kw.value, fr)
        return args, kwargs

    def const_int(self, node: ast.expr | None, fr: Frame | None) -> int | None:
        return self.module.const_int(node, fr)

    def peek(self, node: ast.expr, fr: Frame) -> Taint:
        """The taint of a name or ``a.b`` without evaluating anything."""
        key = dotted(node)
        if key is None:
            return EMPTY
        found = fr.lookup(key)
        if found is not None:
            return found
        if isinstance(node, ast.Attribute):
            return self.attribute_of(self.peek(node.value, fr), node.attr)
        return self.module.globals.get(key, EMPTY)

    def attribute_of(self, base: Taint, attr: str) -> Taint:
        out: set[Label] = set()
        if CTX in base and attr == "path":
            out.add(PATH)
        for label in base:
            if isinstance(label, Inst):
                out |= self.class_attrs.get(label.cls, {}).get(attr, EMPTY)
        return frozenset(out)

    def is_context_size(self, node: ast.expr | None, fr: Frame) -> bool:
        """``len(ctx)`` (or more): a size that covers the whole context."""
        if node is None:
            return False
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            return self.is_context_size(node.left, fr) or self.is_context_size(node.right, fr)
        return self._len_of_whole_text(node, fr)

    def mentions_context_size(self, node: ast.expr, fr: Frame) -> bool:
        """Whether ``len(ctx)`` appears anywhere in ``node``."""
        return any(self._len_of_whole_text(n, fr) for n in ast.walk(node))

    def _len_of_whole_text(self, node: ast.AST, fr: Frame) -> bool:
        return is_len_call(node) and isinstance(node, ast.Call) and bool(self.peek(node.args[0], fr) & WHOLE_TEXT)
