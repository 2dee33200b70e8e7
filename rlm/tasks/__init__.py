"""Tasks: the built-in ones (this package), and how a task is found by name or by path.

A task is a public function (no leading ``_``) whose first parameter is the
context; any further parameters are the task's own, given on the command
line as ``--param NAME=VALUE`` or to ``run_task(..., params=...)``.

Tasks are found, in this order:

1. ``path/to/file.py:function``: that file (its folder is importable, as it
   is for ``python file.py``, so it can import a module beside it);
2. a name defined in ``./tasks/*.py`` of the current directory (imported as
   the package ``tasks``, so ``from . import helpers`` works there);
3. a built-in task: the generic ones of this package (``find_answer``,
   ``count_by_label``, ``find_pairs``) and the examples ``analyze_document`` and
   ``find_errors_in_log``.

The examples are one file, the project's template ``tasks/example_task.py``: the
wheel ships that folder as ``rlm._examples`` (pyproject.toml maps it, and an
editable install maps the name to the clone's folder); a clone run in place
(``python run.py``, nothing installed) has the folder beside ``rlm/``, and it is
given the same name here. So the examples are always ``rlm._examples.example_task``,
never a module of the current directory's ``tasks`` package; run from the clone's
own folder, discovery skips that file in ``./tasks`` rather than import it twice.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import pkgutil
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm.errors import TaskError
from rlm.runtime import describe_parameters

__all__ = ["TaskInfo", "Discovery", "discover_tasks", "load_task", "builtin_task", "describe_parameters", "BUILTIN"]

BUILTIN = "built-in"
EXAMPLES = "rlm._examples"  # the package of tasks/example_task.py (see the module docstring)


@dataclass(frozen=True)
class TaskInfo:
    """A task found by name: its function, where it came from, and how it is called."""

    name: str
    function: Callable[..., Any]
    source: str  # "built-in", or the file it is defined in

    @property
    def summary(self) -> str:
        doc = (self.function.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    @property
    def parameters(self) -> str:
        return describe_parameters(self.function)


@dataclass(frozen=True)
class Discovery:
    """Every task found, and the modules that failed to import (with why)."""

    tasks: dict[str, TaskInfo]
    broken: dict[str, str]


def _is_task(obj: Any, module_name: str) -> bool:
    """A public function defined in the module whose first parameter can be the context.

    A first parameter annotated with some other type (``condition: str``) marks a helper, not a task.
    """
    if not inspect.isfunction(obj) or obj.__module__ != module_name or obj.__name__.startswith("_"):
        return False
    params = list(inspect.signature(obj).parameters.values())
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        return False
    annotation = params[0].annotation
    if annotation is inspect.Parameter.empty:
        return True
    shown = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return any(word in shown for word in ("Context", "ContextSource", "Any", "object"))


def _tasks_of(module: types.ModuleType, source: str) -> dict[str, TaskInfo]:
    return {name: TaskInfo(name, obj, source) for name, obj in vars(module).items() if _is_task(obj, module.__name__)}


def _local_package(folder: Path) -> types.ModuleType | None:
    """``./tasks`` as the package ``tasks`` (with or without an ``__init__.py``)."""
    existing = sys.modules.get("tasks")
    if existing is not None and [str(p) for p in getattr(existing, "__path__", [])] == [str(folder)]:
        return existing
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location("tasks", init, submodule_search_locations=[str(folder)])
        if spec is None or spec.loader is None:
            return None
        package = importlib.util.module_from_spec(spec)
        sys.modules["tasks"] = package
        try:
            spec.loader.exec_module(package)
        except BaseException:
            del sys.modules["tasks"]
            raise
        return package
    package = types.ModuleType("tasks", "Tasks of the current directory.")
    package.__path__ = [str(folder)]
    sys.modules["tasks"] = package
    return package


def _examples() -> types.ModuleType:
    """``rlm._examples.example_task``: installed with the package, else the clone's ``tasks/`` beside ``rlm/``."""
    if EXAMPLES not in sys.modules and importlib.util.find_spec(EXAMPLES) is None:
        root = Path(__file__).resolve().parents[2]
        if not (root / "pyproject.toml").is_file():  # not a clone: an install without rlm/_examples
            raise TaskError(f"The example tasks are missing from the rlm installed at {root}: reinstall it.")
        folder = root / "tasks"
        # Only the folder is needed, not its __init__.py: a user's broken one must not hide the examples.
        package = types.ModuleType(EXAMPLES, "The example tasks of a clone run in place.")
        package.__path__ = [str(folder)]
        package.__spec__ = importlib.machinery.ModuleSpec(EXAMPLES, None, is_package=True)
        package.__spec__.submodule_search_locations = package.__path__
        sys.modules[EXAMPLES] = package
    return importlib.import_module(f"{EXAMPLES}.example_task")


