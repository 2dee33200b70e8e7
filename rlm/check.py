"""A static check of task files against the four rules, before anything runs.

``python -m rlm.check tasks/my_task.py[:function] [...] [--json]`` reads each
file with :mod:`ast` only: the checked file is never imported or executed, so
checking is safe on code nobody has reviewed yet.

A *task* is a public module-level function whose first parameter is the
context (with ``:function``, just that one). The checker follows the context
through the task: aliases, tuple unpacking, ``open_context(...)``, containers,
``self.<attr>`` of simple classes, and into helpers that receive it (module
functions, nested functions, lambdas, comprehensions, ``parallel_map``,
``map`` and ``functools.partial``). Text that ``context_head/tail/slice/line``
return, and the chunks and matches the context functions yield, are bounded
pieces and are *not* the context.

What it reports (``Finding.rule``, with a short ``Finding.code``):

* ``rule1``: the context reaching a string or a prompt: f-strings, ``str``,
  ``repr``, ``print``, ``.format``, ``%``, ``+``, ``json.dumps``,
  ``"".join``; the context, or text holding the whole document (read from
  the file, ``context_slice(ctx, 0, len(ctx))``, every chunk joined), sent as
  the prompt or chunk of a subcall.
* ``rule2``: reaching the context outside ``rlm.context_access``: ``ctx[a:b]``,
  iteration, ``in``, ``ctx.read()`` and other methods; ``open()``,
  ``read_text()`` / ``read_bytes()`` in a task. ``len(ctx)`` is allowed.
* ``rule3``: model work that grows with the document: a ``for`` loop,
  comprehension, ``parallel_map`` or ``map`` over every match
  (``context_finditer``, ``context_search(..., max_hits=None)``), every chunk
  (``context_chunks``), every line or every position (``range(len(ctx))``)
  that makes subcalls with no bound; a ``while`` loop making subcalls with no
  counter bound. Bounds: ``max_hits=N`` (``context_search``'s default of 100
  is one), ``[:N]``, ``itertools.islice``, ``zip(range(N), ...)``, ``end=``
  on the scan, or a ``break`` / ``return`` under a test on a counter, a
  ``len()`` or the clock. A break on a model answer is not a bound. Loops that
  stream matches and aggregate in Python without subcalls are fine.
* ``rule4``: the task's answer built by the model: ``return <subcall>(...)``
  (also through a helper that returns one, or with ``.strip()`` and the like);
  ``return x`` where ``x`` is a subcall over aggregated results (a join, a
  list formatted or dumped into text, a string accumulated in a loop, or a
  "summarize these / overall / final answer" prompt); a returned dict or list
  holding such an answer. A dict built in Python (``{"findings": findings,
  "count": n}``) is fine even if its items came from subcalls, and so is one
  subcall's interpretation of one bounded chunk under a key
  (``{"tone": semantic_subcall(...)}``: Python chose the shape) and a list of
  per-chunk answers (``parallel_map`` or a comprehension).
* ``hazard`` (advice, not a rule): ``re`` / ``regex`` on the whole context
  (not guarded by the run's deadline; a bounded chunk is fine); more than
  :data:`HANDFUL` sequential subcalls in a loop where ``parallel_map`` would
  do; materialising every match of an unbounded scan (``list(...)``,
  ``sorted(...)``, a list comprehension, ``max_hits=None``); appending to a
  list for every match of an unbounded scan, with no ``if`` (a filter, a
  dedupe, a cap) around the append.

Passing the context to a function of another module or a builtin
(``textwrap.shorten(ctx)``, ``logging.info("%s", ctx)``) is ``rule2`` too:
such code can only read it as a string (``len``, ``isinstance``,
``getattr``, ``typing.cast`` and the like are harmless).

Limits, on purpose: module-level code is not a task and is not checked;
calls into other modules are not followed, and methods of their objects
(``logger.info(ctx)``) are not judged; a context passed through a global or
a class more complex than attributes set from constructor arguments is lost
(no finding rather than a guess).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

from rlm.errors import RLMError

__all__ = ["HANDFUL", "RULES", "CheckError", "Finding", "check_path", "check_source", "format_findings", "main"]

#: The rules a finding can name.
RULES = ("rule1", "rule2", "rule3", "rule4", "hazard")
#: More sequential subcalls than this in one loop is a hazard (``parallel_map`` would do).
HANDFUL = 10


@dataclass(frozen=True)
class Finding:
    """One place where a task breaks a rule (or walks into a hazard), and how to fix it."""

    file: str
    line: int
    col: int  # 1-based
    rule: str  # one of RULES
    message: str
    fix: str
    code: str = ""  # e.g. "R1-fstring"


class CheckError(RLMError):
    """A file could not be checked: unreadable, not Python, or without the function asked for."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


_FIXES = MappingProxyType({
    "R1": "send one bounded piece instead: a chunk from context_slice(ctx, a, b) or context_line(ctx, m.start) "
          "around a context_search hit; format facts like len(ctx), never the context",
    "R2": "reach the context only through rlm.context_access: context_slice / context_head / context_tail, "
          "context_search / context_finditer, context_chunks, context_line",
    "R2-subscript": "use context_slice(ctx, start, end), context_head(ctx, n) or context_tail(ctx, n)",
    "R2-in": "use context_search(ctx, re.escape(text), max_hits=1) and test whether it found anything",
    "R2-iter": "walk it with context_chunks(ctx, size), or find what you need with context_search(ctx, pattern, "
               "max_hits=N) / context_finditer(ctx, pattern)",
    "R2-open": "do not read the input file yourself: the runtime maps it into the task's context argument; "
               "use the rlm.context_access functions on that",
    "R3": "bound it: context_search(..., max_hits=N), a slice [:N], itertools.islice(it, N), zip(range(N), it) "
          "or a counter with break; narrow with context_search first, then make one subcall per kept hit",
    "R4": "build the answer in Python (lists, counts and dicts of per-chunk answers); "
          "use subcalls only to interpret bounded chunks",
    "H-re": "use context_search(ctx, pattern, max_hits=N) or context_finditer(ctx, pattern): they scan the "
            "mapped file and stop at the run's deadline",
    "H-sequential": "run the calls concurrently with parallel_map(fn, items), under the same guards",
    "H-materialize": "stream instead: for m in context_finditer(ctx, pattern) counting or grouping in Python, "
                     "or cap the list with max_hits=N",
    "H-accumulate": "count or group while streaming, or cap the list (if len(items) < N: items.append(...))",
})


def _fix(code: str) -> str:
    return _FIXES.get(code) or _FIXES[code.split("-")[0]]


# -- what a value is, as far as the check knows ------------------------------

@dataclass(frozen=True)
class _Elem:
    """An element of a container holds ``inner``."""

    inner: Label


@dataclass(frozen=True)
class _Count:
    """A sequence of at most ``n`` items."""

    n: int


@dataclass(frozen=True)
class _Fn:
    """A reference to a function (an index into the checker's function references)."""

    index: int


@dataclass(frozen=True)
class _Inst:
    """An instance of a class of the checked module."""

    cls: str


Label = str | _Elem | _Count | _Fn | _Inst
Taint = frozenset[Label]

CTX = "ctx"  # the context itself
WHOLE = "whole"  # text holding the whole document (read from the file, or reassembled)
STRINGIFIED = "stringified"  # the context turned into a string (already reported)
FILE = "file"  # an open file
PATH = "path"  # a pathlib.Path
STREAM = "stream"  # a lazy scan of the whole context: every match, chunk or position
ULIST = "ulist"  # a list of every match, chunk or line of the whole context
LIST = "list"  # a Python container built by the task
AGG = "agg"  # text aggregated from many values (a join, a dumped list, an accumulated string)
SUBCALL = "subcall"  # a subcall's answer
SUBCALL_AGG = "subcall_agg"  # a subcall's answer over aggregated results ("summarize everything")
PATTERN = "pattern"  # a compiled regular expression

EMPTY: Taint = frozenset()
_UNBOUNDED = frozenset({STREAM, ULIST})
_WHOLE_TEXT = frozenset({CTX, WHOLE, STRINGIFIED})
_CARRIED = frozenset({CTX, WHOLE, STRINGIFIED, SUBCALL, SUBCALL_AGG, PATTERN, FILE})

_SUBCALLS = frozenset({"semantic_subcall", "semantic_subcall_json", "semantic_subcall_bool",
                       "semantic_subcall_choice"})
_CONTEXT_FUNCTIONS = frozenset({"open_context", "context_head", "context_tail", "context_slice", "context_search",
                                "context_finditer", "context_chunks", "context_line"})
