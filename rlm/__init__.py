"""rlm: a Recursive Language Model runtime.

Context is external state (``rlm.context_access``), the model reasons on
bounded chunks (``rlm.subcalls``), guards halt before a limit is crossed
(``rlm.guards``), and Python runs the task and aggregates (``rlm.runtime``).
"""

from __future__ import annotations

from rlm._deps import missing_dependency

try:
    from rlm.context_access import (
        Chunk,
        Context,
        Match,
        context_chunks,
        context_finditer,
        context_head,
        context_line,
        context_search,
        context_slice,
        context_tail,
        open_context,
    )
    from rlm.errors import (
        ConfigError,
        ContextAccessError,
        CostLimitError,
        GuardError,
        InterruptError,
        RecursionDepthError,
        ReportError,
        RLMError,
        RunInterrupted,
        RuntimeLimitError,
        SubcallError,
        SubcallParseError,
        TaskError,
        TokenLimitError,
    )
    from rlm.guards import GuardConfig, current_run, init_guards
    from rlm.runtime import TaskBuilder, publish, run_task
    from rlm.subcalls import (
        parallel_map,
        remaining_budget,
        semantic_subcall,
        semantic_subcall_bool,
        semantic_subcall_choice,
        semantic_subcall_json,
    )
except ModuleNotFoundError as _missing:  # say which package and how to install it, not just its import name
    raise ModuleNotFoundError(missing_dependency(_missing), name=_missing.name) from None

__version__ = "0.2.0"

__all__ = [
    "Chunk",
    "Context",
    "Match",
    "open_context",
    "context_head",
    "context_tail",
    "context_slice",
    "context_search",
    "context_finditer",
    "context_chunks",
    "context_line",
    "GuardConfig",
    "init_guards",
    "current_run",
    "semantic_subcall",
    "semantic_subcall_json",
    "semantic_subcall_bool",
    "semantic_subcall_choice",
    "parallel_map",
    "remaining_budget",
    "run_task",
    "TaskBuilder",
    "publish",
    "RLMError",
    "ConfigError",
    "ContextAccessError",
    "GuardError",
    "CostLimitError",
    "TokenLimitError",
    "RecursionDepthError",
    "RuntimeLimitError",
    "SubcallError",
    "SubcallParseError",
    "TaskError",
    "ReportError",
    "InterruptError",
    "RunInterrupted",
]
