"""The command line: ``rlm FILE [--task NAME] [...]``, also ``python run.py ...`` and ``python -m rlm ...``.

Prints the run's JSON result on stdout. Exit codes (one per cause, see
:mod:`rlm._exits`): 0 completed, 1 the task failed, 2 nothing was run (bad
usage or input), 3 partial, 70 a bug in rlm, 130/143 Ctrl-C/SIGTERM. Every
problem is one line on stderr, never a traceback (``--debug`` or
``RLM_DEBUG=1`` adds the task's traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from rlm._config import GuardConfig, env_flag, load_dotenv_file, runtime_limit
from rlm._deps import missing_dependency
from rlm._endpoint import Endpoint
from rlm._exits import (
    EXIT_COMPLETED,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_PARTIAL,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
)
from rlm._remote import is_url
from rlm._supervise import Channel, supervise
from rlm.cache import ResponseCache
from rlm.errors import (
    ConfigError,
    ContextAccessError,
    RLMError,
    RunInterrupted,
    RuntimeLimitError,
    SubcallError,
    TaskError,
)
from rlm.pricing import format_usd
from rlm.runtime import run_task, unstarted_result
from rlm.tasks import BUILTIN, TaskInfo, discover_tasks, load_task
from rlm.trace import RunRecord, read_runs, redact

__all__ = ["main", "EXIT_COMPLETED", "EXIT_ERROR", "EXIT_USAGE", "EXIT_PARTIAL", "EXIT_INTERNAL", "EXIT_SIGINT",
           "EXIT_SIGTERM"]

_EXIT_BY_STATUS = {"completed": EXIT_COMPLETED, "partial": EXIT_PARTIAL, "error": EXIT_ERROR}
_DEFAULT_TASK = "analyze_document"


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


def _param(text: str) -> tuple[str, Any, str]:
    """``NAME=VALUE``: the value as JSON when it parses (numbers, true, lists...), else as a string.

    The text as given is kept too: a parameter the task annotates ``str`` gets it as written.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"--param takes NAME=VALUE, e.g. --param question='Who signed?' (got {text!r})")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name, value, raw


def _parser() -> _Parser:
    p = _Parser(
        prog=_prog(),
        description="Run an RLM task over a file that never enters a prompt whole.",
        epilog="Also: `rlm check PATH.py[:function]` checks a task against the four rules without running it, "
        "`rlm report TRACE.jsonl -o PATH.html` draws a trace. "
        "Exit codes: 0 completed, 1 the task failed, 2 nothing was run (bad usage or input), "
        "3 partial (a cost or runtime limit halted the task), 70 a bug in rlm, "
        "130/143 stopped by Ctrl-C/SIGTERM (the partial result is printed).",
    )
    from rlm import __version__

    p.add_argument("--version", action="version", version=f"rlm {__version__}")
    p.add_argument("file", nargs="*", metavar="FILE",
                   help="the document or log to analyse: one or more files or directories, read as one context "
                        "(a directory is every text file under it); '-' reads standard input")
    p.add_argument("--task", default=_DEFAULT_TASK, metavar="FUNCTION",
                   help="the task to run: the name of a task function, looked up in ./tasks/*.py of the current "
                        f"directory, then among the built-ins (see --list-tasks; default {_DEFAULT_TASK}); "
                        "or path/to/file.py:function for a function in any file")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="NAME=VALUE",
                   help="a task parameter (repeatable); the value is JSON when it parses, else a string")
    p.add_argument("--cost", type=_number("--cost", float), help="cost budget in USD (env RLM_MAX_COST, default 0.50)")
    p.add_argument("--timeout", type=_number("--timeout", float),
                   help="wall-clock limit in seconds (env RLM_MAX_RUNTIME, default 60)")
    p.add_argument("--tokens", type=_number("--tokens", int), help="max request tokens per subcall (default 4000)")
    p.add_argument("--output-tokens", type=_number("--output-tokens", int),
                   help="max answer tokens per subcall (default 1024)")
    p.add_argument("--model", help="model name (env RLM_MODEL; default gpt-4o-mini on OpenAI, else the server's only "
                                   "model)")
    p.add_argument("--workers", type=_number("--workers", int), help="parallel subcalls at most (default 8)")
    p.add_argument("--trace", metavar="PATH", help="write the JSONL audit trail here")
    p.add_argument("--dry-run", action="store_true",
                   help="no model, no key: every subcall returns its default and the worst-case cost is reported")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--clear-cache", action="store_true", help="delete the response cache and exit")
    p.add_argument("--list-tasks", action="store_true", help="list the tasks with their parameters and exit")
    p.add_argument("--compact", action="store_true", help="print the JSON result on one line")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the JSON result to FILE instead of standard output (stderr says where)")
    p.add_argument("--allow-binary", action="store_true", help="analyse a file even if it looks binary")
    p.add_argument("--debug", action="store_true", help="print the task's traceback on an error (env RLM_DEBUG=1)")
    p.add_argument("--check", metavar="PATH[:function]",
                   help="check a task file against the four rules without running it, and exit (as `rlm check`)")
    p.add_argument("--strict", action="store_true", help="refuse to run a task the checker finds problems in")
    p.add_argument("--report", metavar="PATH.html", help="write a self-contained HTML audit report of the run here")
    p.add_argument("--resume", metavar="TRACE.jsonl",
                   help="continue a halted run from its trace: the same task and input (refused if either "
                        "changed); answered calls replay from the cache at $0, only the rest are paid for")
    p.add_argument("--confirm-above", type=_number("--confirm-above", float), metavar="USD",
                   help="preview first; if the worst case is above USD, ask before running (refuse off a terminal)")
    return p


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


