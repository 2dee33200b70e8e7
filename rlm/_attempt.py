"""What one HTTP attempt did, as the transport reports it and the guards settle it.

This is the whole vocabulary between the two: the transport says what
happened on the wire, never what it costs or whether to go on; the guards
decide both (:meth:`rlm.guards.Run.settle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AttemptReport", "ChatRequest", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts the server reported for one answer."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request, already admitted by the guards."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float
    max_output_tokens: int
    json_mode: bool = False
    #: Ask for usage in the stream (``stream_options.include_usage``); off for servers that refuse it.
    stream_usage: bool = True
    #: Also send the legacy ``max_tokens`` (Ollama and some others read only that).
    legacy_max_tokens: bool = False
    #: Stop reading once the answer's text is longer than this: no answer within the cap can be (see _budget).
    max_output_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """The facts of one attempt.

    ``sent`` is False only when nothing can have reached the server (the
    connection was never made). ``complete`` means the whole answer arrived
    (a finish reason or the end-of-stream marker was seen). ``abandoned`` means
    the caller stopped waiting (the deadline) while the attempt was in flight.
    """

    sent: bool
    complete: bool
    text: str = ""
    usage: Usage | None = None
    status_code: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = None
    problem: str = ""
    abandoned: bool = False
    finish_reason: str | None = None
    latency_seconds: float = 0.0
    error: BaseException | None = None
    #: The server sent more text than the output cap allows; reading stopped there and the connection closed.
    over_cap: bool = False

    @property
    def ok(self) -> bool:
        return self.complete and self.status_code is None
