"""The command line: ``python run.py FILE [--task NAME] [...]``.

Prints the run's JSON result on stdout. Exit codes: 0 completed, 3 partial,
1 error, 2 bad usage or input. Every problem is one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rlm._supervise import supervise
from rlm.errors import ConfigError, RLMError, TaskError
from rlm.guards import GuardConfig
from rlm.runtime import run_task
from rlm.trace import redact

__all__ = ["main", "EXIT_COMPLETED", "EXIT_ERROR", "EXIT_USAGE", "EXIT_PARTIAL"]

EXIT_COMPLETED, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
_EXIT_BY_STATUS = {"completed": EXIT_COMPLETED, "partial": EXIT_PARTIAL, "error": EXIT_ERROR}
_DEFAULT_TASK = "analyze_document"
_SNIFF_BYTES = 8192


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def _number(flag: str, kind: type, *, minimum_exclusive: float = 0) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or value <= minimum_exclusive:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{flag} must be {noun} above 0 (got {text!r})")
        return value

    return parse


def _parser() -> _Parser:
    p = _Parser(
        prog="run.py",
        description="Run an RLM task over a file that never enters a prompt whole.",
        epilog="Exit codes: 0 completed, 3 partial (a cost or runtime limit halted the task), "
        "1 error, 2 bad usage or input.",
    )
    p.add_argument("file", nargs="?", help="the document or log to analyse; '-' reads standard input")
    p.add_argument("--task", default=_DEFAULT_TASK,
                   help=f"a task name from tasks/ (default {_DEFAULT_TASK}) or path/to/file.py:function")
    p.add_argument("--cost", type=_number("--cost", float), help="cost budget in USD (env RLM_MAX_COST, default 0.50)")
    p.add_argument("--timeout", type=_number("--timeout", float),
                   help="wall-clock limit in seconds (env RLM_MAX_RUNTIME, default 60)")
    p.add_argument("--tokens", type=_number("--tokens", int), help="max request tokens per subcall (default 4000)")
    p.add_argument("--output-tokens", type=_number("--output-tokens", int),
                   help="max answer tokens per subcall (default 1024)")
    p.add_argument("--model", help="model name (env RLM_MODEL, default gpt-4o-mini)")
    p.add_argument("--workers", type=_number("--workers", int), help="parallel subcalls at most (default 8)")
    p.add_argument("--trace", metavar="PATH", help="write the JSONL audit trail here")
    p.add_argument("--dry-run", action="store_true",
                   help="no model, no key: every subcall returns its default and the worst-case cost is reported")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--clear-cache", action="store_true", help="delete the response cache and exit")
    p.add_argument("--list-tasks", action="store_true", help="list the tasks in tasks/ and exit")
    p.add_argument("--compact", action="store_true", help="print the JSON result on one line")
    p.add_argument("--allow-binary", action="store_true", help="analyse a file even if it looks binary")
    return p


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


def _load_task(spec: str) -> Callable[..., Any]:
    """A task by name from tasks/, or ``path/to/file.py:function``."""
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        file_part, func_name = spec.rsplit(":", 1)
        path = Path(file_part)
        if not path.is_file():
            raise TaskError(f"Task file not found: {path}.")
        module_spec = importlib.util.spec_from_file_location(f"rlm_user_task_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise TaskError(f"Cannot import {path} as Python.")
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise TaskError(f"{path} failed to import: {type(exc).__name__}: {exc}") from None
        fn = getattr(module, func_name, None)
        if not callable(fn):
            raise TaskError(f"{path} has no function {func_name!r}.")
        return fn
    from tasks import discover_tasks

    found, broken = discover_tasks()
    if spec in found:
        return found[spec]
    known = ", ".join(sorted(found)) or "(none)"
    failed = "; ".join(f"{module}: {error}" for module, error in broken.items())
    extra = f" Some task modules failed to import: {failed}." if broken else ""
    raise TaskError(f"Unknown task {spec!r}. Known tasks: {known}. Or pass path/to/file.py:function.{extra}")


def _list_tasks() -> str:
    from tasks import discover_tasks

    found, broken = discover_tasks()
    lines = []
    for name, fn in sorted(found.items()):
        doc = (fn.__doc__ or "").strip().splitlines()
        lines.append(f"{name:<24} {doc[0] if doc else ''}")
    lines += [f"(failed to import {module}: {error})" for module, error in broken.items()]
    return "\n".join(lines)


def _check_file(path: Path, allow_binary: bool) -> None:
    if not path.exists():
        _fail(f"No such file: {path}")
    if path.is_dir():
        _fail(f"{path} is a directory; pass a file.")
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        _fail(f"Cannot read {path}: {exc.strerror or exc}.")
    if b"\0" in head and not allow_binary:
        _fail(f"{path} looks binary (NUL bytes in its first {_SNIFF_BYTES} bytes). "
              "Pass --allow-binary to analyse it anyway.")


def _stdin_to_file() -> Path:
    """Spool standard input to a temporary file so it can be mapped like any other."""
    fd, name = tempfile.mkstemp(prefix="rlm-stdin-", suffix=".txt")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    return Path(name)


def _config(args: argparse.Namespace) -> GuardConfig:
    settings: dict[str, Any] = {
        "max_cost": args.cost, "max_runtime_seconds": args.timeout, "model": args.model,
        "trace_path": args.trace, "dry_run": args.dry_run, "cache": not args.no_cache and not args.dry_run,
    }
    for flag, field in (("tokens", "max_tokens_per_subcall"), ("output_tokens", "max_output_tokens"),
                        ("workers", "max_workers")):
        if getattr(args, flag) is not None:
            settings[field] = getattr(args, flag)
    return GuardConfig(**settings)


class _Progress:
    """A one-line live status on stderr (only when it is a terminal)."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, summary: dict[str, Any]) -> None:
        line = (f"\r[rlm] calls {summary['total_calls']}  ${summary['total_cost_usd']:.4f} / "
                f"${summary['cost_budget_usd']:.2f}  {summary['elapsed_seconds']:.1f}s ")
        sys.stderr.write(line)
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _one_line_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    print(f"run.py: warning: {redact(str(message))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning  # type: ignore[assignment]
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"run.py: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, TaskError) as exc:
        print(f"run.py: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except RLMError as exc:
        print(f"run.py: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: still one line, never a traceback
        print(f"run.py: internal error: {redact(f'{type(exc).__name__}: {exc}')}. Please report it.",
              file=sys.stderr)
        return EXIT_ERROR


def _main(argv: Sequence[str] | None) -> int:
    from dotenv import find_dotenv, load_dotenv

    load_dotenv(find_dotenv(usecwd=True), override=False)  # the real environment wins over .env
    args = _parser().parse_args(argv)
    if args.list_tasks:
        print(_list_tasks())
        return EXIT_COMPLETED
    if args.clear_cache:
        from rlm.cache import clear_cache

        print(clear_cache())
        return EXIT_COMPLETED
    if args.file is None:
        _fail("the FILE argument is required")
    task = _load_task(args.task)
    config = _config(args)
    if not config.dry_run and not (os.environ.get("OPENAI_API_KEY", "").strip()
                                   or os.environ.get("OPENAI_BASE_URL", "").strip()):
        _fail("No model API configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a local "
              "OpenAI-compatible server), or preview the run with --dry-run.")
    stdin_file: Path | None = None
    if args.file == "-":
        stdin_file = path = _stdin_to_file()
    else:
        path = Path(args.file)
    try:
        _check_file(path, args.allow_binary)
        progress = _Progress() if sys.stderr.isatty() else None

        def work(checkpoint: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            try:
                return run_task(task, path, config, progress=progress, checkpoint=checkpoint)
            finally:
                if progress is not None:
                    progress.clear()

        # In a child process, so that even a task stuck in C code ends by the limit (see _supervise).
        result = supervise(work, limit_seconds=float(config.max_runtime_seconds or 0), trace_path=config.trace_path)
    finally:
        if stdin_file is not None:
            stdin_file.unlink(missing_ok=True)
    print(redact(json.dumps(result, indent=None if args.compact else 2, ensure_ascii=False)))
    if result["status"] != "completed" and result.get("error"):
        print(f"run.py: {result['status']}: {result['error']}", file=sys.stderr)
    return _EXIT_BY_STATUS.get(result["status"], EXIT_ERROR)
