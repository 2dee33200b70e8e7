"""Exit codes of every rlm command line (``rlm``, ``rlm check``, ``rlm report``, ``rlm mcp``): one per cause."""

from __future__ import annotations

__all__ = ["EXIT_COMPLETED", "EXIT_ERROR", "EXIT_USAGE", "EXIT_PARTIAL", "EXIT_FINDINGS", "EXIT_INTERNAL",
           "EXIT_SIGINT", "EXIT_SIGTERM"]

EXIT_COMPLETED = 0  # the run completed (or the command did what it was asked)
EXIT_ERROR = 1  # the task itself failed: its exception, or the model API failed for good
EXIT_USAGE = 2  # nothing was run: a bad flag, file, task, parameter or setting; the message says which
EXIT_PARTIAL = 3  # a limit (cost, runtime) halted the run; the partial result is printed
EXIT_FINDINGS = 1  # `rlm check`: the task breaks a rule
EXIT_INTERNAL = 70  # a bug in rlm (sysexits' EX_SOFTWARE): one line asking for a report, never a traceback
EXIT_SIGINT = 130  # stopped by Ctrl-C (128 + SIGINT), with the partial result
EXIT_SIGTERM = 143  # stopped by SIGTERM (128 + SIGTERM), with the partial result
