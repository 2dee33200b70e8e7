"""``rlm check`` / ``python -m rlm.check``: the checker's command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from rlm._exits import EXIT_COMPLETED, EXIT_FINDINGS, EXIT_INTERNAL, EXIT_SIGINT, EXIT_USAGE
from rlm.check._findings import CheckError, Finding, format_findings
from rlm.check._tasks import FileCheck, check_file

_PROG = "rlm check"


def _clean_line(spec: str, result: FileCheck) -> str:
    if not result.tasks:
        return (f"{spec}: clean, but it has no task to check (a task is a public module-level function whose one "
                "required parameter is the context; name one with PATH.py:function)")
    functions = f"{result.functions} function{'s' if result.functions != 1 else ''}"
    return f"{spec}: clean (4 rules, {functions} checked)"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rlm.check PATH[:function] [...] [--json]``; returns the exit code.

    0 every file clean (one line each says so), 1 (EXIT_FINDINGS) findings, one line each; 2 (EXIT_USAGE) a
    file it cannot check or bad usage; 70 (EXIT_INTERNAL) a bug in the checker. With ``--json``, stdout is the
    JSON list of findings (``[]`` when clean) and nothing else.
    """
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Check task files against the RLM rules without running them.",
        epilog=f"Exit codes: {EXIT_COMPLETED} clean, {EXIT_FINDINGS} findings, {EXIT_USAGE} a file that cannot be "
               f"read or parsed, or bad usage, {EXIT_INTERNAL} a bug in the checker.")
    parser.add_argument("paths", nargs="+", metavar="PATH[:function]", help="a task file, or one task in it")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line usage error (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    findings: list[Finding] = []
    codes = {EXIT_COMPLETED}
    for spec in args.paths:
        try:
            result = check_file(spec)
        except CheckError as exc:
            print(f"{_PROG}: error: {exc}", file=sys.stderr)
            codes.add(EXIT_USAGE)
            continue
        except KeyboardInterrupt:
            print(f"{_PROG}: interrupted", file=sys.stderr)
            return EXIT_SIGINT
        except Exception as exc:  # noqa: BLE001 (a bug of ours: one line, never a traceback; other files go on)
            print(f"{_PROG}: internal error while checking {spec}: {type(exc).__name__}: {exc}. "
                  "Please report it, with the file if you can.", file=sys.stderr)
            codes.add(EXIT_INTERNAL)
            continue
        findings.extend(result.findings)
        if result.findings:
            codes.add(EXIT_FINDINGS)
            if not args.json:
                print(format_findings(result.findings))
        elif not args.json:
            print(_clean_line(spec, result))
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    # the cause that needs attention first: a bug, then a file not checked, then findings
    return next(code for code in (EXIT_INTERNAL, EXIT_USAGE, EXIT_FINDINGS, EXIT_COMPLETED) if code in codes)
