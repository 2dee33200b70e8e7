"""Calls: rlm's task API, the standard library, and methods of the values a task holds.

A subcall, a context function and ``parallel_map`` are judged by what they
receive; a library function the context reaches can only read it as a
string; a method call says what the value it is called on becomes.
"""

from __future__ import annotations

import ast

from rlm.check import _hazards, _rule1, _rule2, _rule3, _rule4, _threads
from rlm.check._frames import Frame, Summary
from rlm.check._module import CONTEXT_FUNCTIONS, PATTERN_STRING_ARG, RE_STRING_ARG, SUBCALLS, api_name
from rlm.check._sequences import Sequences
from rlm.check._syntax import argument, assigned_in, root_name, src
from rlm.check._values import (
    ANSWERS,
    CTX,
    EMPTY,
    FILE,
    LIST,
    PATH,
    PATTERN,
    STREAM,
    SUBCALL,
    SUBCALL_AGG,
    ULIST,
    UNBOUNDED,
    WHOLE,
    WHOLE_TEXT,
    Count,
    Label,
    Taint,
    count,
    elems,
    no_counts,
    union,
    wrap,
)

_SPLITTING = frozenset({"split", "rsplit", "splitlines", "readlines"})
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))
_STR_QUESTIONS = frozenset({"count", "find", "index", "rfind", "startswith", "endswith"})  # not text out
_ADDING = frozenset({"append", "extend", "insert", "add", "appendleft", "update"})


