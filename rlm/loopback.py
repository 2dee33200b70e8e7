"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests, benchmarks and offline task development.

It answers ``POST /v1/chat/completions`` (streamed as server-sent events when
the request asks for ``stream``, as one JSON body otherwise) and
``GET /v1/models`` over real HTTP, so the real ``openai`` client talks to it
unchanged (point ``OPENAI_BASE_URL`` at :attr:`LoopbackServer.base_url`).

Answers come from a script, a callable that sees each request, or a default.
An answer is generated token by token (about 4 characters a token), at
``token_interval`` seconds a token, and is cut at the request's
``max_completion_tokens`` / ``max_tokens`` (finish reason ``length``). Like a
real server, a streamed generation stops when the client goes away, and a
non-streamed one runs to its end whatever the client does; every generation
is logged (:attr:`LoopbackServer.generations`). Usage can be reported or left
out; latency can be added; faults can be injected (429 with any Retry-After,
5xx, a hang, a body trickled a byte at a time, a malformed body, 401, a
dropped connection, a stream cut mid-answer, a refusal of JSON mode or of
``stream_options``). Every request is logged with its body, time and the
number of requests in flight.

From the shell: ``python -m rlm.loopback --help``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Reply", "Fault", "RecordedRequest", "Generation", "LoopbackServer", "main"]

_TOKEN = re.compile(r".{1,4}", re.S)
_FAULT_KINDS = frozenset({"status", "hang", "trickle", "malformed", "drop", "cut"})


@dataclass(frozen=True)
class Reply:
    """A successful answer. Token counts default to an estimate (about 4 bytes a token).

    ``token_interval`` (seconds per generated token) overrides the server's;
    ``finish_reason`` is what a complete answer reports (``length`` when it
    was cut at the request's output cap).
    """

    content: str = "ok"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage: bool = True
    latency: float | None = None
    token_interval: float | None = None
    finish_reason: str | None = "stop"  # None: a stream that ends without saying why (a broken server)


@dataclass(frozen=True)
class Fault:
    """An injected failure.

    ``kind`` is one of: ``"status"`` (answer ``status`` with an error body,
    optional ``retry_after`` — a number, or any text to test parsers — and
    ``retry_after_ms``, and extra ``headers`` such as ``x-should-retry``),
    ``"hang"`` (say nothing for ``seconds``), ``"trickle"`` (a valid answer,
    one byte every ``interval`` seconds), ``"malformed"`` (200 with a broken
    body or event), ``"drop"`` (close the connection without answering),
    ``"cut"`` (stream ``tokens`` tokens of the default answer, then close the
    connection mid-answer). ``code`` is the error body's ``code``
    (``"context_length_exceeded"``, ...).
    """

    kind: str
    status: int = 500
    retry_after: float | str | None = None
    retry_after_ms: float | str | None = None
    seconds: float = 30.0
    interval: float = 0.4
    message: str = "injected fault"
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    tokens: int = 3

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: use one of {', '.join(sorted(_FAULT_KINDS))} "
                             "(an HTTP status is Fault('status', status=429), or Fault.rate_limit())")

    @classmethod
    def rate_limit(cls, retry_after: float | str | None = None, retry_after_ms: float | str | None = None) -> Fault:
        return cls("status", status=429, retry_after=retry_after, retry_after_ms=retry_after_ms,
                   message="Rate limit reached")

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status=status, message="The server had an error")

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls("status", status=401, message="Incorrect API key provided")


Script = Reply | Fault | str


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    in_flight: int


@dataclass(frozen=True)
class Generation:
    """One answer the server generated: how much of it, and whether the client was still there.

    Times are ``time.monotonic()``. ``client_gone`` is True when a write found
    the client gone; for a streamed answer generation stopped there.
    """

    stream: bool
    started: float
    ended: float
    tokens_generated: int
    tokens_planned: int
    client_gone: bool


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / 4))


