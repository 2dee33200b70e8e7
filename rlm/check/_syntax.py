"""Questions about the syntax tree alone, with no values involved."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
LOOP_NODES = (ast.For, ast.AsyncFor, ast.While)
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def src(node: ast.AST, limit: int = 60) -> str:
    """The node's source text, shortened for a message."""
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def walk_local(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodes``, not descending into nested functions, lambdas or classes."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, _SCOPE_NODES))


def dotted(node: ast.expr) -> str | None:
    """``"a.b"`` for an attribute of a plain name, ``"a"`` for a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def root_name(node: ast.expr) -> str | None:
    """``a`` for ``a.b[c].d``, else None."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def positional_params(args: ast.arguments) -> list[str]:
    return [a.arg for a in (*args.posonlyargs, *args.args)]


def is_task_signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Callable with the context alone: one required positional parameter (as tasks/ discovers them)."""
    params = positional_params(fn.args)
    required = len(params) - len(fn.args.defaults)
    return required == 1


def argument(e: ast.Call, position: int, name: str) -> ast.expr | None:
    """The argument passed at ``position`` or as ``name=``, if it can be told."""
    if len(e.args) > position and not any(isinstance(a, ast.Starred) for a in e.args[: position + 1]):
        return e.args[position]
    for kw in e.keywords:
        if kw.arg == name:
            return kw.value
    return None


def is_len_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and bool(node.args)


def assigned_in(body: Iterable[ast.AST]) -> set[str]:
    """The names a block of statements binds (not in nested scopes)."""
    return {node.id for node in walk_local(body) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}


def string_constants(node: ast.AST) -> str:
    """Every string literal under ``node``, joined by spaces."""
    return " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))
