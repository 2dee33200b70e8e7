"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests, benchmarks and offline task development.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` over real
HTTP, so the real ``openai`` client talks to it unchanged (point
``OPENAI_BASE_URL`` at :attr:`LoopbackServer.base_url`). Answers come from a
script, a callable that sees each request, or a default; usage can be
reported or left out; latency can be added; faults can be injected (429 with
Retry-After, 5xx, a hang, a body trickled a byte at a time, a malformed body,
401, a dropped connection, a refusal of JSON mode). Every request is logged
with its body, time and the number of requests in flight.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

__all__ = ["Reply", "Fault", "RecordedRequest", "LoopbackServer"]


@dataclass(frozen=True)
class Reply:
    """A successful answer. Token counts default to an estimate (about 4 bytes a token)."""

    content: str = "ok"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage: bool = True
    latency: float | None = None


@dataclass(frozen=True)
class Fault:
    """An injected failure.

    ``kind`` is one of: ``"status"`` (answer ``status`` with an error body and
    optional ``retry_after`` seconds / ``retry_after_ms``), ``"hang"`` (say
    nothing for ``seconds``), ``"trickle"`` (a valid body, one byte every
    ``interval`` seconds), ``"malformed"`` (200 with a broken JSON body),
    ``"drop"`` (close the connection without answering). ``code`` is the
    error body's ``code`` (``"context_length_exceeded"``, ...).
    """

    kind: str
    status: int = 500
    retry_after: float | None = None
    retry_after_ms: int | None = None
    seconds: float = 30.0
    interval: float = 0.4
    message: str = "injected fault"
    code: str | None = None

    @classmethod
    def rate_limit(cls, retry_after: float | None = None, retry_after_ms: int | None = None) -> Fault:
        return cls("status", status=429, retry_after=retry_after, retry_after_ms=retry_after_ms,
                   message="Rate limit reached")

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status=status, message="The server had an error")

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls("status", status=401, message="Incorrect API key provided")


Script = Union[Reply, Fault, str]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    in_flight: int


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / 4))


@dataclass
class _State:
    script: deque[Script] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class LoopbackServer:
    """The server; use it as a context manager or call :meth:`close`."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        usage: bool = True,
        responder: Callable[[dict[str, Any]], Script] | None = None,
        refuse_json_mode: bool = False,
        default: str = "ok",
    ) -> None:
        self.latency = latency
        self.usage = usage
        self.responder = responder
        self.refuse_json_mode = refuse_json_mode
        self.default = default
        self._state = _State()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loopback-llm", daemon=True)
        self._thread.start()

    # -- control ---------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *items: Script) -> LoopbackServer:
        """Queue answers and faults, used one per request before the responder/default."""
        with self._lock:
            self._state.script.extend(items)
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def max_in_flight(self) -> int:
        return self._state.max_in_flight

    def reset(self) -> None:
        """Forget the log and the script; keep settings."""
        with self._lock:
            self._state = _State()

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------
    def _next(self, body: dict[str, Any]) -> Script:
        with self._lock:
            if self._state.script:
                return self._state.script.popleft()
        if self.responder is not None:
            return self.responder(body)
        return self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes; without this, Nagle's
                # algorithm and delayed ACKs add ~40 ms to every keep-alive answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server._record(self, {})
                try:
                    if self.path.rstrip("/").endswith("/models"):
                        self._send_json(200, {"object": "list", "data": [
                            {"id": m, "object": "model", "created": 0, "owned_by": "loopback"}
                            for m in ("gpt-4o-mini", "gpt-4o", "loopback")]})
                    else:
                        self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                finally:
                    server._done()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparseable": raw.decode("utf-8", "replace")}
                server._record(self, body)
                try:
                    if not self.path.rstrip("/").endswith("/chat/completions"):
                        self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                        return
                    server._answer(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    server._done()

        return Handler

    def _record(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            st = self._state
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            headers = {k.lower(): v for k, v in handler.headers.items()}
            st.requests.append(RecordedRequest(handler.command, handler.path, body, headers, time.monotonic(),
                                               st.in_flight))

    def _done(self) -> None:
        with self._lock:
            self._state.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def _answer(self, h: Any, body: dict[str, Any]) -> None:
        item = self._next(body)
        if isinstance(item, str):
            item = Reply(item)
        if isinstance(item, Fault):
            self._fault(h, item, body)
            return
        if self.refuse_json_mode and "response_format" in body:
            h._send_json(400, {"error": {"message": "response_format json_object is not supported by this model",
                                         "type": "invalid_request_error", "param": "response_format"}})
            with self._lock:  # the answer is still owed to the retry without JSON mode
                self._state.script.appendleft(item)
            return
        latency = self.latency if item.latency is None else item.latency
        if latency:
            self._sleep(latency)
        h._send_json(200, self._completion(item, body))

    def _completion(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(_estimate_tokens(str(m.get("content", ""))) + 3 for m in messages) + 3
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = _estimate_tokens(reply.content)
        payload: dict[str, Any] = {
            "id": f"chatcmpl-loopback-{len(self._state.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply.content}}],
        }
        if reply.usage and self.usage:
            payload["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                "total_tokens": prompt_tokens + completion_tokens}
        return payload

    def _fault(self, h: Any, fault: Fault, body: dict[str, Any]) -> None:
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = str(fault.retry_after_ms)
            error = {"message": fault.message, "type": "loopback_fault", "code": fault.code}
            h._send_json(fault.status, {"error": error}, headers)
        elif fault.kind == "hang":
            self._sleep(fault.seconds)
            h.close_connection = True
        elif fault.kind == "trickle":
            data = json.dumps(self._completion(Reply(self.default), body)).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.flush()
            for i in range(len(data)):
                if self._closing.is_set():
                    break
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                self._sleep(fault.interval)
        elif fault.kind == "malformed":
            data = b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": '
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        elif fault.kind == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