@dataclass
class _State:
    script: deque[Script] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    generations: list[Generation] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class _ClientGone(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of more new connections than that (16 workers
    # starting at once) has SYNs dropped, and the kernel retries them a second later.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that closes an idle keep-alive connection (or abandons a request) is routine.
        if not isinstance(sys.exc_info()[1], (ConnectionError, _ClientGone)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """The server; use it as a context manager or call :meth:`close`."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        usage: bool = True,
        responder: Callable[[dict[str, Any]], Script] | None = None,
        refuse_json_mode: bool = False,
        refuse_stream_options: bool = False,
        default: str = "ok",
        models: Sequence[str] = ("gpt-4o-mini",),
        token_interval: float = 0.0,
        streaming: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.usage = usage
        self.responder = responder
        self.refuse_json_mode = refuse_json_mode
        self.refuse_stream_options = refuse_stream_options
        self.default = default
        self.models = list(models)  # what GET /models lists
        self.token_interval = token_interval
        self.streaming = streaming  # False: answer stream requests with one JSON body, as some servers do
        self._state = _State()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = _Server((host, port), self._handler_class())
        # close() waits for the serving loop's next poll: a short one keeps a test's teardown short.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="loopback-llm", daemon=True)
        self._thread.start()

    # -- control ---------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self._httpd.server_address[0])
        return f"http://{host}:{self.port}/v1"

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
    def generations(self) -> list[Generation]:
        with self._lock:
            return list(self._state.generations)

    @property
    def in_flight(self) -> int:
        return self._state.in_flight

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
                self.send_header("x-request-id", f"req_loopback_{len(server._state.requests)}")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                server._done(self)  # before the last byte: a client that has it may send its next request at once
                self.wfile.write(data)

            def do_GET(self) -> None:
                server._record(self, {})
                try:
                    if self.path.rstrip("/").endswith("/models"):
                        self._send_json(200, {"object": "list", "data": [
                            {"id": m, "object": "model", "created": 0, "owned_by": "loopback"}
                            for m in server.models]})
                    else:
                        self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                finally:
                    server._done(self)

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
                except (BrokenPipeError, ConnectionResetError, _ClientGone):
                    self.close_connection = True
                finally:
                    server._done(self)

        return Handler

    def _record(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            st = self._state
            handler._rlm_done = False  # type: ignore[attr-defined]  # a kept-alive connection serves many requests
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            headers = {k.lower(): v for k, v in handler.headers.items()}
            st.requests.append(RecordedRequest(handler.command, handler.path, body, headers, time.monotonic(),
                                               st.in_flight))

    def _done(self, handler: Any) -> None:
        """This request is no longer in flight (once per request, however often it is said)."""
        with self._lock:
            if getattr(handler, "_rlm_done", False):
                return
            handler._rlm_done = True
            self._state.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        self._closing.wait(seconds)

    @staticmethod
    def _cap(body: dict[str, Any]) -> int | None:
        caps = [v for k in ("max_completion_tokens", "max_tokens") if isinstance(v := body.get(k), int) and v > 0]
        return min(caps) if caps else None

    def _answer(self, h: Any, body: dict[str, Any]) -> None:
        item = self._next(body)
        if isinstance(item, str):
            item = Reply(item)
        if isinstance(item, Fault):
            self._fault(h, item, body)
            return
        refusal = None
        if self.refuse_json_mode and "response_format" in body:
            refusal = ("response_format json_object is not supported by this model", "response_format")
        elif self.refuse_stream_options and "stream_options" in body:
            refusal = ("Unrecognized request argument supplied: stream_options", "stream_options")
        if refusal is not None:
            h._send_json(400, {"error": {"message": refusal[0], "type": "invalid_request_error",
                                         "param": refusal[1]}})
            with self._lock:  # the answer is still owed to the retry without the option
                self._state.script.appendleft(item)
            return
        latency = self.latency if item.latency is None else item.latency
        if latency:
            self._sleep(latency)
        if body.get("stream") and self.streaming:
            self._stream(h, item, body)
        else:
            self._whole(h, item, body)

    def _plan(self, reply: Reply, body: dict[str, Any]) -> tuple[list[str], str | None, float]:
        """The tokens to generate, the finish reason, and the seconds per token."""
        tokens = _TOKEN.findall(reply.content) or [""]
        finish = reply.finish_reason
        cap = self._cap(body)
        if cap is not None and reply.completion_tokens is None and len(tokens) > cap:
            tokens, finish = tokens[:cap], "length"
        interval = self.token_interval if reply.token_interval is None else reply.token_interval
        return tokens, finish, interval

    def _usage(self, reply: Reply, body: dict[str, Any], generated: int) -> dict[str, int] | None:
        if not (reply.usage and self.usage):
            return None
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = sum(_estimate_tokens(str(m.get("content", ""))) + 3 for m in body.get("messages") or []) + 3
        completion = reply.completion_tokens if reply.completion_tokens is not None else generated
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _log_generation(self, stream: bool, started: float, generated: int, planned: int, gone: bool) -> None:
        with self._lock:
            self._state.generations.append(Generation(stream, started, time.monotonic(), generated, planned, gone))

    def _whole(self, h: Any, reply: Reply, body: dict[str, Any]) -> None:
        """A non-streamed answer: generated to the end, then sent, whether or not the client waited."""
        tokens, finish, interval = self._plan(reply, body)
        started = time.monotonic()
        if interval:
            self._sleep(interval * len(tokens))
        text = "".join(tokens)
        payload = self._completion_payload(body, text, finish)
        usage = self._usage(reply, body, len(tokens))
        if usage is not None:
            payload["usage"] = usage
        gone = False
        try:
            h._send_json(200, payload)
        except (BrokenPipeError, ConnectionResetError):
            gone = True
            raise
        finally:
            self._log_generation(False, started, len(tokens), len(tokens), gone)

    def _completion_payload(self, body: dict[str, Any], text: str, finish: str | None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-loopback-{len(self._state.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
        }

    def _chunk(self, body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": f"chatcmpl-loopback-{len(self._state.requests)}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", "loopback"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _start_events(self, h: Any) -> None:
        h.send_response(200)
        h.send_header("x-request-id", f"req_loopback_{len(self._state.requests)}")
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()

    @staticmethod
    def _write_raw(h: Any, data: bytes) -> None:
        """One HTTP chunk; a client that went away raises _ClientGone."""
        try:
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise _ClientGone from exc

    def _event(self, h: Any, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self._write_raw(h, f"data: {data}\n\n".encode())

    @staticmethod
    def _end_events(h: Any) -> None:
        try:
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise _ClientGone from exc

    def _stream(self, h: Any, reply: Reply, body: dict[str, Any], *, cut_after: int | None = None) -> None:
        """A streamed answer: one event per token; generation stops as soon as the client is gone.

        With no time between tokens the events go out in one write, as a fast server's would.
        """
        tokens, finish, interval = self._plan(reply, body)
        started = time.monotonic()
        sent = 0
        batch: list[str] | None = [] if not interval and cut_after is None else None

        def emit(payload: Any) -> None:
            if batch is None:
                self._event(h, payload)
            else:
                batch.append(f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n")

        try:
            self._start_events(h)
            emit(self._chunk(body, {"role": "assistant", "content": ""}, None))
            for i, token in enumerate(tokens):
                if interval:
                    self._sleep(interval)
                if cut_after is not None and i >= cut_after:
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)
                    self._log_generation(True, started, sent, len(tokens), False)
                    return
                emit(self._chunk(body, {"content": token}, None))
                sent += 1
            emit(self._chunk(body, {}, finish))
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            usage = self._usage(reply, body, sent)
            if include and usage is not None:
                final = self._chunk(body, {}, None)
                final["choices"] = []
                final["usage"] = usage
                emit(final)
            if batch is None:
                self._done(h)  # before the last event: see _send_json
            emit("[DONE]")
            if batch is not None:
                self._done(h)
                self._write_raw(h, "".join(batch).encode())
            self._end_events(h)
        except _ClientGone:
            self._log_generation(True, started, sent, len(tokens), True)
            raise
        self._log_generation(True, started, sent, len(tokens), False)

    def _fault(self, h: Any, fault: Fault, body: dict[str, Any]) -> None:
        stream = bool(body.get("stream"))
        if fault.kind == "status":
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                ra = fault.retry_after
                headers["Retry-After"] = f"{ra:g}" if isinstance(ra, (int, float)) else str(ra)
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = str(fault.retry_after_ms)
            error = {"message": fault.message, "type": "loopback_fault", "code": fault.code}
            h._send_json(fault.status, {"error": error}, headers)
        elif fault.kind == "hang":
            self._sleep(fault.seconds)
            h.close_connection = True
        elif fault.kind == "trickle":
            if stream:
                chunks = [self._chunk(body, {"content": t}, None) for t in _TOKEN.findall(self.default)]
                events = [f"data: {json.dumps(c)}\n\n" for c in chunks]
                events += [f"data: {json.dumps(self._chunk(body, {}, 'stop'))}\n\n", "data: [DONE]\n\n"]
                data = "".join(events).encode()
                self._start_events(h)
                for i in range(len(data)):
                    if self._closing.is_set():
                        break
                    self._write_raw(h, data[i:i + 1])
                    self._sleep(fault.interval)
                self._end_events(h)
                return
            data = json.dumps(self._completion_payload(body, self.default, "stop")).encode()
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
            if stream:
                self._start_events(h)
                self._write_raw(h, b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": \n\n')
                self._end_events(h)
                return
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
        elif fault.kind == "cut":
            self._stream(h, Reply("a partial answer " * (fault.tokens + 4)), body, cut_after=fault.tokens)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")


# -- the command line -----------------------------------------------------------

_FAULT_SPECS = "429[:SECONDS], 500, 502, 503, 401, hang[:SECONDS], trickle, malformed, drop, cut"


def _fault(spec: str) -> Fault:
    kind, _, arg = spec.partition(":")
    try:
        if kind.isdigit():
            status = int(kind)
            if status == 429:
                return Fault.rate_limit(retry_after=arg or None)
            if status == 401:
                return Fault.unauthorized()
            return Fault.server_error(status)
        if kind == "hang":
            return Fault("hang", seconds=float(arg) if arg else 30.0)
        if kind in ("trickle", "malformed", "drop", "cut"):
            return Fault(kind)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"unknown fault {spec!r}; use one of: {_FAULT_SPECS}")


def _responder(spec: str) -> Callable[[dict[str, Any]], Script]:
    module_name, _, name = spec.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"--responder takes module:function (got {spec!r})")
    try:
        fn = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot load responder {spec!r}: {exc}") from exc
    if not callable(fn):
        raise argparse.ArgumentTypeError(f"{spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rlm.loopback",
        description="Serve a scripted OpenAI-compatible model on this machine until interrupted (Ctrl-C), "
                    "to develop and test rlm tasks offline.",
        epilog="Then: export OPENAI_BASE_URL=<the printed URL> RLM_PRICE_INPUT=0 RLM_PRICE_OUTPUT=0 "
               "and run your task.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8011, help="port (default 8011; 0 picks a free one)")
    p.add_argument("--default", default="ok", help="the answer to every request (default 'ok')")
    p.add_argument("--responder", type=_responder, metavar="MODULE:FUNCTION",
                   help="a function(request_body) -> str | Reply | Fault that answers each request")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer starts")
    p.add_argument("--token-interval", type=float, default=0.0, help="seconds per generated token")
    p.add_argument("--model", dest="models", action="append", metavar="NAME",
                   help="a model name GET /models lists (repeatable; default gpt-4o-mini)")
    p.add_argument("--no-usage", action="store_true", help="never report token usage")
    p.add_argument("--refuse-json-mode", action="store_true", help="answer 400 to response_format json_object")
    p.add_argument("--refuse-stream-options", action="store_true", help="answer 400 to stream_options")
    p.add_argument("--fault", type=_fault, action="append", default=[], metavar="SPEC",
                   help=f"queue a fault for the next request (repeatable, in order): {_FAULT_SPECS}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        server = LoopbackServer(
            latency=args.latency, usage=not args.no_usage, responder=args.responder,
            refuse_json_mode=args.refuse_json_mode, refuse_stream_options=args.refuse_stream_options,
            default=args.default, models=args.models or ("gpt-4o-mini",), token_interval=args.token_interval,
            host=args.host, port=args.port,
        )
    except OSError as exc:
        print(f"python -m rlm.loopback: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. "
              "Pick another --port (0 picks a free one).", file=sys.stderr)
        return 2
    server.script(*args.fault)
    print(f"loopback model serving {', '.join(server.models)} at {server.base_url}", flush=True)
    print(f"export OPENAI_BASE_URL={server.base_url} RLM_PRICE_INPUT=0 RLM_PRICE_OUTPUT=0", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        print(f"served {len(server.chat_requests)} chat requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: a responder does `from rlm.loopback import
    # Fault`, and only the imported module's classes are the ones the server recognises.
    from rlm.loopback import main as _main

    raise SystemExit(_main())
