"""One exception tree for the whole runtime.

Every message says what happened and what to do next. Guard errors share a
base class so callers can catch "a limit stopped me" in one place.
"""

from __future__ import annotations

__all__ = [
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
]


class RLMError(Exception):
    """Root of every error the runtime raises on purpose."""


class ConfigError(RLMError, ValueError):
    """A configuration value was refused where it entered (GuardConfig, env, CLI flag)."""


class ContextAccessError(RLMError):
    """The context was reached the wrong way, or a search pattern was invalid."""


class GuardError(RLMError):
    """A guard halted the run before a limit could be crossed."""

    #: The limit's short name, as reported in results and traces.
    limit: str = "guard"


class CostLimitError(GuardError):
    """The next model call could cost more than what remains of the budget."""

    limit = "cost"


class TokenLimitError(GuardError):
    """A subcall's request is larger than max_tokens_per_subcall."""

    limit = "tokens"


class RecursionDepthError(GuardError):
    """A subcall or run was issued deeper than max_depth allows."""

    limit = "depth"


class RuntimeLimitError(GuardError):
    """The run's wall-clock deadline has passed."""

    limit = "runtime"


class SubcallError(RLMError):
    """The model API failed in a way retrying cannot fix (bad key, unknown model, ...)."""


class SubcallParseError(SubcallError):
    """The model's answer could not be read as the requested shape and no default was given."""


class TaskError(RLMError):
    """A task could not be found or loaded."""


class ReportError(RLMError):
    """An audit report could not be built: the trace is missing, empty or unreadable, or the run is unknown.

    ``reason`` is one of ``"missing"``, ``"empty"``, ``"unreadable"``,
    ``"unknown_run"`` or ``"unwritable"``; ``path`` is the file concerned and
    ``run_ids`` the runs the trace does hold (for ``"unknown_run"``).
    """

    def __init__(self, message: str, *, reason: str, path: str, run_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path
        self.run_ids = run_ids