def _list_tasks() -> str:
    discovery = discover_tasks()
    lines = []
    for name, info in sorted(discovery.tasks.items(), key=lambda item: (item[1].source == BUILTIN, item[0])):
        where = "" if info.source == BUILTIN else f"  [{os.path.relpath(info.source)}]"
        lines.append(f"{name}{info.parameters}{where}")
        if info.summary:
            lines.append(f"    {info.summary}")
    lines += [f"(failed to import {module}: {error})" for module, error in discovery.broken.items()]
    return "\n".join(lines)


def _check_url(url: str) -> None:
    """An object, prefix or glob in storage: listed now, so that a missing bucket or key, denied access or
    missing credentials (or the missing extra) stop the run before any work, in one line."""
    from rlm.context_access import open_context

    try:
        context = open_context([url])
    except ContextAccessError as exc:
        _fail(str(exc))
    context.close()
    if context.skipped:
        print(f"{_prog()}: warning: left out {len(context.skipped)} binary or compressed object(s) of {url}.",
              file=sys.stderr)


def _check_file(path: Path, allow_binary: bool, *, stdin: bool = False, limit: float = 60.0) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        _fail(f"No such file: {path}")
    except OSError as exc:
        _fail(f"Cannot read {path}: {exc.strerror or exc}.")
    if stat.S_ISDIR(info.st_mode):
        if not any(True for _ in path.iterdir()):
            _fail(f"{path} is an empty directory; pass files, or a directory that holds some.")
        from rlm._scope import deadline_only
        from rlm.context_access import open_context

        try:  # a directory of binary files only, say; listing it is bounded by the runtime limit too
            with deadline_only(limit, f"Listing {path}"):
                context = open_context(path)
        except (ContextAccessError, RuntimeLimitError) as exc:
            _fail(str(exc))
        context.close()
        if context.skipped:
            shown = ", ".join(context.skipped[:3]) + (f" and {len(context.skipped) - 3} more"
                                                       if len(context.skipped) > 3 else "")
            print(f"{_prog()}: warning: left out {len(context.skipped)} file(s) of {path} (binary or compressed "
                  f"files, links to outside it): {shown}. Decompress compressed logs first "
                  f"(zcat ... | {_prog()} - --task NAME).", file=sys.stderr)
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        _fail(f"{path} is {kind}, not a regular file; save its contents to a file, or pipe them to '-'.")
    name = "standard input" if stdin else str(path)
    if info.st_size == 0:
        print(f"{_prog()}: warning: {name} is empty, so the task sees no text.", file=sys.stderr)
    from rlm._files import SNIFF_BYTES, sniff

    try:
        sniffed = sniff(path)
    except OSError as exc:
        _fail(f"Cannot read {name}: {exc.strerror or exc}.")
    packed = sniffed.compressed
    if packed is not None and not allow_binary:
        fix = f"pipe it through {packed[1]}" if stdin else f"pipe it in: {packed[1]} {path} | {_prog()} - --task NAME"
        _fail(f"{name} is {packed[0]}-compressed, and rlm reads text. Decompress it first, or {fix}.")
    if sniffed.has_nul and not allow_binary:
        _fail(f"{name} looks binary (NUL bytes in its first {SNIFF_BYTES} bytes). "
              "Pass --allow-binary to analyse it anyway.")


