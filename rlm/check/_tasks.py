"""Which functions of a file are tasks, and checking them: the checker as a library."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from rlm.check._findings import CheckError, Finding
from rlm.check._statements import Checker
from rlm.check._syntax import is_task_signature


@dataclass(frozen=True)
class FileCheck:
    """What checking one file found, and how much of it was checked."""

    findings: list[Finding]
    tasks: int  # functions checked as tasks
    functions: int  # functions analysed: the tasks and every helper, method and nested function they reach


def _select(tree: ast.Module, function: str | None, filename: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    functions = [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if function is None:
        # A public function that other functions of the module call (or pass on) is a helper: it is
        # checked with what its callers give it. Module-level code (run_task(task, ...)) does not count.
        used = {(fn.name, n.id) for fn in functions for n in ast.walk(fn)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        helpers = {name for owner, name in used if owner != name}
        return [f for f in functions if not f.name.startswith("_") and is_task_signature(f) and f.name not in helpers]
    chosen = [f for f in functions if f.name == function]
    if not chosen:
        known = ", ".join(f.name for f in functions) or "none"
        raise CheckError(f"{filename} has no module-level function {function!r} (functions: {known}). "
                         "Pass PATH.py:function with one of them.", path=filename)
    return chosen[-1:]


def check_module(source: str, filename: str, function: str | None) -> FileCheck:
    """Parse ``source`` (never executing it) and check its tasks."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        where = f"{filename}:{exc.lineno or 0}:{exc.offset or 0}"
        raise CheckError(f"{where}: cannot parse: {exc.msg}. Fix the syntax error, then check again.",
                         path=filename) from exc
    except ValueError as exc:  # NUL bytes
        raise CheckError(f"{filename}: cannot parse: {exc}. Is it a Python file?", path=filename) from exc
    except RecursionError as exc:
        raise CheckError(f"{filename}: cannot parse: nested too deeply for Python's parser. Split the deepest "
                         "expression into steps, then check again.", path=filename) from exc
    checker = Checker(tree, filename)
    tasks = _select(tree, function, filename)
    try:
        for task in tasks:
            checker.check_task(task)
    except RecursionError as exc:
        raise CheckError(f"{filename}: an expression or call chain is nested too deeply for the checker to follow "
                         "(a + b + ... of some hundred terms, say). Split it into steps, then check again.",
                         path=filename) from exc
    helpers = {id(ref.node) for i, ref in enumerate(checker.refs)
               if i in checker.analysed_refs and not isinstance(ref.node, ast.Lambda)}
    return FileCheck(checker.findings(), len(tasks), len(helpers | {id(task) for task in tasks}))


def check_source(source: str, filename: str = "<task>", function: str | None = None) -> list[Finding]:
    """Check the tasks in ``source`` (Python text, never executed) and return the findings, in line order.

    ``filename`` is what findings name. ``function`` checks only that
    module-level function (and the helpers it calls); otherwise every public
    function callable with the context alone is a task. Raises
    :class:`CheckError` when the source does not parse or the function is missing.
    """
    return check_module(source, filename, function).findings


def _split_spec(spec: str) -> tuple[str, str | None]:
    path, sep, function = spec.rpartition(":")
    if sep and path.endswith(".py") and function.isidentifier():
        return path, function
    return spec, None


def check_file(spec: str) -> FileCheck:
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
    return check_module(source, path_text, function)


def check_path(spec: str) -> list[Finding]:
    """Check ``PATH.py`` or ``PATH.py:function``; a file that cannot be read or parsed raises :class:`CheckError`."""
    return check_file(spec).findings
