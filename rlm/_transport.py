"""One HTTP attempt through the official ``openai`` SDK, streamed, abandonable, and reported.

The transport enforces nothing. It sends a request, reads the answer, and
reports what happened (:class:`~rlm._attempt.AttemptReport`); the guards
decide what that costs and whether to go on.

Why streamed: a server keeps generating for a client that left unless it is
streaming (llama.cpp, measured: it goes on for minutes after a non-streamed
request is abandoned, and stops within milliseconds when a stream is closed).
Usage is asked for in the stream (``stream_options.include_usage``); a server
that sends none is reported as such, and a server that ignores ``stream`` and
answers with one JSON body is read too.

Why a helper thread: the SDK's timeout is per socket read, so a server that
trickles bytes can hold a request forever. Each attempt runs on a pooled
daemon thread and the caller waits only as long as it was told; when it stops
waiting, the attempt closes its stream at the next piece that arrives.

The SDK builds and sends the request (auth, headers, status errors); the
event stream is read here as plain ``data:`` lines and ``json.loads``, several
times cheaper per chunk than building the SDK's pydantic objects.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rlm._attempt import AttemptReport, ChatRequest, Usage
from rlm._config import secrets_of
from rlm.trace import redact

if TYPE_CHECKING:
    import openai

__all__ = ["Transport", "EMPTY_STREAM"]

#: What a stream that ended with no answer and no finish reason is reported as.
EMPTY_STREAM = "the server ended the stream with no answer and no finish reason"

#: How often a wait for an answer looks whether the run was stopped (Ctrl-C, SIGTERM).
_ABANDON_POLL = 0.05


def _request_args(request: ChatRequest, timeout: float) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "temperature": request.temperature,
        "max_completion_tokens": request.max_output_tokens,
        "stream": True,
        "timeout": timeout,
    }
    if request.stream_usage:
        args["stream_options"] = {"include_usage": True}
    if request.legacy_max_tokens:
        args["max_tokens"] = request.max_output_tokens
    if request.json_mode:
        args["response_format"] = {"type": "json_object"}
    return args


class _Answer:
    """What has arrived of one answer so far."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0  # UTF-8 bytes of text so far
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False  # [DONE] seen

    def add(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("a stream event is not a JSON object")
        if isinstance(data.get("error"), dict):
            raise _StreamError(str(data["error"].get("message") or "error event in the stream"))
        usage = data.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                self.usage = Usage(prompt, completion)
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            piece = choice.get("delta") or choice.get("message") or {}
            content = piece.get("content") if isinstance(piece, dict) else None
            if content is None and isinstance(piece, dict):
                content = piece.get("refusal")
            if isinstance(content, str):
                self.parts.append(content)
                self.size += len(content.encode("utf-8", errors="surrogatepass"))
            elif content is not None:
                raise ValueError("message content is not text")
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    @property
    def complete(self) -> bool:
        # A finished answer says why it finished. A stream that ends ("[DONE]") without a finish reason
        # was cut short: llama.cpp's server sends exactly that to a request it could not serve.
        return self.finish_reason is not None


class _StreamError(Exception):
    """The server put an error event in the stream."""


def _events(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # other fields (event:, id:, retry:) and comments (:) carry nothing we use
    if data:
        yield "\n".join(data)


class _Attempt:
    """One request on a helper thread; the caller may stop waiting for it at any time."""

    def __init__(self, client: openai.OpenAI, request: ChatRequest, timeout: float, secrets: list[str]) -> None:
        self.done = threading.Event()
        self._secrets = secrets  # the key and a base URL's password: never in a problem's text
        self.cancelled = threading.Event()
        self.report: AttemptReport | None = None
        self._client = client
        self._args = _request_args(request, timeout)
        self._max_bytes = request.max_output_bytes
        self._answer = _Answer()
        self._connected = False
        self._request_id: str | None = None
        self._headers: dict[str, str] = {}
        self._started = time.monotonic()

    def run(self) -> None:
        try:
            self.report = self._send()
        except BaseException as exc:  # reported to the caller, never lost
            self.report = self._failure(exc)
        finally:
            self.done.set()

    def _send(self) -> AttemptReport:
        with self._client.chat.completions.with_streaming_response.create(**self._args) as response:
            self._connected = True
            self._request_id = response.request_id
            self._headers = {k.lower(): v for k, v in response.headers.items()}
            answer = self._answer
            if "text/event-stream" in self._headers.get("content-type", "text/event-stream"):
                for data in _events(response.iter_lines()):
                    if self.cancelled.is_set():
                        return self._broken("abandoned at the deadline", abandoned=True)
                    if data.strip() == "[DONE]":
                        answer.done = True
                        break
                    answer.add(json.loads(data))
                    if self._over_cap():
                        return self._report(over_cap=True)  # leaving the block closes the connection
            else:  # a server that ignores stream=True and sends one JSON body
                answer.add(json.loads(response.read()))
                if answer.finish_reason is None and answer.parts:
                    answer.finish_reason = "stop"
            if self.cancelled.is_set():
                return self._broken("abandoned at the deadline", abandoned=True)
            if not answer.complete:
                if answer.done and not "".join(answer.parts):
                    return self._broken(EMPTY_STREAM)
                return self._broken("the answer stopped before it was complete")
            return self._report(over_cap=self._over_cap())

    def _over_cap(self) -> bool:
        bound = self._max_bytes
        return bound is not None and self._answer.size > bound

    def _report(self, *, over_cap: bool) -> AttemptReport:
        """A whole answer; one the server ran past the output cap is reported as cut there (``length``)."""
        answer = self._answer
        return AttemptReport(
            sent=True, complete=True, text="".join(answer.parts), usage=answer.usage, headers=self._headers,
            request_id=self._request_id, finish_reason="length" if over_cap else answer.finish_reason,
            latency_seconds=self._elapsed(), over_cap=over_cap,
        )

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _broken(self, problem: str, *, abandoned: bool = False, error: BaseException | None = None) -> AttemptReport:
        return AttemptReport(
            sent=True, complete=False, text="".join(self._answer.parts), usage=self._answer.usage,
            headers=self._headers, request_id=self._request_id, problem=problem, abandoned=abandoned,
            latency_seconds=self._elapsed(), error=error,
        )

    def _failure(self, exc: BaseException) -> AttemptReport:
        import openai

        if isinstance(exc, openai.APIStatusError):
            headers = {k.lower(): v for k, v in exc.response.headers.items()}
            detail = redact(str(getattr(exc, "message", "") or exc), self._secrets)[:300]
            return AttemptReport(
                sent=True, complete=False, status_code=exc.status_code, headers=headers,
                request_id=exc.request_id, problem=f"HTTP {exc.status_code}: {detail}",
                latency_seconds=self._elapsed(), error=exc,
            )
        if isinstance(exc, openai.APIConnectionError) and not self._connected:
            timed_out = isinstance(exc, openai.APITimeoutError)
            # Only a refused connection proves that nothing reached the server.
            refused = any(type(e).__name__ == "ConnectError" for e in _causes(exc))
            if refused and not timed_out:
                return AttemptReport(sent=False, complete=False, problem="could not connect",
                                     latency_seconds=self._elapsed(), error=exc)
            return self._broken("request timed out" if timed_out else "connection failed", error=exc)
        if isinstance(exc, (ValueError, KeyError, TypeError)):
            return self._broken(f"malformed answer ({redact(str(exc), self._secrets)[:200]})", error=exc)
        if isinstance(exc, _StreamError):
            problem = redact(str(exc), self._secrets)[:200]
            return self._broken(f"the server reported an error mid-answer: {problem}", error=exc)
        # Once the stream is open, the HTTP library's own errors reach us unwrapped by the SDK. They are
        # matched by class name: the SDK's HTTP library is `httpx` or `httpx2` depending on its version.
        if _is_a(exc, "TimeoutException"):
            return self._broken("request timed out", error=exc)
        if isinstance(exc, openai.APIError) or _is_a(exc, "TransportError"):
            return self._broken("connection broke mid-answer", error=exc)
        return self._broken(f"unexpected failure: {redact(repr(exc), self._secrets)[:200]}", error=exc)


def _is_a(exc: BaseException, class_name: str) -> bool:
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class _Pool:
    """Reusable daemon threads for attempts.

    Starting a thread per attempt costs more than a loopback call's whole
    overhead budget; daemon threads (unlike ThreadPoolExecutor's) never hold
    up interpreter exit when an attempt was abandoned at the deadline.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Attempt | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, attempt: _Attempt) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._threads += 1
                threading.Thread(target=self._work, name="rlm-http", daemon=True).start()
        self._queue.put(attempt)

    def _work(self) -> None:
        while (attempt := self._queue.get()) is not None:
            attempt.run()
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Let idle threads end; busy ones end after their attempt."""
        with self._lock:
            count, self._threads = self._threads, 0
        for _ in range(count):
            self._queue.put(None)


class Transport:
    """The SDK client and attempt threads of one run; closed by the run."""

    def __init__(self, *, api_key: str | None, base_url: str | None) -> None:
        import openai

        # Plain http (a local server) involves no TLS, so the CA bundle need not be loaded: building the
        # client takes 3 ms instead of 40-100 ms, paid by every run. Redirects are not followed there, so
        # no request can end up on an unverified https connection.
        http_client = None
        if base_url is not None and base_url.lower().startswith("http://"):
            http_client = openai.DefaultHttpxClient(verify=False, follow_redirects=False)
        # Local servers usually ignore the key, but the SDK insists on one.
        self._client = openai.OpenAI(api_key=api_key or "unused", base_url=base_url, max_retries=0,
                                     http_client=http_client)
        self._pool = _Pool()
        self.base_url = base_url
        self._secrets = secrets_of(api_key, base_url)

    def send(self, request: ChatRequest, timeout: float, abandon: threading.Event | None = None) -> AttemptReport:
        """Send one request and wait at most ``timeout`` seconds for its whole answer.

        Setting ``abandon`` (the run was stopped) ends the wait early, the same way the deadline does.
        """
        timeout = max(timeout, 0.0)
        attempt = _Attempt(self._client, request, timeout=timeout + 0.05, secrets=self._secrets)
        self._pool.submit(attempt)
        until = time.monotonic() + timeout
        while not attempt.done.wait(min(_ABANDON_POLL, max(until - time.monotonic(), 0.0))):
            if time.monotonic() >= until or (abandon is not None and abandon.is_set()):
                attempt.cancelled.set()  # the attempt closes its stream at the next piece
                return attempt._broken("abandoned", abandoned=True)
        assert attempt.report is not None
        return attempt.report

    def list_models(self, timeout: float) -> list[str]:
        """The model ids the server serves (``GET /models``)."""
        page = self._client.models.list(timeout=max(timeout, 0.1))
        return list(dict.fromkeys(m.id for m in page.data if getattr(m, "id", None)))

    def close(self) -> None:
        self._pool.close()
        self._client.close()
