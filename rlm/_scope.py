"""Where the current run lives: one ContextVar, and what the layers beside the guards may ask of it.

The guards own the run (:class:`rlm.guards.Run`); the document's module
(:mod:`rlm.context_access`) must not import them, yet it has to stop at the
deadline and report its accesses. Both import this bottom layer instead: the
run implements :class:`RunScope`, and only :mod:`rlm.guards` sets the variable,
always in a scope that restores it.
"""

from __future__ import annotations

import contextvars
from typing import Protocol

from rlm.errors import RuntimeLimitError

__all__ = ["RunScope", "current_scope"]


class RunScope(Protocol):
    """What code beside the guards may ask of the current run."""

    def deadline_at(self) -> float:
        """The run's deadline on the ``time.monotonic()`` clock."""
        ...

    def check_deadline(self) -> None:
        """Raise RuntimeLimitError when the deadline has passed or the run was stopped."""
        ...

    def runtime_error(self, message: str | None = None) -> RuntimeLimitError:
        """Mark the run stopped at its deadline and return the error that says so (``message`` says why)."""
        ...

    def record_access(self, *, context: str, function: str, start: int, end: int, returned: int,
                      detail: str, file: str | None) -> None:
        """Add one context access to the run's audit trail."""
        ...


_current: contextvars.ContextVar[RunScope | None] = contextvars.ContextVar("rlm_run", default=None)


def current_scope() -> RunScope | None:
    """The run whose guards apply here, if any."""
    return _current.get()
