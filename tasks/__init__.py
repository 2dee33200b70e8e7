"""Task functions, found by name: every public function defined in a module of this package.

A task takes the context as its one required argument and returns JSON-ready
data. Helpers in task modules should start with ``_`` so they are not listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

__all__ = ["discover_tasks"]


def _is_task(obj: Any, module_name: str) -> bool:
    if not inspect.isfunction(obj) or obj.__module__ != module_name or obj.__name__.startswith("_"):
        return False
    params = [p for p in inspect.signature(obj).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return len(params) == 1


def discover_tasks() -> tuple[dict[str, Callable[..., Any]], dict[str, str]]:
    """``({name: function}, {module: import error})`` for every module in this package."""
    found: dict[str, Callable[..., Any]] = {}
    broken: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module_name = f"{__name__}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # one broken task module must not hide the others
            broken[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        for name, obj in vars(module).items():
            if _is_task(obj, module_name):
                found.setdefault(name, obj)
    return found, broken
