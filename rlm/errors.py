"""One exception tree for the whole runtime.

Every message says what happened and what to do next; every error also
carries its facts as attributes a caller can branch on. Guard errors share a
base class so callers can catch "a limit stopped me" in one place.
"""

from __future__ import annotations

__all__ = [
    "RLMError",
    "ConfigError",
    "ContextAccessError",
    "RemoteInputError",
    "GuardError",
    "CostLimitError",
    "TokenLimitError",
    "RecursionDepthError",
    "RuntimeLimitError",
    "InterruptError",
    "RunInterrupted",
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


class RemoteInputError(ContextAccessError):
    """An object in storage (s3://, https://...) could not be listed or read.

    ``reason`` is one of ``"no_extra"``, ``"no_backend"``, ``"no_bucket"``,
    ``"not_found"``, ``"empty"``, ``"access_denied"``, ``"no_credentials"``,
    ``"network"``, ``"changed"`` or ``"unreachable"``; ``url`` is the URL as
    shown (no user, password or query).
    """

    def __init__(self, message: str, *, reason: str, url: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.url = url


class GuardError(RLMError):
    """A guard halted the run before a limit could be crossed."""

    #: The limit's short name, as reported in results and traces.
    limit: str = "guard"


class CostLimitError(GuardError):
    """The next model call could cost more than what remains of the budget.

    ``needed_usd`` is that call's worst case, ``remaining_usd`` what was left
    when it was refused, ``budget_usd`` the run's ``max_cost``.
    """

    limit = "cost"

    def __init__(self, message: str = "", *, needed_usd: float | None = None, remaining_usd: float | None = None,
                 budget_usd: float | None = None) -> None:
        super().__init__(message)
        self.needed_usd = needed_usd
        self.remaining_usd = remaining_usd
        self.budget_usd = budget_usd


class TokenLimitError(GuardError):
    """A subcall's request is larger than ``max_tokens_per_subcall``."""

    limit = "tokens"

    def __init__(self, message: str = "", *, counted_tokens: int | None = None,
                 limit_tokens: int | None = None) -> None:
        super().__init__(message)
        self.counted_tokens = counted_tokens
        self.limit_tokens = limit_tokens


class RecursionDepthError(GuardError):
    """A subcall or run was issued deeper than ``max_depth`` allows."""

    limit = "depth"

    def __init__(self, message: str = "", *, depth: int | None = None, max_depth: int | None = None) -> None:
        super().__init__(message)
        self.depth = depth
        self.max_depth = max_depth


class RuntimeLimitError(GuardError):
    """The run's wall-clock deadline has passed (``limit_seconds`` is the limit)."""

    limit = "runtime"

    def __init__(self, message: str = "", *, limit_seconds: float | None = None) -> None:
        super().__init__(message)
        self.limit_seconds = limit_seconds


class InterruptError(GuardError):
    """The run was stopped by a signal (Ctrl-C, SIGTERM): ``signal_name`` says which."""

    limit = "interrupt"

    def __init__(self, message: str = "", *, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.signal_name = signal_name


class RunInterrupted(KeyboardInterrupt):  # noqa: N818 - it is a KeyboardInterrupt, and named as one
    """Ctrl-C (or SIGTERM) during ``run_task``: raised after the run has closed its trace and ledger.

    It is a ``KeyboardInterrupt``, so a script stops as it would; ``result`` is the run's result dict
    (status ``partial``, what the task published, the complete budget summary), so nothing is lost.
    Not an ``RLMError``: ``except Exception`` must not swallow an interrupt.
    """

    def __init__(self, result: dict[str, object], signal_name: str = "SIGINT") -> None:
        super().__init__(f"run interrupted by {signal_name}")
        self.result = result
        self.signal_name = signal_name


class SubcallError(RLMError):
    """The model API failed in a way retrying did not fix (bad key, unknown model, repeated 5xx...).

    ``status_code`` is the last HTTP status (None for a connection failure),
    ``request_id`` the server's request id when it sent one, and ``retryable``
    whether the failure was of a kind that retrying later may fix.
    """

    def __init__(self, message: str = "", *, status_code: int | None = None, request_id: str | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.retryable = retryable


class SubcallParseError(SubcallError):
    """The model's answer could not be read as the requested shape and no default was given."""

    def __init__(self, message: str = "", *, answer: str = "") -> None:
        super().__init__(message)
        self.answer = answer


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