def _builtin_modules(broken: dict[str, str]) -> list[types.ModuleType]:
    """The modules of the built-in tasks: this package's, then the examples (failing to import, noted in ``broken``)."""
    modules = [importlib.import_module(f"{__name__}.{entry.name}")
               for entry in pkgutil.iter_modules(__path__) if not entry.name.startswith("_")]
    try:
        modules.append(_examples())
    except Exception as exc:  # a packaging fault must not hide the other built-ins
        broken[f"{EXAMPLES}.example_task"] = f"{type(exc).__name__}: {exc}"
    return modules


def discover_tasks(cwd: Path | None = None) -> Discovery:
    """Every task in ``./tasks`` of ``cwd`` (default: the current directory), then the built-ins."""
    found: dict[str, TaskInfo] = {}
    broken: dict[str, str] = {}
    builtins = _builtin_modules(broken)
    builtin_files = {Path(m.__file__).resolve() for m in builtins if m.__file__}
    folder = (cwd or Path.cwd()) / "tasks"
    if folder.is_dir():
        try:
            package = _local_package(folder.resolve())
        except Exception as exc:  # a broken tasks/__init__.py must not hide the built-ins
            broken[str(folder / "__init__.py")] = f"{type(exc).__name__}: {exc}"
            package = None
        if package is not None:
            for file in sorted(folder.glob("*.py")):
                if file.name.startswith("_") or file.resolve() in builtin_files:
                    continue  # in a clone, tasks/example_task.py is the built-in examples, not a second copy
                try:
                    module = importlib.import_module(f"tasks.{file.stem}")
                except Exception as exc:  # one broken task module must not hide the others
                    broken[str(file)] = f"{type(exc).__name__}: {exc}"
                    continue
                for name, info in _tasks_of(module, str(file)).items():
                    found.setdefault(name, info)
    for module in builtins:
        for name, task in _tasks_of(module, BUILTIN).items():
            found.setdefault(name, task)  # a task of the current directory wins over a built-in one
    return Discovery(found, broken)


def builtin_task(name: str) -> Callable[..., Any]:
    """The function of the built-in task ``name``, whatever ``./tasks`` holds: for a task that builds on one.

    ``find_errors_in_log = builtin_task("find_errors_in_log")``; raises TaskError naming the built-ins if unknown.
    """
    broken: dict[str, str] = {}
    tasks = {n: info for module in _builtin_modules(broken) for n, info in _tasks_of(module, BUILTIN).items()}
    if name in tasks:
        return tasks[name].function
    failed = "".join(f" {module} failed to import: {error}." for module, error in broken.items())
    raise TaskError(f"No built-in task {name!r}. The built-in tasks: {', '.join(sorted(tasks))}.{failed}")


def _load_file(path: Path, function: str) -> TaskInfo:
    if not path.is_file():
        raise TaskError(f"Task file not found: {path}. Check the path in --task FILE.py:FUNCTION.")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as for `python file.py`: a module beside the task can be imported
    name = f"rlm_task_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"Cannot import {path} as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TaskError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        defined = sorted(n for n, v in vars(module).items() if _is_task(v, name))
        raise TaskError(f"{path} has no function {function!r} (it defines: {', '.join(defined) or 'no tasks'}).")
    return TaskInfo(function, fn, str(path))


def load_task(spec: str, cwd: Path | None = None) -> TaskInfo:
    """A task by ``path/to/file.py:function``, or by name (``./tasks`` first, then the built-ins)."""
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        file_part, function = spec.rsplit(":", 1)
        return _load_file(Path(file_part), function)
    if spec.endswith(".py"):
        raise TaskError(f"Name the function too: --task {spec}:FUNCTION.")
    discovery = discover_tasks(cwd)
    if spec in discovery.tasks:
        return discovery.tasks[spec]
    known = ", ".join(sorted(discovery.tasks)) or "(none)"
    failed = "; ".join(f"{module}: {error}" for module, error in discovery.broken.items())
    extra = f" Some task modules failed to import: {failed}." if discovery.broken else ""
    raise TaskError(f"Unknown task {spec!r}. Known tasks: {known}. Or pass path/to/file.py:function.{extra}")