def _stdin_to_file() -> Path:
    """Spool standard input to a temporary file so it can be mapped like any other."""
    fd, name = tempfile.mkstemp(prefix="rlm-stdin-", suffix=".txt")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    return Path(name)


def _config(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> GuardConfig:
    """The run's config from the flags (the environment and .env fill the rest, in GuardConfig)."""
    if args.report and not args.trace:  # the report is drawn from a trace: keep one for this run only
        fd, name = tempfile.mkstemp(prefix="rlm-trace-", suffix=".jsonl")
        os.close(fd)
        cleanup.callback(Path(name).unlink, missing_ok=True)
        args.trace = name
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
    """A one-line live status on stderr (only when it is a terminal); it never goes backwards."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.shown = False
        self._calls = -1
        self._lock = threading.Lock()

    def __call__(self, summary: dict[str, Any]) -> None:
        with self._lock:  # parallel subcalls report from several threads, not always in order
            if summary["total_calls"] < self._calls:
                return
            self._calls = summary["total_calls"]
            self.stream.write(f"\r[rlm] calls {summary['total_calls']}  ${summary['total_cost_usd']:.4f} / "
                              f"{format_usd(summary['cost_budget_usd'])}  {summary['elapsed_seconds']:.1f}s ")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python does not complain at exit about a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _prog() -> str:
    """How the user called us: ``run.py`` or ``rlm``, for messages."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "rlm"
    return "run.py" if name == "run.py" else "rlm"


def _one_line_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    print(f"{_prog()}: warning: {redact(str(message))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    ``rlm check PATH[:function] ...`` and ``rlm report TRACE -o PATH.html`` are the checker's and the
    report's own command lines.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    session = _Session()
    try:
        with _signals_end_the_command(session):
            try:
                _release_held_signals()
                return _dispatch(args, session)
            except _Stopped as stop:
                return _publish(_stopped_before_the_task(session, stop.signum), session)
    finally:
        warnings.showwarning = shown


def _dispatch(args: list[str], session: _Session) -> int:
    """The command's exit code; every problem is one line on stderr."""
    try:
        if args and args[0] in _SUBCOMMANDS:
            return _subcommand(args[0], args[1:])
        return _main(args, session)
    except (UsageError, ConfigError, TaskError) as exc:
        print(f"{_prog()}: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except RLMError as exc:
        print(f"{_prog()}: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:  # a package imported on demand (the SDK, python-dotenv, an extra)
        print(f"{_prog()}: error: {redact(missing_dependency(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`rlm --list-tasks | head`): it had what it wanted; say nothing more.
        _quiet_stdout()
        return EXIT_COMPLETED
    except _Stopped:
        raise
    except KeyboardInterrupt:  # raised where no handler of ours was installed (not the main thread)
        print(f"{_prog()}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:  # a bug of ours: still one line, never a traceback
        print(f"{_prog()}: internal error: {redact(f'{type(exc).__name__}: {exc}')}. Please report it.",
              file=sys.stderr)
        return EXIT_INTERNAL


_SUBCOMMANDS = ("check", "report", "mcp")


def _subcommand(name: str, argv: list[str]) -> int:
    """``rlm check ...``, ``rlm report ...`` and ``rlm mcp ...``: each is its module's own command line."""
    if name == "mcp":  # the MCP server: the SDK is an extra, imported there only
        from rlm.mcp_server import main as mcp_main

        return mcp_main(argv)
    if name == "check":
        from rlm.check import main as check_main

        return check_main(argv)
    from rlm.report import main as report_main

    return report_main(argv)


def _main(argv: Sequence[str], session: _Session) -> int:
    load_dotenv_file()
    args = _parser().parse_args(argv)
    session.compact = args.compact
    session.output = os.path.expanduser(os.path.expandvars(args.output)) if args.output else None
    done = _without_a_run(args)
    if done is not None:
        return done
    session.stage = "while checking the input"
    _prepare(args)
    with contextlib.ExitStack() as cleanup:
        config = session.config = _config(args, cleanup)
        session.stage = "while asking the server which model it serves"
        config = session.config = _resolve_model(config)
        session.stage = "while reading the input"
        source = _source(args, cleanup)
        job = _Job(args.task, source, args.file == ["-"], config, args.param, args.debug or env_flag("RLM_DEBUG"),
                   strict=args.strict, resume=args.resume, trace=config.trace_path)
        if args.confirm_above is not None and not config.dry_run:
            session.stage = "during the --confirm-above preview"
            unfinished = _confirm(job, args.confirm_above, session)
            if unfinished is not None:
                return _publish(unfinished, session)
            job = dataclasses.replace(job, quiet=True)  # the preview said the warnings about the task
        result = _execute(job, session)
        if args.report:
            _write_report(Path(str(config.trace_path)), Path(os.path.expanduser(os.path.expandvars(args.report))))
    return _publish(result, session)


def _without_a_run(args: argparse.Namespace) -> int | None:
    """The flags that answer and exit (--list-tasks, --clear-cache, --check); None when a run is asked for."""
    if args.list_tasks:
        print(_list_tasks())
        return EXIT_COMPLETED
    if args.clear_cache:
        from rlm.cache import clear_cache

        print(clear_cache())
        return EXIT_COMPLETED
    if args.check is not None:
        return _subcommand("check", [args.check])
    return None


def _prepare(args: argparse.Namespace) -> None:
    """What can be refused before any work without loading the task: the input files, --resume's flags.

    The task is loaded only in the supervised child (see _prepare_task), under the hard stop.
    """
    if not args.file:
        _fail("the FILE argument is required")
    if "-" in args.file and len(args.file) > 1:
        _fail("'-' (standard input) cannot be combined with other files")
    limit = runtime_limit(args.timeout)
    for given in args.file:  # bad input is reported before anything else is done
        if given != "-":
            _check_url(given) if is_url(given) else _check_file(Path(given), args.allow_binary, limit=limit)
    if args.resume is not None:
        trace = Path(args.resume)
        if not trace.is_file():
            _fail(f"No trace at {trace} to resume from; pass the --trace file of the halted run.")
        if args.no_cache or args.dry_run:
            _fail("--resume replays answered calls from the response cache: drop --no-cache / --dry-run.")
        if not args.trace:
            args.trace = str(trace)  # the resumed run continues the same trail


def _source(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> Path | list[Path | str]:
    """What the task reads: a path, a list of paths, or standard input spooled to a file (removed afterwards)."""
    paths: list[Path | str] = [f if is_url(f) else Path(f) for f in args.file]  # a URL stays a str, in a list
    if args.file != ["-"]:
        return paths[0] if len(paths) == 1 and isinstance(paths[0], Path) else paths
    stdin_file = _stdin_to_file()
    cleanup.callback(stdin_file.unlink, missing_ok=True)
    _check_file(stdin_file, args.allow_binary, stdin=True)
    return stdin_file


@dataclasses.dataclass(frozen=True)
class _Job:
    """What the supervised child needs to load the task by its name and run it (it must pickle)."""

    task: str  # as given to --task: the child loads it itself
    source: Path | list[Path | str]  # a URL stays a str
    stdin: bool  # the source is standard input spooled to a file: cited as <stdin>
    config: GuardConfig
    params: list[tuple[str, Any, str]]  # as --param gave them
    debug: bool
    strict: bool = False
    resume: str | None = None  # the trace of the halted run to resume
    trace: str | None = None  # the run's trace, which may hold a halted run of the task
    quiet: bool = False  # no warnings about the task (the preview before it said them)


def _run_job(job: _Job, channel: Channel) -> dict[str, Any]:
    """In the supervised child: load the task, check it, run it, and return its result (the signal too)."""
    from rlm.context_access import open_context

    def warn(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        channel.notice(f"{_prog()}: warning: {redact(str(message))}")

    warnings.showwarning = warn
    try:
        task, params = _prepare_task(job, (lambda text: None) if job.quiet else channel.notice)
    except UsageError as exc:  # nothing was run: the parent reports it, exit 2
        raise TaskError(str(exc)) from None
    # Standard input is cited as <stdin>, not as a file that is gone afterwards.
    source = open_context(job.source, name="<stdin>") if job.stdin else job.source
    try:
        with _signals_stop_the_run():
            return run_task(task.function, source, job.config, params=params, checkpoint=channel.checkpoint,
                            include_traceback=job.debug)
    except RunInterrupted as stopped:  # the run closed its trace and ledger; report what it had
        return {**stopped.result, "signal": stopped.signal_name}


def _prepare_task(job: _Job, say: Callable[[str], None]) -> tuple[TaskInfo, dict[str, Any]]:
    """Load the task and refuse what does not fit before it runs: its parameters, --strict, --resume."""
    task = load_task(job.task)
    params = _check_params(task, job.params)
    _check_rules(task, strict=job.strict, say=say)
    if job.resume is not None:
        _resume_from(Path(job.resume), task, job.source, say)
    elif job.trace:
        _warn_if_changed(Path(job.trace), task, job.source, say)
    return task, params


def _execute(job: _Job, session: _Session) -> dict[str, Any]:
    """Run the task in a supervised child process, so that even a task stuck in C code ends by the limit."""
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    # From here the supervisor answers signals (it stops the run); after it, they only set the exit code.
    session.raising = False
    try:
        result = supervise(_run_job, job, job.config, progress=progress, notice=_notice, pending=session.received)
    finally:
        if progress is not None:
            progress.clear()
    result["debug"] = job.debug
    return result


def _notice(text: str) -> None:
    print(text, file=sys.stderr)


def _publish(result: dict[str, Any], session: _Session) -> int:
    """Print the JSON result on stdout and what needs a person's attention on stderr; the exit code.

    A signal received meanwhile is noted, not obeyed: the result is printed whole, and the exit code says so.
    """
    session.raising = False
    trace_text = result.pop("traceback", None)
    stopped_by = result.pop("signal", None)
    debug = result.pop("debug", False)
    text = redact(json.dumps(result, indent=None if session.compact else 2, ensure_ascii=False))
    _write_result(text, session.output)
    for where in _cut_places(result.get("result")):
        print(f"{_prog()}: warning: the result is cut at {where} (truncated: true): the task kept only part of "
              "what it found there; narrow the input or raise the task's limits to see the rest.", file=sys.stderr)
    if result["status"] != "completed" and result.get("error"):
        print(f"{_prog()}: {result['status']}: {result['error']}", file=sys.stderr)
    if debug and trace_text:
        print(redact(trace_text).rstrip(), file=sys.stderr)
    if session.config is not None:
        _warn_about(result.get("budget_summary") or {}, session.config)
    if stopped_by is None and session.received:
        stopped_by = _SIGNAL_NAMES.get(session.received[0])
    if stopped_by is not None:
        return EXIT_SIGTERM if stopped_by == "SIGTERM" else EXIT_SIGINT
    return _EXIT_BY_STATUS.get(result["status"], EXIT_ERROR)


#: A result larger than this on a terminal's or a pipe's stdout gets a warning naming -o.
_LARGE_RESULT_BYTES = 4 << 20


def _write_result(text: str, output: str | None) -> None:
    """The JSON result to stdout, or to ``-o FILE`` (written whole, then moved into place)."""
    if output is None:
        try:
            print(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `rlm ... | head`: the exit code still says how the run ended
            _quiet_stdout()
        if len(text) > _LARGE_RESULT_BYTES:
            print(f"{_prog()}: warning: the result is {len(text) / 1e6:.1f} MB of JSON on standard output; "
                  "write it to a file with -o FILE.", file=sys.stderr)
        return
    target = Path(output)
    try:
        partial = target.with_name(f".{target.name}.part")
        partial.write_text(text + "\n", encoding="utf-8")
        partial.replace(target)
    except OSError as exc:  # the result must not be lost: it goes to stdout instead
        print(f"{_prog()}: warning: cannot write {target} ({exc.strerror or exc}); the result follows on standard "
              "output.", file=sys.stderr)
        _write_result(text, None)
        return
    print(f"{_prog()}: result: {target} ({len(text):,} bytes)", file=sys.stderr)


def _cut_places(value: Any, where: str = "result") -> list[str]:
    """Where a result says it was cut (``"truncated": true`` at any depth), as paths like ``result.items``."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("truncated") is True:
            found.append(where)
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                found += _cut_places(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value[:1000]):
            if isinstance(item, (dict, list)):
                found += _cut_places(item, f"{where}[{index}]")
    return found[:5]


def _warn_about(summary: dict[str, Any], config: GuardConfig) -> None:
    """Warn about a result that looks clean but is not: defaulted answers, a dry run that does not fit."""
    defaulted = summary.get("answers_defaulted", 0)
    if defaulted:
        print(f"{_prog()}: warning: {defaulted} model answer(s) did not read as the task asked and fell back to "
              "its default=, so the result lacks what they should have said. Look at the answers with "
              "--report or --trace: the model may not follow the format.", file=sys.stderr)
    breaches = summary.get("output_cap_breaches", 0)
    if breaches:
        print(f"{_prog()}: warning: the server sent {breaches} answer(s) longer than the output cap "
              f"({summary.get('max_output_tokens')} tokens): reading stopped there, and each was billed at no less "
              f"than what arrived (${summary.get('overrun_usd', 0):.6f} above what was reserved). The server "
              "ignores the cap: check its settings, or lower --output-tokens.", file=sys.stderr)
    dry = summary.get("dry_run")
    if isinstance(dry, dict) and not dry.get("fits_budget", True):
        print(f"{_prog()}: warning: the dry run's worst case, ${dry['worst_case_cost_usd']:.6f} for {dry['subcalls']} "
              f"subcalls, is more than the {format_usd(config.max_cost)} budget: a real run may stop early "
              "(partial). Raise --cost, or narrow the task.", file=sys.stderr)


_SIGNAL_NAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclasses.dataclass
class _Session:
    """One command's state as far as signals care: where it is, and what a stop must print."""

    stage: str = "while starting"  # said in the result of a stop before the task started
    config: GuardConfig | None = None
    compact: bool = False
    output: str | None = None  # -o FILE: where the JSON result goes instead of stdout
    #: While True a signal raises _Stopped; afterwards a run or its result exists, and signals are only noted.
    raising: bool = True
    received: list[int] = dataclasses.field(default_factory=list)


class _Stopped(KeyboardInterrupt):  # noqa: N818 - it stands for a KeyboardInterrupt
    """SIGINT or SIGTERM received by the command line before its task started: it ends with a result."""

    def __init__(self, signum: int) -> None:
        super().__init__(_SIGNAL_NAMES.get(signum, str(signum)))
        self.signum = signum


@contextlib.contextmanager
def _signals_end_the_command(session: _Session) -> Iterator[None]:
    """From here to the exit, SIGINT and SIGTERM end the command with a JSON result and exit 130 / 143.

    Before a run exists a signal raises _Stopped wherever the command is (scanning a folder, asking the server
    for its model); afterwards it is noted, and sets the exit code. run.py blocks both signals until this point
    (see _release_held_signals), so that none is lost while Python imports; they are blocked again at the end,
    so that one arriving as the process exits cannot kill it without its exit code.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = hasattr(signal, "pthread_sigmask") and set(_STOP_SIGNALS) <= signal.pthread_sigmask(signal.SIG_BLOCK, [])

    def on_signal(signum: int, frame: object) -> None:
        session.received.append(signum)
        if session.raising and len(session.received) == 1:
            raise _Stopped(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_BLOCK, set(_STOP_SIGNALS))
        for signum, old in previous.items():
            signal.signal(signum, old)


def _release_held_signals() -> None:
    """Unblock SIGINT and SIGTERM, which run.py blocks while Python imports rlm: one held back arrives now."""
    if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(_STOP_SIGNALS))


def _stopped_before_the_task(session: _Session, signum: int) -> dict[str, Any]:
    """The result of a command stopped before its task started: partial, no result, nothing spent."""
    session.raising = False
    name = _SIGNAL_NAMES.get(signum, str(signum))
    error = (f"InterruptError: Stopped by {name} {session.stage}, before the task started; nothing was run "
             "or spent.")
    config = session.config
    if config is None:
        with contextlib.suppress(RLMError):  # a bad setting in the environment: no summary then
            config = GuardConfig()
    if config is None:
        return {"status": "partial", "result": None, "error": error, "budget_summary": None, "signal": name}
    return {**unstarted_result(config, error), "signal": name}


class _Terminated(KeyboardInterrupt):  # noqa: N818 - it stands for a KeyboardInterrupt
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt so that run_task stops the run."""

    signal_name = "SIGTERM"


@contextlib.contextmanager
def _signals_stop_the_run() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does; a second Ctrl-C is left to the supervising parent."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def stop(signum: int, frame: object) -> None:
        if seen:
            return  # already stopping: the parent kills this process if it does not finish in time
        seen.append(signum)
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _halted_run(trace: Path, task: TaskInfo) -> RunRecord | None:
    """The last run of ``task`` in ``trace`` that a limit halted (or that never ended), if any."""
    try:
        runs = read_runs(trace)
    except OSError:
        return None
    mine = [r for r in runs if r.task == getattr(task.function, "__qualname__", task.name)]
    return mine[-1] if mine and mine[-1].status in ("partial", None) else None


def _changes(halted: RunRecord, task: TaskInfo, source: Any) -> list[str]:
    """What differs between a halted run and this one: the task's source, the input."""
    from rlm.context_access import open_context
    from rlm.runtime import task_source_sha256

    changed = []
    before = halted.start.get("task_source_sha256")
    if before and before != task_source_sha256(task.function):
        changed.append("the task's source")
    ctx = open_context(source)
    try:
        if halted.start.get("input_fingerprint") not in (None, ctx.fingerprint()):
            changed.append("the input")
    finally:
        if ctx is not source:  # a context handed in (standard input) stays open for the run
            ctx.close()
    return changed


def _resume_from(trace: Path, task: TaskInfo, source: Any, say: Callable[[str], None]) -> None:
    halted = _halted_run(trace, task)
    if halted is None:
        _fail(f"{trace} holds no halted run of task {task.name} to resume.")
    changed = _changes(halted, task, source)
    if changed:
        _fail(f"Refusing to resume run {halted.run_id}: {' and '.join(changed)} changed since it ran. "
              "Run without --resume to start afresh (unchanged calls still replay from the cache).")
    say(f"{_prog()}: resuming run {halted.run_id}: answered calls replay from the cache at $0")


def _warn_if_changed(trace: Path, task: TaskInfo, source: Any, say: Callable[[str], None]) -> None:
    halted = _halted_run(trace, task) if trace.is_file() else None
    if halted is None:
        return
    changed = _changes(halted, task, source)
    if changed:
        say(f"{_prog()}: warning: {' and '.join(changed)} changed since run {halted.run_id} was halted; "
            "only calls that are exactly the same replay from the cache.")


def _confirm(job: _Job, threshold: float, session: _Session) -> dict[str, Any] | None:
    """A dry run first; above ``threshold`` dollars of worst case, ask on a terminal (refuse elsewhere).

    The preview runs under the same hard stop as the run. A preview that did not finish is returned, to be
    printed instead of running (its worst case is unknown); None means go ahead.
    """
    config = job.config
    dry_config = dataclasses.replace(config, dry_run=True, cache=False, trace_path=None)
    preview = supervise(_run_job, dataclasses.replace(job, config=dry_config, debug=False), dry_config,
                        notice=_notice, pending=session.received)
    stopped_by = preview.get("signal")
    if stopped_by is not None:
        raise _Stopped(signal.SIGTERM if stopped_by == "SIGTERM" else signal.SIGINT)
    if preview["status"] == "partial":
        return {**preview, "error": f"The --confirm-above preview (a dry run) did not finish, so the task was not "
                                    f"run and nothing was spent: {preview['error']}"}
    dry = (preview.get("budget_summary") or {}).get("dry_run") or {}
    worst = float(dry.get("worst_case_cost_usd", 0.0))
    if worst <= threshold:
        return None
    question = (f"The worst case of this run is {format_usd(worst)} for {dry.get('subcalls')} subcalls, above "
                f"--confirm-above {format_usd(threshold)} (the budget is {format_usd(config.max_cost)}).")
    if not sys.stdin.isatty():
        _fail(question + " Not on a terminal, so not running; raise --confirm-above to go ahead.")
    sys.stderr.write(question + " Run it? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        _fail("Not confirmed; nothing was spent.")
    return None


def _write_report(trace: Path, out: Path) -> None:
    from rlm.report import render_report

    try:
        stats = render_report(trace, out)
    except (RLMError, OSError) as exc:  # a full disk, say: the run's result still prints
        print(f"{_prog()}: warning: no report written: {redact(str(exc))}", file=sys.stderr)
        return
    print(f"{_prog()}: report: {stats.path} ({stats.subcalls} subcalls)", file=sys.stderr)


def _resolve_model(config: GuardConfig) -> GuardConfig:
    """Ask a server with no model set which it serves, now: a bad model or a missing price is exit 2 before any work.

    Skipped when the API is not configured at all (the key is asked for at the first subcall, so a task that
    makes none runs without one), and when the response cache remembers the server's model (a replay asks
    nothing; the first request that must reach the server confirms it).
    """
    if config.model is not None or (config.dry_run and config.has_price_override):
        return config
    endpoint = Endpoint(config)
    if endpoint.problem() is not None:
        return config
    with _model_memory(config) as memory:
        if memory is not None and memory.served_model(str(config.base_url)) is not None:
            return config
        try:
            # The server's model must have a known price (or prices set): ConfigError, exit 2, before any work.
            model = endpoint.resolve_model(timeout=10.0, on_adopt=config.pricing)
        except SubcallError as exc:
            need = "the model's price" if config.dry_run else "a model"
            _fail(f"{exc} A run needs {need}.")
        finally:
            endpoint.close()
        if memory is not None:
            memory.remember_model(str(config.base_url), model)
    return dataclasses.replace(config, model=model)


@contextlib.contextmanager
def _model_memory(config: GuardConfig) -> Iterator[ResponseCache | None]:
    """The response cache, which remembers each server's model, when the run will use it."""
    if not config.cache or config.base_url is None:
        yield None
        return
    cache = ResponseCache(config.cache_path)
    try:
        yield cache
    finally:
        cache.close()


def _check_rules(task: TaskInfo, *, strict: bool, say: Callable[[str], None]) -> None:
    """Warn about (or, with --strict, refuse) a task that breaks the four rules, before it spends anything."""
    import inspect

    from rlm.check import CheckError, check_path

    source = inspect.getsourcefile(task.function)
    if source is None:
        return
    try:
        findings = check_path(f"{source}:{task.function.__name__}")
    except CheckError:
        return  # the task imported, so Python could read it; a file the checker cannot is no reason to stop
    for finding in findings:
        say(f"{_prog()}: {'error' if strict else 'warning'}: {os.path.relpath(finding.file)}:{finding.line}: "
            f"{finding.rule}: {finding.message} (fix: {finding.fix})")
    if findings and strict:
        _fail(f"{len(findings)} problem(s) found by the checker in {task.name}; fix them, or run without --strict.")


def _check_params(task: TaskInfo, given: list[tuple[str, Any, str]]) -> dict[str, Any]:
    """The task's keyword arguments from --param: JSON values, but the text itself where it wants a str."""
    from rlm.runtime import bind_params, task_signature

    signature = task_signature(task.function)
    wanted = signature.parameters if signature is not None else {}
    params = {}
    for name, value, raw in given:
        annotation = wanted[name].annotation if name in wanted else None
        params[name] = raw if annotation in (str, "str") else value
    bind_params(task.function, params)
    return params