class Calls(Sequences):
    """What a call gives, and what it breaks."""

    def call(self, e: ast.Call, fr: Frame) -> Taint:
        func = e.func
        qualname = self.module.qualname(func, fr)
        api = api_name(qualname)
        if api in SUBCALLS:
            return self._subcall(e, fr)
        if api == "parallel_map":
            return self.map_call(e, fr, "parallel_map")
        if api is not None and api in CONTEXT_FUNCTIONS:
            return self._context_function(api, e, fr)
        if api == "publish":
            published, _ = self.arguments(e, fr)
            return published[1] if len(published) > 1 else EMPTY
        if qualname is not None and api is None:
            handled = self._library_call(qualname, e, fr)
            return handled if handled is not None else self._outside_call(qualname, e, fr)
        if isinstance(func, ast.Attribute) and qualname is None:
            receiver = self.eval(func.value, fr)
            methods = self.methods(receiver, func.attr)
            return self.user_call(methods, e, fr) if methods else self._method(e, func, receiver, fr)
        refs, cls = self.callee_refs(func, fr) if qualname is None else ([], None)
        if cls is not None:
            return self.instantiate(cls, e, fr)
        if refs:
            return self.user_call(refs, e, fr)
        self.arguments(e, fr)
        return EMPTY

    def _outside_call(self, qualname: str, e: ast.Call, fr: Frame) -> Taint:
        """A function from another module (or a builtin): it can only read the context as a string."""
        self.arguments(e, fr)
        _threads.started_by_call(self, qualname, e)
        _rule2.passed_outside(self, qualname, e)
        return EMPTY

    def _subcall(self, e: ast.Call, fr: Frame) -> Taint:
        name = src(e.func)
        self.arguments(e, fr)
        aggregate = False
        for position, role in ((0, "prompt"), (1, "chunk")):
            node = argument(e, position, role)
            if node is None:
                continue
            _rule1.sent_to_model(self, node, role, name)
            aggregate = aggregate or _rule4.aggregates(self.seen(node), node, role)
        fr.mark_subcall(sequential=True)
        return frozenset({SUBCALL, SUBCALL_AGG}) if aggregate else frozenset({SUBCALL})

    def map_call(self, e: ast.Call, fr: Frame, kind: str) -> Taint:
        fn, items = argument(e, 0, "fn"), argument(e, 1, "items")
        for kw in e.keywords:
            if kw.value is not fn and kw.value is not items:
                self.eval(kw.value, fr)
        for extra in e.args[2:]:
            self.eval(extra, fr)
        items_t = self.iterate(items, fr) if items is not None else EMPTY
        summary = Summary()
        if fn is not None:
            refs, _ = self.callee_refs(fn, fr)
            summary = self.call_refs(refs, (elems(items_t),), {})
        if summary.makes_subcall:
            fr.mark_subcall(sequential=kind == "map")
            _rule3.judge_map(self, e, kind, items, items_t)
        out: set[Label] = set(wrap(summary.ret - ANSWERS))
        if kind == "parallel_map":  # a list, built at once
            out |= {LIST, ULIST} if items_t & UNBOUNDED else {LIST}
        else:
            out |= items_t & {STREAM, ULIST}
        n = count(items_t)
        if n is not None:
            out.add(Count(n))
        return frozenset(out)

    def _context_function(self, name: str, e: ast.Call, fr: Frame) -> Taint:
        args, kwargs = self.arguments(e, fr)
        source = args[0] if args else kwargs.get("ctx", EMPTY)
        whole_source = bool(source & WHOLE_TEXT)
        if name == "open_context":
            return frozenset({CTX})
        if name in ("context_head", "context_tail"):
            size = argument(e, 1, "n")
            return frozenset({WHOLE}) if whole_source and self.is_context_size(size, fr) else EMPTY
        if name == "context_slice":
            start, end = argument(e, 1, "start"), argument(e, 2, "end")
            whole = whole_source and self.const_int(start, fr) == 0 and self.is_context_size(end, fr)
            return frozenset({WHOLE}) if whole else EMPTY
        if name == "context_line":
            return EMPTY
        ranged = any(kw.arg == "end" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
                     for kw in e.keywords)
        if name == "context_search":
            return self._search_hits(e, fr, whole_source and not ranged)
        # context_finditer, context_chunks: lazy scans of the whole range
        return frozenset({STREAM}) if whole_source and not ranged else EMPTY

    def _search_hits(self, e: ast.Call, fr: Frame, whole: bool) -> Taint:
        """``context_search``'s list: capped by ``max_hits`` (100 by default), every match with None."""
        limit = argument(e, 2, "max_hits")
        if limit is None:
            return frozenset({LIST, Count(100)})
        if isinstance(limit, ast.Constant) and limit.value is None:
            if whole:
                _hazards.every_match_listed(self, e)
                return frozenset({LIST, ULIST})
            return frozenset({LIST})
        n = self.const_int(limit, fr)
        return frozenset({LIST, Count(n)}) if n is not None else frozenset({LIST})

    def _library_call(self, name: str, e: ast.Call, fr: Frame) -> Taint | None:
        """Builtins and standard-library calls the rules care about; None for anything else."""
        if name in ("open", "io.open", "codecs.open"):
            self.arguments(e, fr)
            _rule2.reads_file(self, e)
            return frozenset({FILE})
        if name in ("pathlib.Path", "Path", "os.fspath"):
            self.arguments(e, fr)
            return frozenset({PATH})
        if name in _rule1.STRINGIFY:
            return _rule1.stringify(self, name, e, self.arguments(e, fr)[0])
        if name in ("json.dumps", "json.dump"):
            return _rule1.json_dumps(self, e, self.arguments(e, fr)[0])
        if name == "json.loads":
            args, _ = self.arguments(e, fr)
            return args[0] & ANSWERS if args else EMPTY
        if name in ("functools.partial", "partial"):
            return self.partial(e, fr)
        handled = self.sequence_call(name, e, fr)
        if handled is not None:
            return handled
        function = self.module.re_function(e.func)
        return self._re_call(function, e, fr) if function is not None else None

    def _re_call(self, function: str, e: ast.Call, fr: Frame) -> Taint:
        self.arguments(e, fr)
        if function == "compile":
            return frozenset({PATTERN})
        position = RE_STRING_ARG.get(function)
        if position is None:
            return EMPTY
        node = argument(e, position, "string")
        return _hazards.regex_on(self, function, e, node, self.seen(node))

    def _method(self, e: ast.Call, func: ast.Attribute, receiver: Taint, fr: Frame) -> Taint:
        """``value.attr(...)`` on a value that is not an instance of the module's classes."""
        attr = func.attr
        args, kwargs = self.arguments(e, fr)
        if CTX in receiver and _rule2.not_a_context_attribute(self, func, attr, called=True):
            return frozenset({ULIST, LIST}) if attr in _SPLITTING else frozenset({WHOLE})
        if attr in ("read_text", "read_bytes") or (attr == "open" and PATH in receiver):
            _rule2.reads_file(self, e)
            return frozenset({WHOLE}) if attr != "open" else frozenset({FILE})
        if FILE in receiver:
            if attr in ("read", "readlines"):
                return frozenset({WHOLE}) if attr == "read" else frozenset({ULIST, LIST})
            return EMPTY
        if PATTERN in receiver and attr in PATTERN_STRING_ARG:
            node = argument(e, PATTERN_STRING_ARG[attr], "string")
            return _hazards.regex_on(self, attr, e, node, self.seen(node))
        if attr == "join":
            return _rule1.join(self, e, args)
        if attr == "format":
            formatted = _rule1.format_method(self, e, args, kwargs)
            if formatted is not None:
                return formatted
        if attr in _ADDING:
            self._record_append(e, func, args, attr, fr)
            return EMPTY
        _threads.started_by_method(self, e, func)
        return self._method_result(attr, receiver)

    @staticmethod
    def _method_result(attr: str, receiver: Taint) -> Taint:
        """What a method gives: text of text, answers of answers, items of containers."""
        if receiver & WHOLE_TEXT:
            if attr in _SPLITTING:
                return frozenset({ULIST, LIST})
            return frozenset({WHOLE}) if attr in _STR_METHODS and attr not in _STR_QUESTIONS else EMPTY
        if receiver & ANSWERS and attr in _STR_METHODS:
            return receiver & ANSWERS
        if attr in ("get", "pop", "setdefault", "popleft"):
            return elems(receiver)
        if attr in ("values", "items", "copy", "keys"):
            return no_counts(receiver)
        return EMPTY

    def _record_append(self, e: ast.Call, func: ast.Attribute, args: tuple[Taint, ...], attr: str,
                       fr: Frame) -> None:
        """``items.append(x)``: the container now holds ``x``; in a loop over a scan, one per item."""
        root = root_name(func.value)
        added = union(args)
        if attr in ("extend", "update"):
            added = elems(added) | (added & UNBOUNDED)
        if root is not None:
            current = fr.lookup(root) or EMPTY
            new = current | wrap(added) | (added & UNBOUNDED if attr == "extend" else EMPTY)
            if fr.in_unbounded_loop() and attr != "add":
                new |= {ULIST}
            fr.env[root] = new
        if attr in ("add", "update") or root is None:
            return
        for i, loop in enumerate(fr.loops):
            if isinstance(loop.node, (ast.For, ast.AsyncFor)) and root not in assigned_in(loop.node.body):
                guards = tuple(test for test, depth in fr.guards if depth > i)
                loop.appends.append((e, guards))