_API = _SUBCALLS | _CONTEXT_FUNCTIONS | {"parallel_map", "publish", "run_task"}
_CONTEXT_ATTRIBUTES = frozenset({"name", "path", "unit", "closed", "accesses", "access_count", "describe", "close",
                                 "files", "file_spans", "skipped", "locate"})
_RE_STRING_ARG = MappingProxyType({"search": 1, "match": 1, "fullmatch": 1, "finditer": 1, "findall": 1,
                                   "split": 1, "sub": 2, "subn": 2})
_PATTERN_STRING_ARG = MappingProxyType({"search": 0, "match": 0, "fullmatch": 0, "finditer": 0, "findall": 0,
                                        "split": 0, "sub": 1, "subn": 1})
_STRINGIFY = frozenset({"str", "repr", "ascii", "format", "print"})
_MATERIALIZE = frozenset({"list", "tuple", "sorted", "reversed", "collections.deque"})
_CONSUME = frozenset({"iter", "set", "frozenset", "dict", "any", "all", "sum", "min", "max", "next",
                      "collections.Counter", "enumerate", "filter", "zip", "map"})
_SPLITTING = frozenset({"split", "rsplit", "splitlines", "readlines"})
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))
_SUMMARIZE_ALL = re.compile(
    r"(?i)\bfinal (answer|report|summary|verdict)\b|\boverall\b"
    r"|\b(summari[sz]e|combine|merge|synthesi[sz]e|aggregate)\b[^.?!]*"
    r"\b(all|every\w*|these|those|findings|results|notes|answers|summaries)\b")
_BUILTINS = frozenset({"str", "repr", "ascii", "format", "print", "len", "list", "tuple", "set", "frozenset",
                       "sorted", "reversed", "enumerate", "iter", "zip", "map", "filter", "any", "all", "sum",
                       "min", "max", "next", "dict", "range", "open"})
# Calls that may receive the context without reading it.
_HARMLESS = frozenset({"len", "isinstance", "issubclass", "id", "type", "bool", "hash", "getattr", "hasattr",
                       "setattr", "callable", "vars", "dir", "typing.cast", "contextlib.closing"})
_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
_LOOP_NODES = (ast.For, ast.AsyncFor, ast.While)
_MAX_DEPTH = 40  # helpers calling helpers: deeper than this is not followed
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _elems(t: Taint) -> Taint:
    """What iterating over, or indexing into, a value with taint ``t`` gives."""
    return frozenset(label.inner for label in t if isinstance(label, _Elem))


def _wrap(t: Taint) -> Taint:
    """The taint of a container holding a value with taint ``t``."""
    return frozenset(_Elem(label) for label in t if isinstance(label, (_Elem, _Fn, _Inst)) or label in _CARRIED)


def _count(t: Taint) -> int | None:
    counts = [label.n for label in t if isinstance(label, _Count)]
    return max(counts) if counts else None


def _no_counts(t: Taint) -> Taint:
    return frozenset(label for label in t if not isinstance(label, _Count))


def _fns(t: Taint) -> list[int]:
    return sorted(label.index for label in t if isinstance(label, _Fn))


def _src(node: ast.AST, limit: int = 60) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _merge(*envs: dict[str, Taint]) -> dict[str, Taint]:
    out: dict[str, Taint] = {}
    for env in envs:
        for name, t in env.items():
            out[name] = out.get(name, EMPTY) | t
    return out


