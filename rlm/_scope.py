"""Where the current run lives: one ContextVar, and what the layers beside the guards may ask of it.

The guards own the run (:class:`rlm.guards.Run`); the document's module
(:mod:`rlm.context_access`) must not import them, yet it has to stop at the
deadline and report its accesses. Both import this bottom layer instead: the
run implements :class:`RunScope`, and only :mod:`rlm.guards` sets the variable,
always in a scope that restores it.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import Protocol

from rlm.errors import RuntimeLimitError

__all__ = ["RunScope", "current_scope", "deadline_only"]


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


class _Deadline:
    """A scope with a deadline and nothing else: for work before a run exists (the command line's checks)."""

    def __init__(self, seconds: float, what: str) -> None:
        self._at = time.monotonic() + seconds
        self._seconds = seconds
        self._what = what

    def deadline_at(self) -> float:
        return self._at

    def check_deadline(self) -> None:
        if time.monotonic() >= self._at:
            raise self.runtime_error()

    def runtime_error(self, message: str | None = None) -> RuntimeLimitError:
        return RuntimeLimitError(message or (
            f"{self._what} took longer than the runtime limit of {self._seconds:g}s. Narrow the input (fewer files) "
            "or raise --timeout."), limit_seconds=self._seconds)

    def record_access(self, **_: object) -> None:
        return None


@contextlib.contextmanager
def deadline_only(seconds: float, what: str) -> Iterator[None]:
    """Bound the block by ``seconds`` on the same checks a run's deadline uses; the variable is restored after."""
    token = _current.set(_Deadline(seconds, what))
    try:
        yield
    finally:
        _current.reset(token)
