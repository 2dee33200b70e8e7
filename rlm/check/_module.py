"""What the checked module declares (imports, functions, classes, constants), and what a name means in it."""

from __future__ import annotations

import ast
import builtins
from types import MappingProxyType

from rlm.check._frames import Frame
from rlm.check._syntax import root_name
from rlm.check._values import PATTERN, Taint

SUBCALLS = frozenset({"semantic_subcall", "semantic_subcall_json", "semantic_subcall_bool",
                      "semantic_subcall_choice"})
CONTEXT_FUNCTIONS = frozenset({"open_context", "context_head", "context_tail", "context_slice", "context_search",
                               "context_finditer", "context_chunks", "context_line"})
_API = SUBCALLS | CONTEXT_FUNCTIONS | {"parallel_map", "publish", "run_task"}
#: What may be read off the context object without reading the document.
CONTEXT_ATTRIBUTES = frozenset({"name", "path", "unit", "closed", "accesses", "access_count", "describe", "close",
                                "files", "file_spans", "skipped", "locate"})
#: Calls that may receive the context without reading it.
HARMLESS = frozenset({"len", "isinstance", "issubclass", "id", "type", "bool", "hash", "getattr", "hasattr",
                      "setattr", "callable", "vars", "dir", "typing.cast", "contextlib.closing"})
#: Where ``re.<function>`` and a compiled pattern's method take the string they scan.
RE_STRING_ARG = MappingProxyType({"search": 1, "match": 1, "fullmatch": 1, "finditer": 1, "findall": 1,
                                  "split": 1, "sub": 2, "subn": 2})
PATTERN_STRING_ARG = MappingProxyType({"search": 0, "match": 0, "fullmatch": 0, "finditer": 0, "findall": 0,
                                       "split": 0, "sub": 1, "subn": 1})


class ModuleFacts:
    """The module-level names of one parsed module: what they are bound to, read once."""

    def __init__(self, tree: ast.Module) -> None:
        self.imports: dict[str, str] = {}  # local name -> dotted name it was imported as
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.consts: dict[str, int] = {}
        self.globals: dict[str, Taint] = {}
        self._read_imports(tree)
        self._read_body(tree)

    def _read_imports(self, tree: ast.Module) -> None:
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

    def _read_body(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = stmt
                self.imports.pop(stmt.name, None)
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                value = self.const_int(stmt.value, None)
                is_pattern = isinstance(stmt.value, ast.Call) and self.re_function(stmt.value.func) == "compile"
                for target in targets:
                    if isinstance(target, ast.Name):
                        if value is not None:
                            self.consts[target.id] = value
                        if is_pattern:
                            self.globals[target.id] = frozenset({PATTERN})

    def qualname(self, node: ast.expr, fr: Frame | None) -> str | None:
        """The dotted name a callee refers to (``rlm.subcalls.semantic_subcall``), or None for a local value."""
        if isinstance(node, ast.Name):
            if (fr is not None and fr.lookup(node.id) is not None) or node.id in self.functions \
                    or node.id in self.classes:
                return None
            return self.imports.get(node.id, node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
            root = root_name(node.value)
            if root is None or root not in self.imports or (fr is not None and fr.lookup(root) is not None):
                return None
            base = self.qualname(node.value, fr)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def is_known(self, qualname: str) -> bool:
        """Imported by the module, or a builtin: a function whose behaviour is not the module's own."""
        root = qualname.split(".")[0]
        values = self.imports.values()
        return root in values or qualname in values or hasattr(builtins, qualname)

    def re_function(self, func: ast.expr) -> str | None:
        """``"search"`` for ``re.search`` / ``regex.search`` (however imported), else None."""
        qualname = self.qualname(func, None)
        if qualname is None:
            return None
        module, _, name = qualname.rpartition(".")
        return name if module in ("re", "regex") else None

    def const_int(self, node: ast.expr | None, fr: Frame | None) -> int | None:
        """The integer ``node`` always evaluates to, when constants and simple arithmetic tell."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            local = fr.int_value(node.id) if fr is not None else None
            return local if local is not None else self.consts.get(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.const_int(node.operand, fr)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp):
            left, right = self.const_int(node.left, fr), self.const_int(node.right, fr)
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


def api_name(qualname: str | None) -> str | None:
    """``"context_slice"`` for a name of rlm's task API (however imported), else None."""
    if qualname is None:
        return None
    parts = qualname.split(".")
    if parts[-1] in _API and (len(parts) == 1 or parts[0] == "rlm"):
        return parts[-1]
    return None