def _walk_local(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodes``, not descending into nested functions, lambdas or classes."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, _SCOPE_NODES))


def _dotted(node: ast.expr) -> str | None:
    """``"a.b"`` for an attribute of a plain name, ``"a"`` for a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _positional_params(args: ast.arguments) -> list[str]:
    return [a.arg for a in (*args.posonlyargs, *args.args)]


def _is_task_signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Callable with the context alone: one required positional parameter (as tasks/ discovers them)."""
    params = _positional_params(fn.args)
    required = len(params) - len(fn.args.defaults)
    return required == 1


# -- the analysis state --------------------------------------------------------

@dataclass(frozen=True)
class _FnRef:
    """A function as a value: its node, arguments bound by ``functools.partial``, its scope."""

    node: _FunctionNode
    bound: tuple[Taint, ...] = ()
    owner: _Frame | None = None  # the frame it was defined in (its closure), None at module level
    cls: str | None = None  # the class of a method
    defaults: tuple[tuple[str, Taint], ...] = ()  # parameters whose default value carries a taint


@dataclass(frozen=True)
class _Summary:
    """What a call of a function gives back, and whether it asks the model."""

    ret: Taint = EMPTY
    makes_subcall: bool = False
    returns_subcall: bool = False


class _Loop:
    """A loop (or comprehension) being analysed: did its body ask the model, what did it append."""

    def __init__(self, node: ast.AST, iter_taint: Taint = EMPTY) -> None:
        self.node = node
        self.iter_taint = iter_taint  # what a for loop iterates over
        self.subcall = False  # any subcall, sequential or through parallel_map
        self.sequential = False  # a subcall made directly in the body
        self.appends: list[tuple[ast.Call, tuple[ast.expr, ...]]] = []  # with the if-tests guarding each


class _Frame:
    """One analysis of one function body: names and their taints, open loops and guards."""

    def __init__(self, env: dict[str, Taint], *, closure: _Frame | None = None, is_task: bool = False,
                 cls: str | None = None, self_name: str | None = None) -> None:
        self.env = env
        self.closure = closure
        self.is_task = is_task
        self.cls = cls
        self.self_name = self_name
        self.ints: dict[str, int] = {}
        self.loops: list[_Loop] = []
        self.guards: list[tuple[ast.expr, int]] = []  # an if-test and how many loops were open at it
        self.subcall = False
        self.returns: list[Taint] = []
        self.returns_subcall: list[bool] = []
        self.yields: list[Taint] = []  # a generator's items
        self.yields_unbounded = False  # a generator yielding inside an unbounded scan
        self.defined: list[int] = []  # function references created here

    def lookup(self, name: str) -> Taint | None:
        frame: _Frame | None = self
        while frame is not None:
            if name in frame.env:
                return frame.env[name]
            frame = frame.closure
        return None

    def int_value(self, name: str) -> int | None:
        frame: _Frame | None = self
        while frame is not None:
            if name in frame.ints:
                return frame.ints[name]
            frame = frame.closure
        return None


class _Checker:
    """Walks the tasks of one parsed module and collects findings."""

    def __init__(self, tree: ast.Module, filename: str) -> None:
        self.filename = filename
        self.imports: dict[str, str] = {}
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.consts: dict[str, int] = {}
        self.globals: dict[str, Taint] = {}
        self.refs: list[_FnRef] = []
        self.analysed_refs: set[int] = set()
        self.module_refs: dict[str, int] = {}
        self.class_attrs: dict[str, dict[str, Taint]] = {}
        self.memo: dict[object, _Summary] = {}
        self.in_progress: set[object] = set()
        self.loads: dict[int, frozenset[str]] = {}
        self.found: dict[tuple[int, str], Finding] = {}
        self.last: dict[int, Taint] = {}  # the taint of every expression evaluated, by node id
        self.depth = 0
        self._read_module(tree)

    # -- the module --------------------------------------------------------------
    def _read_module(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.imports[top] = top
            elif isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name != "*":
                        self.imports[alias.asname or alias.name] = f"{module}.{alias.name}"
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = stmt
                self.imports.pop(stmt.name, None)
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                value = self._const_int(stmt.value, None)
                is_pattern = isinstance(stmt.value, ast.Call) and self._re_function(stmt.value.func) == "compile"
                for target in targets:
                    if isinstance(target, ast.Name):
                        if value is not None:
                            self.consts[target.id] = value
                        if is_pattern:
                            self.globals[target.id] = frozenset({PATTERN})

    def _qualname(self, node: ast.expr, fr: _Frame) -> str | None:
        """The dotted name a callee refers to (``rlm.subcalls.semantic_subcall``), or None for a local value."""
        if isinstance(node, ast.Name):
            if fr.lookup(node.id) is not None or node.id in self.functions or node.id in self.classes:
                return None
            return self.imports.get(node.id, node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
            root = _root_name(node.value)
            if root is None or root not in self.imports or fr.lookup(root) is not None:
                return None
            base = self._qualname(node.value, fr)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def _api(self, qualname: str | None) -> str | None:
        if qualname is None:
            return None
        parts = qualname.split(".")
        if parts[-1] in _API and (len(parts) == 1 or parts[0] == "rlm"):
            return parts[-1]
        return None

    def _re_function(self, func: ast.expr) -> str | None:
        """``"search"`` for ``re.search`` / ``regex.search`` (however imported), else None."""
        qualname = self._qualname(func, _Frame({}))
        if qualname is None:
            return None
        module, _, name = qualname.rpartition(".")
        return name if module in ("re", "regex") else None

    def _const_int(self, node: ast.expr | None, fr: _Frame | None) -> int | None:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            local = fr.int_value(node.id) if fr is not None else None
            return local if local is not None else self.consts.get(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self._const_int(node.operand, fr)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp):
            left, right = self._const_int(node.left, fr), self._const_int(node.right, fr)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.FloorDiv) and right:
                return left // right
        return None

    # -- findings ----------------------------------------------------------------
    def report(self, node: ast.AST, code: str, message: str) -> None:
        rule = {"R1": "rule1", "R2": "rule2", "R3": "rule3", "R4": "rule4", "H": "hazard"}[code.split("-")[0]]
        line = getattr(node, "lineno", 1)
        key = (line, rule)
        if key not in self.found:
            self.found[key] = Finding(self.filename, line, getattr(node, "col_offset", 0) + 1, rule, message,
                                      _fix(code), code)

    def findings(self) -> list[Finding]:
        rule3_lines = {line for line, rule in self.found if rule == "rule3"}
        kept = [f for f in self.found.values() if not (f.code == "H-materialize" and f.line in rule3_lines)]
        return sorted(kept, key=lambda f: (f.line, f.col, f.rule))

    # -- entry points --------------------------------------------------------------
    def check_task(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        params = _positional_params(fn.args)
        env: dict[str, Taint] = {params[0]: frozenset({CTX})} if params else {}
        frame = _Frame(env, is_task=True)
        self._body(fn.body, frame)
        self._finish(frame)

    def _finish(self, fr: _Frame) -> None:
        """Check nested functions and lambdas defined in ``fr`` that no call reached with arguments."""
        for index in fr.defined:
            if index not in self.analysed_refs:
                self._summary(index, (), {})

    # -- functions -------------------------------------------------------------------
    def _new_ref(self, ref: _FnRef, fr: _Frame | None) -> int:
        self.refs.append(ref)
        index = len(self.refs) - 1
        if fr is not None:
            fr.defined.append(index)
        return index

    def _module_ref(self, name: str) -> int:
        if name not in self.module_refs:
            self.module_refs[name] = self._new_ref(_FnRef(self.functions[name]), None)
        return self.module_refs[name]

    def _method_ref(self, cls: str, name: str) -> int | None:
        for stmt in self.classes[cls].body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                key = f"{cls}.{name}"
                if key not in self.module_refs:
                    self.module_refs[key] = self._new_ref(_FnRef(stmt, cls=cls), None)
                return self.module_refs[key]
        return None

    def _defaults(self, node: _FunctionNode, fr: _Frame) -> tuple[tuple[str, Taint], ...]:
        """Default values are evaluated where the function is defined."""
        args = node.args
        positional = _positional_params(args)
        pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults),
                 *((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)]
        return tuple((name, t) for name, value in pairs if (t := self._eval(value, fr)))

    def _loaded_names(self, node: ast.AST) -> frozenset[str]:
        if id(node) not in self.loads:
            self.loads[id(node)] = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        return self.loads[id(node)]

    def _summary(self, index: int, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> _Summary:
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
            return _Summary()
        self.in_progress.add(key)
        self.depth += 1
        try:
            summary = self._analyse(ref, args, kwargs)
        finally:
            self.in_progress.discard(key)
            self.depth -= 1
        self.memo[key] = summary
        return summary

    def _analyse(self, ref: _FnRef, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> _Summary:
        node = ref.node
        params = _positional_params(node.args)
        env: dict[str, Taint] = {}
        self_name = None
        is_static = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
        if ref.cls is not None and params and not is_static:
            self_name, params = params[0], params[1:]
            env[self_name] = frozenset({_Inst(ref.cls)})
            for attr, t in self.class_attrs.get(ref.cls, {}).items():
                env[f"{self_name}.{attr}"] = t
        for name, t in zip(params, args):
            env[name] = t
        if node.args.vararg is not None and len(args) > len(params):
            env[node.args.vararg.arg] = frozenset().union(*(_wrap(t) for t in args[len(params):]))
        keyword_names = set(params) | {a.arg for a in node.args.kwonlyargs}
        for name, t in kwargs.items():
            if name in keyword_names:
                env[name] = t
        for name, t in ref.defaults:
            env.setdefault(name, t)  # lambda m, doc=context: ...
        for name in (*params, *(a.arg for a in node.args.kwonlyargs)):
            env.setdefault(name, EMPTY)  # a parameter shadows the closure
        frame = _Frame(env, closure=ref.owner, cls=ref.cls, self_name=self_name)
        if isinstance(node, ast.Lambda):
            t = self._eval(node.body, frame)
            frame.returns.append(t)
            frame.returns_subcall.append(isinstance(node.body, ast.Call) and SUBCALL in t)
        else:
            self._body(node.body, frame)
        self._finish(frame)
        ret = frozenset().union(*frame.returns) if frame.returns else EMPTY
        returns_subcall = bool(frame.returns_subcall) and all(frame.returns_subcall)
        if frame.yields:  # a generator: what it returns is its items
            ret = frozenset().union(*(_wrap(t) for t in frame.yields)) | ({STREAM} if frame.yields_unbounded else EMPTY)
            returns_subcall = False
        if not returns_subcall:
            ret = ret - {SUBCALL, SUBCALL_AGG}
        return _Summary(ret, frame.subcall, returns_subcall)

    def _callee_refs(self, func: ast.expr, fr: _Frame) -> tuple[list[int], str | None]:
        """The function references ``func`` may call, and a class name when it instantiates one."""
        if isinstance(func, ast.Lambda):
            return [self._new_ref(_FnRef(func, owner=fr, defaults=self._defaults(func, fr)), fr)], None
        if isinstance(func, ast.Name):
            local = fr.lookup(func.id)
            if local is not None:
                return _fns(local), None
            if func.id in self.functions:
                return [self._module_ref(func.id)], None
            if func.id in self.classes:
                return [], func.id
            return [], None
        if isinstance(func, ast.Attribute):
            receiver = self.last[id(func.value)] if id(func.value) in self.last else self._peek(func.value, fr)
            methods = self._methods(receiver, func.attr)
            if methods:
                return methods, None
        taint = self._eval(func, fr)
        return _fns(taint), None

    def _methods(self, receiver: Taint, attr: str) -> list[int]:
        out = []
        for label in receiver:
            if isinstance(label, _Inst) and label.cls in self.classes:
                index = self._method_ref(label.cls, attr)
                if index is not None:
                    out.append(index)
        return out

    def _call_refs(self, refs: list[int], args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> _Summary:
        summaries = [self._summary(i, args, kwargs) for i in refs]
        if not summaries:
            return _Summary()
        return _Summary(frozenset().union(*(s.ret for s in summaries)), any(s.makes_subcall for s in summaries),
                        all(s.returns_subcall for s in summaries))

    def _instantiate(self, cls: str, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> Taint:
        node = self.classes[cls]
        attrs = self.class_attrs.setdefault(cls, {})
        if any("dataclass" in _src(d) for d in node.decorator_list):
            fields = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            for name, t in (*zip(fields, args), *kwargs.items()):
                if t:
                    attrs[name] = attrs.get(name, EMPTY) | t
        init = self._method_ref(cls, "__init__")
        if init is not None:
            self._summary(init, args, kwargs)
        return frozenset({_Inst(cls)})

    def _mark_subcall(self, fr: _Frame, *, sequential: bool) -> None:
        fr.subcall = True
        for loop in fr.loops:
            loop.subcall = True
            loop.sequential = loop.sequential or sequential

    # -- statements ----------------------------------------------------------------
    def _body(self, body: Sequence[ast.stmt], fr: _Frame) -> None:
        for stmt in body:
            self._stmt(stmt, fr)

    def _branches(self, bodies: Sequence[Sequence[ast.stmt]], fr: _Frame, guard: ast.expr | None,
                  fallthrough: bool) -> None:
        before = dict(fr.env)
        results = [before] if fallthrough else []
        for body in bodies:
            fr.env = dict(before)
            if guard is not None:
                fr.guards.append((guard, len(fr.loops)))
            self._body(body, fr)
            if guard is not None:
                fr.guards.pop()
            results.append(fr.env)
        fr.env = _merge(*results) if results else before

    def _stmt(self, s: ast.stmt, fr: _Frame) -> None:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in s.decorator_list:
                self._eval(deco, fr)
            ref = _FnRef(s, owner=fr, defaults=self._defaults(s, fr))
            fr.env[s.name] = frozenset({_Fn(self._new_ref(ref, fr))})
        elif isinstance(s, ast.ClassDef):
            fr.env[s.name] = EMPTY
        elif isinstance(s, ast.Return):
            t = self._eval(s.value, fr) if s.value is not None else EMPTY
            fr.returns.append(t)
            fr.returns_subcall.append(isinstance(s.value, ast.Call) and SUBCALL in t)
            if fr.is_task and s.value is not None:
                self._rule4(s.value, t, fr)
        elif isinstance(s, ast.Assign):
            if len(s.targets) == 1 and isinstance(s.targets[0], (ast.Tuple, ast.List)) \
                    and isinstance(s.value, (ast.Tuple, ast.List)) and len(s.targets[0].elts) == len(s.value.elts) \
                    and not any(isinstance(e, ast.Starred) for e in (*s.targets[0].elts, *s.value.elts)):
                for target, value in zip(s.targets[0].elts, s.value.elts):
                    self._assign(target, self._eval(value, fr), fr, value)
                return
            t = self._eval(s.value, fr)
            for target in s.targets:
                self._assign(target, t, fr, s.value)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self._assign(s.target, self._eval(s.value, fr), fr, s.value)
        elif isinstance(s, ast.AugAssign):
            self._augassign(s, fr)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self._for(s, fr)
        elif isinstance(s, ast.While):
            self._while(s, fr)
        elif isinstance(s, ast.If):
            self._eval(s.test, fr)
            self._branches([s.body, s.orelse] if s.orelse else [s.body], fr, s.test, fallthrough=not s.orelse)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                t = self._eval(item.context_expr, fr)
                if item.optional_vars is not None:
                    self._assign(item.optional_vars, t, fr, None)
            self._body(s.body, fr)
        elif isinstance(s, (ast.Try, ast.TryStar)):
            self._body(s.body, fr)
            self._branches([h.body for h in s.handlers] + [s.orelse], fr, None, fallthrough=True)
            self._body(s.finalbody, fr)
        elif isinstance(s, ast.Match):
            self._eval(s.subject, fr)
            self._branches([case.body for case in s.cases], fr, None, fallthrough=True)
        elif isinstance(s, ast.Expr):
            self._eval(s.value, fr)
        elif isinstance(s, ast.Raise):
            if s.exc is not None:
                self._eval(s.exc, fr)
        elif isinstance(s, ast.Assert):
            self._eval(s.test, fr)
            if s.msg is not None:
                self._eval(s.msg, fr)

    def _assign(self, target: ast.expr, t: Taint, fr: _Frame, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            fr.env[target.id] = t
            number = self._const_int(value, fr) if value is not None else None
            if number is not None:
                fr.ints[target.id] = number
            else:
                fr.ints.pop(target.id, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            inner = _elems(t) | t - {LIST} - _UNBOUNDED
            for elt in target.elts:
                self._assign(elt.value if isinstance(elt, ast.Starred) else elt, _no_counts(inner), fr, None)
        elif isinstance(target, ast.Attribute):
            self._eval(target.value, fr)
            key = _dotted(target)
            if key is not None:
                fr.env[key] = t
                if fr.cls is not None and isinstance(target.value, ast.Name) and target.value.id == fr.self_name:
                    attrs = self.class_attrs.setdefault(fr.cls, {})
                    attrs[target.attr] = attrs.get(target.attr, EMPTY) | t
        elif isinstance(target, ast.Subscript):
            self._eval(target.slice, fr)
            base = self._eval(target.value, fr)
            if CTX in base:
                self.report(target, "R2-subscript", f"assigning into the context ({_src(target)}) is not possible")
            root = _root_name(target)
            current = fr.lookup(root) if root is not None else None
            if root is not None and current is not None:
                fr.env[root] = current | _wrap(t)  # d["doc"] = ctx: the container now holds it
        elif isinstance(target, ast.Starred):
            self._assign(target.value, t, fr, None)

    def _augassign(self, s: ast.AugAssign, fr: _Frame) -> None:
        t = self._eval(s.value, fr)
        current = self._eval(s.target, fr) if isinstance(s.target, ast.Name) else EMPTY
        if isinstance(s.op, (ast.Add, ast.Mod)) and CTX in t:
            self.report(s, "R1-concat", f"the context ({_src(s.value)}) is added to a string")
            t = t - {CTX} | {STRINGIFIED}
        new = current | (t & (_WHOLE_TEXT | {AGG})) | _wrap(_elems(t))
        if isinstance(s.op, ast.Add) and fr.loops:
            new |= {AGG}  # text (or a list) accumulated in a loop
            if any(_UNBOUNDED & loop.iter_taint for loop in fr.loops):
                new |= {ULIST}
        if isinstance(s.target, ast.Name):
            fr.env[s.target.id] = new
            fr.ints.pop(s.target.id, None)
        else:
            self._assign(s.target, new, fr, None)

    # -- loops ---------------------------------------------------------------------
    def _for(self, s: ast.For | ast.AsyncFor, fr: _Frame) -> None:
        it = self._iterate(s.iter, fr)
        loop = _Loop(s, it)
        fr.loops.append(loop)
        before = dict(fr.env)
        for _ in range(2):  # twice, so values carried round the loop are seen
            self._assign(s.target, _elems(it), fr, None)
            self._body(s.body, fr)
            fr.env = _merge(before, fr.env)
        fr.loops.pop()
        self._body(s.orelse, fr)
        self._judge_loop(s, loop, it, fr)

    def _while(self, s: ast.While, fr: _Frame) -> None:
        self._eval(s.test, fr)
        loop = _Loop(s)
        fr.loops.append(loop)
        before = dict(fr.env)
        for _ in range(2):
            self._body(s.body, fr)
            self._eval(s.test, fr)
            fr.env = _merge(before, fr.env)
        fr.loops.pop()
        self._body(s.orelse, fr)
        if loop.subcall and not (self._while_bounded(s, fr) or self._bounded_exit(s, fr)):
            self.report(s, "R3-while", "this while loop makes subcalls and nothing bounds how many times it runs "
                                       "(a break on a model answer or an empty page is not a bound)")

    def _judge_loop(self, s: ast.For | ast.AsyncFor, loop: _Loop, it: Taint, fr: _Frame) -> None:
        bounded_exit = self._bounded_exit(s, fr)
        unbounded = bool(it & _UNBOUNDED) and not bounded_exit
        if unbounded and loop.subcall:
            self.report(s, "R3-loop", f"this loop over {_src(s.iter)} makes subcalls for every item of an unbounded "
                                      "scan of the context")
        elif unbounded and STREAM in it:  # a list already built was reported where it was built
            for call, guards in loop.appends:
                # Under an if, the task decides what it keeps (a filter, a dedupe, a cap): only keeping
                # every item is a hazard.
                if not guards:
                    self.report(call, "H-accumulate", f"{_src(call.func)}(...) keeps an item for every match of an "
                                                      f"unbounded scan ({_src(s.iter)})")
        elif loop.sequential and (_count(it) or 0) > HANDFUL and not bounded_exit:
            self.report(s, "H-sequential", f"this loop makes up to {_count(it)} subcalls one after another")

    def _counters(self, loop: ast.For | ast.AsyncFor | ast.While) -> set[str]:
        names: set[str] = set()
        for node in _walk_local(loop.body):
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

    def _bounded_exit(self, loop: ast.For | ast.AsyncFor | ast.While, fr: _Frame) -> bool:
        """A break or return that is unconditional, or under a test on a counter, a len() or the clock."""
        counters = self._counters(loop)

        def visit(stmts: Sequence[ast.stmt], tests: tuple[ast.expr, ...], nested: bool) -> bool:
            for stmt in stmts:
                leaves = isinstance(stmt, ast.Return) or (isinstance(stmt, ast.Break) and not nested)
                if leaves and (not tests or any(self._is_bound_test(t, counters, fr) for t in tests)):
                    return True
                if isinstance(stmt, ast.If):
                    inner = (*tests, stmt.test)
                    found = visit(stmt.body, inner, nested) or visit(stmt.orelse, inner, nested)
                elif isinstance(stmt, _LOOP_NODES):
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

    def _while_bounded(self, s: ast.While, fr: _Frame) -> bool:
        if isinstance(s.test, ast.Constant):
            return False
        if self._is_bound_test(s.test, self._counters(s), fr):
            return True
        if not isinstance(s.test, ast.Name):
            return False
        # while queue: ... queue.pop(): a work list that only shrinks
        methods = {n.func.attr for n in _walk_local(s.body) if isinstance(n, ast.Call)
                   and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                   and n.func.value.id == s.test.id}
        return bool(methods & {"pop", "popleft"}) and not methods & {"append", "extend", "appendleft", "insert"}

    def _is_bound_test(self, test: ast.expr, counters: set[str], fr: _Frame) -> bool:
        for node in ast.walk(test):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            if any(self._mentions_context_size(o, fr) for o in operands):
                continue
            for sub in (n for o in operands for n in ast.walk(o)):
                if isinstance(sub, ast.Name) and sub.id in counters:
                    return True
                if isinstance(sub, ast.Call):
                    if isinstance(sub.func, ast.Name) and sub.func.id == "len":
                        return True
                    qualname = self._qualname(sub.func, fr)
                    if qualname is not None and qualname.startswith("time."):
                        return True
        return False

    def _mentions_context_size(self, node: ast.expr, fr: _Frame) -> bool:
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "len" and n.args
                   and self._peek(n.args[0], fr) & _WHOLE_TEXT for n in ast.walk(node))

    def _peek(self, node: ast.expr, fr: _Frame) -> Taint:
        """The taint of a name or ``a.b`` without evaluating anything."""
        key = _dotted(node)
        if key is None:
            return EMPTY
        found = fr.lookup(key)
        if found is not None:
            return found
        if isinstance(node, ast.Attribute):
            return self._attribute_of(self._peek(node.value, fr), node.attr)
        return self.globals.get(key, EMPTY)

    # -- rule 4 ----------------------------------------------------------------------
    def _rule4(self, value: ast.expr, t: Taint, fr: _Frame) -> None:
        if isinstance(value, ast.Call) and SUBCALL in t:
            self.report(value, "R4-return", "the task returns a subcall's answer as its result")
            return
        if isinstance(value, ast.Name) and SUBCALL_AGG in t:
            self.report(value, "R4-aggregate", f"the task returns {value.id}, a subcall's answer over aggregated "
                                               "results (a 'summarize everything' call)")
            return
        if isinstance(value, (ast.Dict, ast.List, ast.Tuple)):
            if isinstance(value, ast.Dict) and any(k is None for k in value.keys):
                return  # {**other, ...}: built from more than is visible here
            items = value.values if isinstance(value, ast.Dict) else value.elts
            taints = [self._peek(v, fr) if isinstance(v, ast.Name) else self.last.get(id(v), EMPTY) for v in items]
            for item, it in zip(items, taints):
                if SUBCALL_AGG in it and (isinstance(item, ast.Name) or (isinstance(item, ast.Call) and SUBCALL in it)):
                    self.report(item, "R4-aggregate", f"the returned {_src(item)} is a subcall's answer over "
                                                      "aggregated results (a 'summarize everything' call)")
                    return

    # -- expressions -------------------------------------------------------------------
    def _eval(self, e: ast.expr, fr: _Frame) -> Taint:
        t = self._eval_inner(e, fr)
        self.last[id(e)] = t
        return t

    def _eval_inner(self, e: ast.expr, fr: _Frame) -> Taint:
        if isinstance(e, ast.Name):
            found = fr.lookup(e.id)
            return found if found is not None else self.globals.get(e.id, EMPTY)
        if isinstance(e, ast.Constant):
            return EMPTY
        if isinstance(e, ast.JoinedStr):
            return self._fstring(e, fr)
        if isinstance(e, ast.FormattedValue):
            return self._eval(e.value, fr)
        if isinstance(e, ast.Attribute):
            key = _dotted(e)
            if key is not None and fr.lookup(key) is not None:
                return fr.lookup(key) or EMPTY
            base = self._eval(e.value, fr)
            if CTX in base and e.attr not in _CONTEXT_ATTRIBUTES:
                self.report(e, "R2-method", f"{_src(e)} is not a context function: the context is not a string")
                return frozenset({WHOLE})
            return self._attribute_of(base, e.attr)
        if isinstance(e, ast.Subscript):
            return self._subscript(e, fr)
        if isinstance(e, ast.Call):
            return self._call(e, fr)
        if isinstance(e, ast.BinOp):
            return self._binop(e, fr)
        if isinstance(e, ast.Compare):
            self._eval(e.left, fr)
            for op, right in zip(e.ops, e.comparators):
                rt = self._eval(right, fr)
                if isinstance(op, (ast.In, ast.NotIn)) and CTX in rt:
                    self.report(e, "R2-in", f"{_src(e)} scans the context with 'in'")
            return EMPTY
        if isinstance(e, ast.BoolOp):
            return frozenset().union(*(self._eval(v, fr) for v in e.values))
        if isinstance(e, ast.UnaryOp):
            self._eval(e.operand, fr)
            return EMPTY
        if isinstance(e, ast.IfExp):
            self._eval(e.test, fr)
            return self._eval(e.body, fr) | self._eval(e.orelse, fr)
        if isinstance(e, (ast.List, ast.Tuple, ast.Set)):
            out: set[Label] = {LIST}
            for elt in e.elts:
                t = self._eval(elt, fr)
                out |= t & _UNBOUNDED if isinstance(elt, ast.Starred) else _wrap(t)
            if not any(isinstance(elt, ast.Starred) for elt in e.elts):
                out.add(_Count(len(e.elts)))
            return frozenset(out)
        if isinstance(e, ast.Dict):
            out = {LIST}
            for k, v in zip(e.keys, e.values):
                if k is not None:
                    self._eval(k, fr)
                out |= _wrap(self._eval(v, fr))
            return frozenset(out)
        if isinstance(e, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            return self._comprehension(e, fr)
        if isinstance(e, ast.Lambda):
            return frozenset({_Fn(self._new_ref(_FnRef(e, owner=fr, defaults=self._defaults(e, fr)), fr))})
        if isinstance(e, ast.NamedExpr):
            t = self._eval(e.value, fr)
            self._assign(e.target, t, fr, e.value)
            return t
        if isinstance(e, (ast.Starred, ast.Await)):
            return self._eval(e.value, fr)
        if isinstance(e, (ast.Yield, ast.YieldFrom)):
            t = self._eval(e.value, fr) if e.value is not None else EMPTY
            fr.yields.append(_elems(t) if isinstance(e, ast.YieldFrom) else t)
            if any(loop.iter_taint & _UNBOUNDED for loop in fr.loops) or (isinstance(e, ast.YieldFrom)
                                                                         and t & _UNBOUNDED):
                fr.yields_unbounded = True
            return EMPTY
        if isinstance(e, ast.Slice):
            for part in (e.lower, e.upper, e.step):
                if part is not None:
                    self._eval(part, fr)
        return EMPTY

    def _attribute_of(self, base: Taint, attr: str) -> Taint:
        out: set[Label] = set()
        if CTX in base and attr == "path":
            out.add(PATH)
        for label in base:
            if isinstance(label, _Inst):
                out |= self.class_attrs.get(label.cls, {}).get(attr, EMPTY)
        return frozenset(out)

    def _fstring(self, e: ast.JoinedStr, fr: _Frame) -> Taint:
        out: set[Label] = set()
        for value in e.values:
            if not isinstance(value, ast.FormattedValue):
                continue
            t = self._eval(value.value, fr)
            if value.format_spec is not None:
                self._eval(value.format_spec, fr)
            if CTX in t:
                self.report(e, "R1-fstring", f"the context ({_src(value.value)}) is formatted into an f-string")
                out.add(STRINGIFIED)
            out |= t & {WHOLE, STRINGIFIED, AGG}
            if t & {LIST, ULIST} or _count(t) is not None:
                out.add(AGG)
        return frozenset(out)

    def _subscript(self, e: ast.Subscript, fr: _Frame) -> Taint:
        base = self._eval(e.value, fr)
        self._eval(e.slice, fr)
        if CTX in base:
            self.report(e, "R2-subscript", f"{_src(e)} indexes the context directly")
            return frozenset({WHOLE}) if isinstance(e.slice, ast.Slice) and e.slice.upper is None else EMPTY
        if not isinstance(e.slice, ast.Slice):
            return _elems(base)
        lower, upper = self._const_int(e.slice.lower, fr), self._const_int(e.slice.upper, fr)
        keep = _no_counts(base)
        if e.slice.upper is not None and (upper is None or upper >= 0) \
                and not any(isinstance(n, ast.Name) and n.id == "len" for n in ast.walk(e.slice.upper)):
            keep = keep - _UNBOUNDED - {WHOLE, STRINGIFIED}
            if upper is not None and (lower or 0) >= 0:
                return keep | {_Count(max(upper - (lower or 0), 0))}
            return keep
        if e.slice.upper is None and lower is not None and lower < 0:
            return keep - _UNBOUNDED - {WHOLE, STRINGIFIED} | {_Count(-lower)}
        return base

    def _binop(self, e: ast.BinOp, fr: _Frame) -> Taint:
        left, right = self._eval(e.left, fr), self._eval(e.right, fr)
        out: set[Label] = set()
        if isinstance(e.op, ast.Add):
            if CTX in left or CTX in right:
                self.report(e, "R1-concat", f"the context is concatenated with a string in {_src(e)}")
                out.add(STRINGIFIED)
            both = left | right
            out |= both & {WHOLE, STRINGIFIED, AGG, ULIST, STREAM, LIST}
            out |= _wrap(_elems(both))
        elif isinstance(e.op, ast.Mod):
            if CTX in right or CTX in _elems(right):
                self.report(e, "R1-format", f"the context is %-formatted into a string in {_src(e)}")
                out.add(STRINGIFIED)
            out |= (right | _elems(right)) & {WHOLE, STRINGIFIED, AGG}
            if _elems(right) & {LIST, ULIST} or (right & {LIST, ULIST} and not isinstance(e.right, ast.Tuple)):
                out.add(AGG)  # a list formatted into the text
        return frozenset(out)

    def _comprehension(self, e: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, fr: _Frame) -> Taint:
        saved_env, saved_ints = dict(fr.env), dict(fr.ints)
        loop = _Loop(e)
        unbounded = False
        count: int | None = None
        for i, gen in enumerate(e.generators):
            it = self._iterate(gen.iter, fr)
            if i == 0:
                count = _count(it)
            unbounded = unbounded or bool(it & _UNBOUNDED)
            if i == 0:
                fr.loops.append(loop)
            self._assign(gen.target, _elems(it), fr, None)
            for cond in gen.ifs:
                self._eval(cond, fr)
        if isinstance(e, ast.DictComp):
            self._eval(e.key, fr)
            elt = self._eval(e.value, fr)
        else:
            elt = self._eval(e.elt, fr)
        fr.loops.pop()
        fr.env, fr.ints = saved_env, saved_ints
        out: set[Label] = set(_wrap(elt))
        if isinstance(e, ast.GeneratorExp):
            out |= {STREAM} if unbounded else set()
        else:
            out.add(LIST)
            if unbounded and not isinstance(e, (ast.SetComp, ast.DictComp)):
                out.add(ULIST)
        if count is not None and not unbounded:
            out.add(_Count(count))
        where = e.generators[0].iter  # the scan, which is where a long comprehension is wrong
        if unbounded and loop.subcall:
            self.report(where, "R3-comprehension", f"this comprehension makes subcalls for every item of an unbounded "
                                               f"scan ({_src(e.generators[0].iter)})")
        elif unbounded and isinstance(e, ast.ListComp) and self._streams(e.generators):
            self.report(where, "H-materialize", "this list comprehension keeps every item of an unbounded scan of the "
                                            "context in memory")
        elif loop.sequential and (count or 0) > HANDFUL:
            self.report(e, "H-sequential", f"this comprehension makes up to {count} subcalls one after another")
        return frozenset(out)

    def _streams(self, generators: list[ast.comprehension]) -> bool:
        """Whether a comprehension reads a lazy scan (a list already built was reported where it was built)."""
        return any(STREAM in self.last.get(id(g.iter), EMPTY) for g in generators)

    def _iterate(self, node: ast.expr, fr: _Frame) -> Taint:
        """Evaluate something iterated over, reporting iteration over the context itself."""
        t = self._eval(node, fr)
        if CTX in t:
            self.report(node, "R2-iter", f"iterating over the context ({_src(node)})")
        if FILE in t:
            return t | {ULIST}
        return t

    # -- calls -----------------------------------------------------------------------------
    def _call(self, e: ast.Call, fr: _Frame) -> Taint:
        func = e.func
        qualname = self._qualname(func, fr)
        api = self._api(qualname)
        if api in _SUBCALLS:
            return self._subcall(e, fr)
        if api == "parallel_map":
            return self._map(e, fr, "parallel_map")
        if api in _CONTEXT_FUNCTIONS:
            return self._context_function(api or "", e, fr)
        if api == "publish":
            published, _ = self._arguments(e, fr)
            return published[1] if len(published) > 1 else EMPTY
        if qualname is not None and api is None:
            handled = self._library_call(qualname, e, fr)
            if handled is not None:
                return handled
            return self._outside_call(qualname, e, fr)
        if isinstance(func, ast.Attribute) and qualname is None:
            receiver = self._eval(func.value, fr)
            methods = self._methods(receiver, func.attr)
            if methods:
                return self._user_call(methods, e, fr)
            return self._method(e, func, receiver, fr)
        refs, cls = self._callee_refs(func, fr) if qualname is None else ([], None)
        if cls is not None:
            args, kwargs = self._arguments(e, fr)
            return self._instantiate(cls, args, kwargs)
        if refs:
            return self._user_call(refs, e, fr)
        self._arguments(e, fr)
        return EMPTY

    def _outside_call(self, qualname: str, e: ast.Call, fr: _Frame) -> Taint:
        """A function from another module (or a builtin): it can only read the context as a string."""
        self._arguments(e, fr)
        root = qualname.split(".")[0]
        known = (root in self.imports.values() or qualname in self.imports.values() or hasattr(builtins, qualname))
        if not known or qualname in _HARMLESS or root == "rlm":
            return EMPTY
        for node in (*e.args, *(kw.value for kw in e.keywords)):
            if CTX in self.last.get(id(node), EMPTY):
                self.report(node, "R2-external", f"the context is passed to {qualname}(), which is not a context "
                                                 "function and can only read it as a string")
                break
        return EMPTY

    def _arguments(self, e: ast.Call, fr: _Frame) -> tuple[tuple[Taint, ...], dict[str, Taint]]:
        args = tuple(self._eval(a, fr) for a in e.args)
        kwargs = {kw.arg: self._eval(kw.value, fr) for kw in e.keywords if kw.arg is not None}
        for kw in e.keywords:
            if kw.arg is None:
                self._eval(kw.value, fr)
        return args, kwargs

    def _user_call(self, refs: list[int], e: ast.Call, fr: _Frame) -> Taint:
        args, kwargs = self._arguments(e, fr)
        summary = self._call_refs(refs, args, kwargs)
        if summary.makes_subcall:
            self._mark_subcall(fr, sequential=True)
        ret = summary.ret
        if summary.returns_subcall:
            ret |= {SUBCALL}
        return ret

    def _argument(self, e: ast.Call, position: int, name: str) -> ast.expr | None:
        if len(e.args) > position and not any(isinstance(a, ast.Starred) for a in e.args[: position + 1]):
            return e.args[position]
        for kw in e.keywords:
            if kw.arg == name:
                return kw.value
        return None

    def _subcall(self, e: ast.Call, fr: _Frame) -> Taint:
        name = _src(e.func)
        self._arguments(e, fr)
        aggregate = False
        for position, role in ((0, "prompt"), (1, "chunk")):
            node = self._argument(e, position, role)
            if node is None:
                continue
            t = self.last.get(id(node), EMPTY)
            if CTX in t:
                self.report(node, "R1-subcall", f"the whole context is sent as the {role} of {name}")
            elif WHOLE in t:
                self.report(node, "R1-whole-text", f"text holding the whole document ({_src(node)}) is sent as the "
                                                   f"{role} of {name}")
            aggregate = aggregate or bool(t & {AGG, ULIST})  # the whole document is rule 1's, not an aggregate
            if role == "prompt":
                literal = " ".join(n.value for n in ast.walk(node)
                                   if isinstance(n, ast.Constant) and isinstance(n.value, str))
                aggregate = aggregate or bool(_SUMMARIZE_ALL.search(literal))
        self._mark_subcall(fr, sequential=True)
        return frozenset({SUBCALL, SUBCALL_AGG}) if aggregate else frozenset({SUBCALL})

    def _map(self, e: ast.Call, fr: _Frame, kind: str) -> Taint:
        fn = self._argument(e, 0, "fn")
        items = self._argument(e, 1, "items")
        for kw in e.keywords:
            if kw.value is not fn and kw.value is not items:
                self._eval(kw.value, fr)
        for extra in e.args[2:]:
            self._eval(extra, fr)
        items_t = self._iterate(items, fr) if items is not None else EMPTY
        summary = _Summary()
        if fn is not None:
            refs, _ = self._callee_refs(fn, fr)
            summary = self._call_refs(refs, (_elems(items_t),), {})
        if summary.makes_subcall:
            self._mark_subcall(fr, sequential=kind == "map")
            if items_t & _UNBOUNDED:
                self.report(e, "R3-parallel", f"{kind} makes subcalls for every item of an unbounded scan "
                                              f"({_src(items) if items is not None else '?'})")
        out: set[Label] = set(_wrap(summary.ret - {SUBCALL, SUBCALL_AGG}))
        out |= items_t & _UNBOUNDED if kind == "parallel_map" else items_t & {STREAM, ULIST}
        if kind == "parallel_map":
            out.add(LIST)
            if STREAM in out:
                out = out - {STREAM} | {ULIST}
        count = _count(items_t)
        if count is not None:
            out.add(_Count(count))
        return frozenset(out)

    def _is_context_size(self, node: ast.expr | None, fr: _Frame) -> bool:
        """``len(ctx)`` (or more): a size that covers the whole context."""
        if node is None:
            return False
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            return self._is_context_size(node.left, fr) or self._is_context_size(node.right, fr)
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" \
            and bool(node.args) and bool(self._peek(node.args[0], fr) & _WHOLE_TEXT)

    def _context_function(self, name: str, e: ast.Call, fr: _Frame) -> Taint:
        args, kwargs = self._arguments(e, fr)
        source = args[0] if args else kwargs.get("ctx", EMPTY)
        whole_source = bool(source & _WHOLE_TEXT)
        if name == "open_context":
            return frozenset({CTX})
        if name in ("context_head", "context_tail"):
            size = self._argument(e, 1, "n")
            return frozenset({WHOLE}) if whole_source and self._is_context_size(size, fr) else EMPTY
        if name == "context_slice":
            start, end = self._argument(e, 1, "start"), self._argument(e, 2, "end")
            whole = whole_source and self._const_int(start, fr) == 0 and self._is_context_size(end, fr)
            return frozenset({WHOLE}) if whole else EMPTY
        if name == "context_line":
            return EMPTY
        ranged = any(kw.arg == "end" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
                     for kw in e.keywords)
        if name == "context_search":
            limit = self._argument(e, 2, "max_hits")
            if limit is None:
                return frozenset({LIST, _Count(100)})
            if isinstance(limit, ast.Constant) and limit.value is None:
                if whole_source and not ranged:
                    self.report(e, "H-materialize", "max_hits=None lists every match in the context in memory")
                    return frozenset({LIST, ULIST})
                return frozenset({LIST})
            n = self._const_int(limit, fr)
            return frozenset({LIST, _Count(n)}) if n is not None else frozenset({LIST})
        # context_finditer, context_chunks: lazy scans of the whole range
        return frozenset({STREAM}) if whole_source and not ranged else EMPTY

    def _library_call(self, qualname: str, e: ast.Call, fr: _Frame) -> Taint | None:
        """Builtins and standard-library calls the rules care about; None for anything else."""
        name = qualname
        if name in ("open", "io.open", "codecs.open"):
            self._arguments(e, fr)
            self.report(e, "R2-open", f"{_src(e)} reads a file directly inside a task")
            return frozenset({FILE})
        if name in ("pathlib.Path", "Path", "os.fspath"):
            self._arguments(e, fr)
            return frozenset({PATH})
        if name in _STRINGIFY:
            args, _ = self._arguments(e, fr)
            out: set[Label] = set()
            for node, t in zip(e.args, args):
                if CTX in t:
                    self.report(node, "R1-str", f"{name}({_src(node)}) turns the whole context into a string")
                    out.add(STRINGIFIED)
                out |= t & {WHOLE, STRINGIFIED, AGG, SUBCALL, SUBCALL_AGG}
                if t & {LIST, ULIST} or _count(t) is not None:
                    out.add(AGG)
            return frozenset(out) if name != "print" else EMPTY
        if name in ("json.dumps", "json.dump"):
            args, _ = self._arguments(e, fr)
            if args and (CTX in args[0] or CTX in _elems(args[0])):
                self.report(e, "R1-json", f"{_src(e)} turns the context into a string")
                return frozenset({STRINGIFIED})
            return frozenset({AGG}) | (args[0] & {WHOLE} if args else EMPTY)
        if name == "json.loads":
            args, _ = self._arguments(e, fr)
            return args[0] & {SUBCALL, SUBCALL_AGG} if args else EMPTY
        if name == "functools.partial" or name == "partial":
            return self._partial(e, fr)
        if name in ("map", "filter"):
            if name == "map":
                return self._map(e, fr, "map")
            args, _ = self._arguments(e, fr)
            if len(args) > 1 and CTX in args[1]:
                self.report(e.args[1], "R2-iter", f"iterating over the context ({_src(e.args[1])})")
            return args[1] & (_UNBOUNDED | {LIST}) if len(args) > 1 else EMPTY
        if name == "range":
            args, _ = self._arguments(e, fr)
            if any(self._mentions_context_size(a, fr) for a in e.args):
                return frozenset({STREAM})  # every position of the context
            values = [self._const_int(a, fr) for a in e.args]
            if values and all(v is not None for v in values):
                ints = [v for v in values if v is not None]
                start, stop, step = (0, ints[0], 1) if len(ints) == 1 else (ints[0], ints[1], ints[2] if len(ints) > 2
                                                                             else 1)
                return frozenset({_Count(max(len(range(start, stop, step or 1)), 0))})
            return EMPTY
        if name in ("itertools.islice", "islice"):
            args, _ = self._arguments(e, fr)
            if args and CTX in args[0]:
                self.report(e.args[0], "R2-iter", f"iterating over the context ({_src(e.args[0])})")
            bounds = [self._const_int(a, fr) for a in e.args[1:]]
            inner = _no_counts(args[0]) - _UNBOUNDED if args else EMPTY
            if len(bounds) == 1 and bounds[0] is not None:
                return inner | {_Count(bounds[0])}
            if len(bounds) >= 2 and bounds[1] is not None:
                return inner | {_Count(bounds[1] - (bounds[0] or 0))}
            return inner
        if name in ("itertools.takewhile", "takewhile"):
            args, _ = self._arguments(e, fr)
            return _no_counts(args[1]) - _UNBOUNDED if len(args) > 1 else EMPTY
        if name == "zip":
            args, _ = self._arguments(e, fr)
            for node, t in zip(e.args, args):
                if CTX in t:
                    self.report(node, "R2-iter", f"iterating over the context ({_src(node)})")
            counts = [c for c in (_count(t) for t in args) if c is not None]
            elems = frozenset().union(*(_wrap(_elems(t)) for t in args)) if args else EMPTY
            if counts:
                return elems | {_Count(min(counts))}
            if args and all(t & _UNBOUNDED for t in args):
                return elems | ({STREAM} if any(STREAM in t for t in args) else {ULIST})
            return elems
        if name == "enumerate" or name in _MATERIALIZE or name in _CONSUME:
            return self._iterating_builtin(name, e, fr)
        if name == "len":
            self._arguments(e, fr)
            return EMPTY
        function = self._re_function(e.func)
        if function is not None:
            return self._re_call(function, e, fr)
        return None

    def _iterating_builtin(self, name: str, e: ast.Call, fr: _Frame) -> Taint:
        args, _ = self._arguments(e, fr)
        if not args:
            return frozenset({LIST}) if name in _MATERIALIZE or name in ("set", "frozenset", "dict") else EMPTY
        first = args[0]
        if CTX in first:
            self.report(e.args[0], "R2-iter", f"{name}({_src(e.args[0])}) iterates over the context")
        if name == "enumerate":
            return first
        if name in _MATERIALIZE:
            if STREAM in first:
                self.report(e, "H-materialize", f"{name}(...) keeps every item of an unbounded scan of the context "
                                                "in memory")
            out = {label for label in first if isinstance(label, (_Elem, _Count))} | {LIST}
            if first & _UNBOUNDED:
                out.add(ULIST)
            return frozenset(out)
        if name in ("set", "frozenset", "dict", "collections.Counter"):
            return _no_counts(first) - _UNBOUNDED | {LIST}
        if name == "iter":
            return first
        if name == "next":
            return _elems(first)
        return EMPTY  # any, all, sum, min, max: one value out

    def _partial(self, e: ast.Call, fr: _Frame) -> Taint:
        if not e.args:
            self._arguments(e, fr)
            return EMPTY
        refs, _ = self._callee_refs(e.args[0], fr)
        bound = tuple(self._eval(a, fr) for a in e.args[1:])
        for kw in e.keywords:
            self._eval(kw.value, fr)
        out: set[Label] = set()
        for index in refs:
            ref = self.refs[index]
            self.analysed_refs.add(index)
            out.add(_Fn(self._new_ref(_FnRef(ref.node, ref.bound + bound, ref.owner, ref.cls, ref.defaults), fr)))
        return frozenset(out)

    def _re_call(self, function: str, e: ast.Call, fr: _Frame) -> Taint:
        self._arguments(e, fr)
        if function == "compile":
            return frozenset({PATTERN})
        position = _RE_STRING_ARG.get(function)
        if position is None:
            return EMPTY
        node = self._argument(e, position, "string")
        t = self.last.get(id(node), EMPTY) if node is not None else EMPTY
        return self._regex_on(function, e, node, t)

    def _regex_on(self, function: str, e: ast.Call, node: ast.expr | None, t: Taint) -> Taint:
        if not t & _WHOLE_TEXT or node is None:
            return EMPTY
        self.report(e, "H-re", f"{_src(e.func)}() scans the whole context ({_src(node)}) where the run's deadline "
                               "cannot stop it")
        if function == "finditer":
            return frozenset({STREAM})
        if function in ("findall", "split"):
            return frozenset({ULIST, LIST})
        return frozenset({WHOLE}) if function in ("sub", "subn") else EMPTY

    def _method(self, e: ast.Call, func: ast.Attribute, receiver: Taint, fr: _Frame) -> Taint:
        attr = func.attr
        args, kwargs = self._arguments(e, fr)
        if CTX in receiver and attr not in _CONTEXT_ATTRIBUTES:
            self.report(func, "R2-method", f"{_src(func)}() is not a context function: the context is not a string")
            return frozenset({ULIST, LIST}) if attr in _SPLITTING else frozenset({WHOLE})
        if attr in ("read_text", "read_bytes") or (attr == "open" and PATH in receiver):
            self.report(e, "R2-open", f"{_src(e)} reads a file directly inside a task")
            return frozenset({WHOLE}) if attr != "open" else frozenset({FILE})
        if FILE in receiver:
            if attr in ("read", "readlines"):
                return frozenset({WHOLE}) if attr == "read" else frozenset({ULIST, LIST})
            return EMPTY
        if PATTERN in receiver and attr in _PATTERN_STRING_ARG:
            node = self._argument(e, _PATTERN_STRING_ARG[attr], "string")
            t = self.last.get(id(node), EMPTY) if node is not None else EMPTY
            return self._regex_on(attr, e, node, t)
        if attr == "join":
            items = args[0] if args else EMPTY
            if CTX in items:
                self.report(e, "R1-join", f"{_src(e)} joins the characters of the whole context into a string")
                return frozenset({STRINGIFIED, AGG})
            out = {AGG} | (_elems(items) & {WHOLE, STRINGIFIED})
            if items & _UNBOUNDED:
                out.add(WHOLE)  # every chunk, line or match of the document, in one string
            return frozenset(out)
        if attr == "format" and any(CTX in t for t in (*args, *kwargs.values())):
            self.report(e, "R1-format", f"{_src(e)} formats the context into a string")
            return frozenset({STRINGIFIED})
        if attr in ("append", "extend", "insert", "add", "appendleft", "update"):
            self._record_append(e, func, args, attr, fr)
            return EMPTY
        if receiver & _WHOLE_TEXT:
            if attr in _SPLITTING:
                return frozenset({ULIST, LIST})
            return frozenset({WHOLE}) if attr in _STR_METHODS and attr not in ("count", "find", "index", "rfind",
                                                                                "startswith", "endswith") else EMPTY
        if receiver & {SUBCALL, SUBCALL_AGG} and attr in _STR_METHODS:
            return receiver & {SUBCALL, SUBCALL_AGG}
        if attr in ("get", "pop", "setdefault", "popleft"):
            return _elems(receiver)
        if attr in ("values", "items", "copy", "keys"):
            return _no_counts(receiver)
        return EMPTY

    def _record_append(self, e: ast.Call, func: ast.Attribute, args: tuple[Taint, ...], attr: str,
                       fr: _Frame) -> None:
        root = _root_name(func.value)
        added = frozenset().union(*args) if args else EMPTY
        if attr in ("extend", "update"):
            added = _elems(added) | (added & _UNBOUNDED)
        if root is not None:
            current = fr.lookup(root) or EMPTY
            new = current | _wrap(added) | (added & _UNBOUNDED if attr == "extend" else EMPTY)
            if any(loop.iter_taint & _UNBOUNDED for loop in fr.loops) and attr != "add":
                new |= {ULIST}
            fr.env[root] = new
        if attr in ("add", "update") or root is None:
            return
        for i, loop in enumerate(fr.loops):
            if isinstance(loop.node, (ast.For, ast.AsyncFor)) and root not in self._assigned_in(loop.node):
                guards = tuple(test for test, depth in fr.guards if depth > i)
                loop.appends.append((e, guards))

    def _assigned_in(self, loop: ast.For | ast.AsyncFor) -> set[str]:
        names: set[str] = set()
        for node in _walk_local(loop.body):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
        return names


def _select(tree: ast.Module, function: str | None, filename: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    functions = [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if function is None:
        # A public function that other functions of the module call (or pass on) is a helper: it is
        # checked with what its callers give it. Module-level code (run_task(task, ...)) does not count.
        used = {(fn.name, n.id) for fn in functions for n in ast.walk(fn)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        helpers = {name for owner, name in used if owner != name}
        return [f for f in functions if not f.name.startswith("_") and _is_task_signature(f) and f.name not in helpers]
    chosen = [f for f in functions if f.name == function]
    if not chosen:
        known = ", ".join(f.name for f in functions) or "none"
        raise CheckError(f"{filename} has no module-level function {function!r} (functions: {known}). "
                         "Pass PATH.py:function with one of them.", path=filename)
    return chosen[-1:]


def check_source(source: str, filename: str = "<task>", function: str | None = None) -> list[Finding]:
    """Check the tasks in ``source`` (Python text, never executed) and return the findings, in line order.

    ``filename`` is what findings name. ``function`` checks only that
    module-level function (and the helpers it calls); otherwise every public
    function callable with the context alone is a task. Raises
    :class:`CheckError` when the source does not parse or the function is missing.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        where = f"{filename}:{exc.lineno or 0}:{exc.offset or 0}"
        raise CheckError(f"{where}: cannot parse: {exc.msg}. Fix the syntax error, then check again.",
                         path=filename) from exc
    except ValueError as exc:  # NUL bytes
        raise CheckError(f"{filename}: cannot parse: {exc}. Is it a Python file?", path=filename) from exc
    checker = _Checker(tree, filename)
    for task in _select(tree, function, filename):
        checker.check_task(task)
    return checker.findings()


def _split_spec(spec: str) -> tuple[str, str | None]:
    path, sep, function = spec.rpartition(":")
    if sep and path.endswith(".py") and function.isidentifier():
        return path, function
    return spec, None


def check_path(spec: str) -> list[Finding]:
    """Check ``PATH.py`` or ``PATH.py:function``; a file that cannot be read or parsed raises :class:`CheckError`."""
    path_text, function = _split_spec(spec)
    path = Path(path_text)
    if path.is_dir():
        raise CheckError(f"{path} is a directory; pass a .py file (or PATH.py:function).", path=path_text)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CheckError(f"No such file: {path}. Check the path (PATH.py or PATH.py:function).",
                         path=path_text) from exc
    except UnicodeDecodeError as exc:
        raise CheckError(f"{path} is not UTF-8 text; pass a Python source file.", path=path_text) from exc
    except OSError as exc:
        raise CheckError(f"Cannot read {path}: {exc.strerror or exc}. Check its permissions.", path=path_text) from exc
    return check_source(source, path_text, function)


def format_findings(findings: Iterable[Finding]) -> str:
    """One line per finding: ``file:line:col: rule: message (fix: ...)``."""
    return "\n".join(f"{f.file}:{f.line}:{f.col}: {f.rule}: {f.message} (fix: {f.fix})" for f in findings)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rlm.check PATH[:function] [...] [--json]``: 0 clean, 1 findings, 2 a file it cannot check."""
    parser = argparse.ArgumentParser(
        prog="rlm check",
        description="Check task files against the RLM rules without running them.",
        epilog="Exit codes: 0 clean, 1 findings, 2 a file that cannot be read or parsed, or bad usage.")
    parser.add_argument("paths", nargs="+", metavar="PATH[:function]", help="a task file, or one task in it")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line usage error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    findings: list[Finding] = []
    failed = False
    for spec in args.paths:
        try:
            findings.extend(check_path(spec))
        except CheckError as exc:
            print(f"rlm check: error: {exc}", file=sys.stderr)
            failed = True
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    elif findings:
        print(format_findings(findings))
    if failed:
        return 2
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
