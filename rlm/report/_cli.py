"""``python -m rlm.report`` (``rlm report``): parse, build the page, say what was written in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from rlm._exits import EXIT_COMPLETED, EXIT_INTERNAL, EXIT_SIGINT, EXIT_USAGE
from rlm.errors import ReportError
from rlm.report._page import render_report

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see --help)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rlm.report TRACE.jsonl -o PATH.html [--run-id ID]``.

    Returns 0 when the page was written; otherwise one line on stderr and EXIT_USAGE (2) for a bad
    flag, trace, run or output path, EXIT_SIGINT (130) on Ctrl-C, EXIT_INTERNAL (70) for a bug in rlm.
    """
    parser = _Parser(prog="python -m rlm.report",
                     description="Build a self-contained HTML audit report from an rlm JSONL trace.")
    parser.add_argument("trace", help="the JSONL trace written by --trace")
    parser.add_argument("-o", "--output", required=True, metavar="PATH.html", help="the HTML file to write")
    parser.add_argument("--run-id", help="which run of the trace (default: the last one)")
    try:
        args = parser.parse_args(argv)
        stats = render_report(args.trace, args.output, run_id=args.run_id)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_COMPLETED if exc.code is None else EXIT_USAGE
    except (_UsageError, ReportError) as exc:
        print(f"rlm report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlm report: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:  # noqa: BLE001 (a bug of ours: still one line, never a traceback)
        print(f"rlm report: internal error: {type(exc).__name__}: {exc}. Please report it.", file=sys.stderr)
        return EXIT_INTERNAL
    print(f"Wrote {stats.path} ({_size(stats.bytes)}, {stats.subcalls:,} subcalls, run {stats.run_id}) "
          f"in {stats.seconds:.2f}s")
    return EXIT_COMPLETED
