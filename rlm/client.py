"""One model call under the run's guards, through the official ``openai`` SDK.

The SDK's own timeout is per attempt and per socket read, so a server that
trickles bytes can hold a request forever. Each attempt therefore runs on a
helper thread and the caller waits at most until the run's deadline; the SDK
retries nothing (``max_retries=0``), and this module retries 408, 409, 429,
5xx and connection failures itself, honouring ``Retry-After`` but never
sleeping past the deadline. Every attempt reserves its worst-case cost first.
"""

from __future__ import annotations

import email.utils
import json
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from rlm.errors import SubcallError
from rlm.guards import Run
from rlm.trace import redact

__all__ = ["ModelReply", "call_model", "worst_case_cost", "make_client", "api_target"]

_RETRY_STATUS = {408, 409, 429}
_BACKOFF_BASE = 0.25
_BACKOFF_MAX = 8.0


@dataclass(frozen=True, slots=True)
class ModelReply:
    """A settled model answer and what it cost."""

    content: str
    input_tokens: int
    output_tokens: int
    cost: Decimal
    reserved: Decimal
    latency_seconds: float
    retries: int
    usage_reported: bool


def api_target() -> tuple[str | None, str | None]:
    """The API key and base URL from the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``)."""
    key = os.environ.get("OPENAI_API_KEY", "").strip() or None
    base = os.environ.get("OPENAI_BASE_URL", "").strip() or None
    return key, base


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or (urlparse(base_url).hostname or "").endswith("openai.com")


def make_client(run: Run) -> Any:
    """The run's SDK client, created once (it keeps connections alive between calls)."""
    with run._lock:  # parallel subcalls must share one client, not race to build sixteen
        if run._client is None:
            import openai

            key, base = api_target()
            if key is None and base is None:
                raise SubcallError(
                    "No model API configured: set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL (for a local "
                    "OpenAI-compatible server such as Ollama, vLLM or llama.cpp), or use --dry-run."
                )
            # Local servers usually ignore the key, but the SDK insists on one.
            run._client = openai.OpenAI(api_key=key or "unused", base_url=base, max_retries=0)
        return run._client


def worst_case_cost(run: Run, counted_tokens: int) -> Decimal:
    """The most a call can cost: the prompt's upper bound plus the whole output cap."""
    return run.pricing.cost(counted_tokens, run.config.max_output_tokens)


def _request_args(run: Run, messages: list[dict[str, str]], json_mode: bool) -> dict[str, Any]:
    cfg = run.config
    args: dict[str, Any] = {
        "model": cfg.model,
        "messages": messages,
        "temperature": cfg.temperature,
        "max_completion_tokens": cfg.max_output_tokens,
    }
    if not _is_openai(api_target()[1]):
        args["max_tokens"] = cfg.max_output_tokens  # Ollama and some others read only this
    if json_mode:
        args["response_format"] = {"type": "json_object"}
    return args


class _Attempt:
    """One HTTP attempt on a helper thread, so the caller can stop waiting at the deadline."""

    def __init__(self, client: Any, args: dict[str, Any], timeout: float) -> None:
        self.done = threading.Event()
        self.cancelled = threading.Event()
        self.body: bytes | None = None
        self.error: BaseException | None = None
        self._args = dict(args, timeout=timeout)
        self._client = client

    def run(self) -> None:
        try:
            with self._client.chat.completions.with_streaming_response.create(**self._args) as response:
                buf = bytearray()
                for piece in response.iter_bytes():
                    if self.cancelled.is_set():
                        return
                    buf += piece
                self.body = bytes(buf)
        except BaseException as exc:  # handed to the caller, never lost
            self.error = exc
        finally:
            self.done.set()


class AttemptPool:
    """Reusable daemon threads for HTTP attempts.

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


def _pool(run: Run) -> AttemptPool:
    with run._lock:
        if run._pool is None:
            run._pool = AttemptPool()
        return run._pool


def _retry_delay(exc: Any, attempt: int) -> float:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return max(float(value) / divisor, 0.0)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if header == "retry-after" else None
            if parsed is not None:
                return max(parsed.timestamp() - time.time(), 0.0)
    return min(_BACKOFF_BASE * 2**attempt, _BACKOFF_MAX) * (0.8 + 0.4 * random.random())


def _parse_body(body: bytes) -> tuple[str, dict[str, Any] | None]:
    """The answer text and usage from a chat completion body; ValueError when malformed."""
    data = json.loads(body)
    if not isinstance(data, dict) or not data.get("choices"):
        raise ValueError("no choices in the response")
    message = data["choices"][0].get("message") or {}
    content = message.get("content")
    if content is None:
        content = message.get("refusal") or ""
    if not isinstance(content, str):
        raise ValueError("message content is not text")
    usage = data.get("usage")
    return content, usage if isinstance(usage, dict) else None


def _mentions_json_mode(message: str) -> bool:
    message = message.lower()
    return "response_format" in message or "json" in message


def _classify_status(exc: Any, run: Run) -> tuple[bool, str]:
    """(retryable, message) for an HTTP error status."""
    status = getattr(exc, "status_code", 0)
    detail = redact(str(getattr(exc, "message", "") or exc))[:300]
    if status in _RETRY_STATUS or status >= 500:
        return True, f"HTTP {status}: {detail}"
    if status == 401:
        return False, "The model API refused the credentials (401 Unauthorized). Check OPENAI_API_KEY."
    if status == 403:
        return False, f"The model API denied access (403): {detail}. Check the key's permissions."
    if status == 404:
        return False, (
            f"The model API has no model {run.config.model!r} (404): {detail}. "
            "Check --model / RLM_MODEL and OPENAI_BASE_URL."
        )
    return False, f"The model API rejected the request (HTTP {status}): {detail}"


def call_model(run: Run, messages: list[dict[str, str]], *, counted: int, json_mode: bool = False) -> ModelReply:
    """Send one chat request under every guard; retry what can be retried; settle the cost.

    ``counted`` is the request's token upper bound (``guards.check_request_tokens``).
    """
    import openai

    cfg = run.config
    json_mode = json_mode and run.counters.json_mode_supported
    worst = worst_case_cost(run, counted)
    client = make_client(run)
    pool = _pool(run)
    args = _request_args(run, messages, json_mode)
    started = time.monotonic()
    retries = 0
    last_problem = ""
    while True:
        run.check_deadline()
        run.ledger.reserve(worst)
        run.count(http_attempts=1)
        attempt = _Attempt(client, args, timeout=max(run.remaining_seconds(), 0.01) + 0.05)
        pool.submit(attempt)
        if not attempt.done.wait(max(run.remaining_seconds(), 0.0)):
            attempt.cancelled.set()
            run.ledger.keep(worst)  # the request was sent; it may be billed
            raise run.runtime_error()
        exc = attempt.error
        if exc is None and attempt.body is not None:
            try:
                content, usage = _parse_body(attempt.body)
            except (ValueError, KeyError, IndexError, TypeError) as parse_exc:
                run.ledger.keep(worst)
                last_problem = f"malformed response body ({parse_exc})"
            else:
                return _settle(run, worst, counted, content, usage, started, retries)
        elif isinstance(exc, openai.APIStatusError):
            run.ledger.release(worst)  # an error status is not billed
            if exc.status_code == 400 and json_mode and _mentions_json_mode(str(exc)):
                # The server refuses JSON mode: ask again without it, for this and later calls.
                run.counters.json_mode_supported = False
                json_mode = False
                args.pop("response_format", None)
                continue
            retryable, last_problem = _classify_status(exc, run)
            if not retryable:
                run.count(failed_calls=1)
                raise SubcallError(last_problem) from None
        elif isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            if type(cause).__name__ == "ConnectError":
                run.ledger.release(worst)  # nothing reached the server
            else:
                run.ledger.keep(worst)
            last_problem = "connection failed" if not isinstance(exc, openai.APITimeoutError) else "request timed out"
            run.check_deadline()
        elif exc is not None:
            run.ledger.keep(worst)
            run.count(failed_calls=1)
            raise SubcallError(f"The model call failed unexpectedly: {redact(repr(exc))[:300]}") from None
        if retries >= cfg.max_retries:
            run.count(failed_calls=1)
            raise SubcallError(
                f"The model API failed {retries + 1} times in a row (last: {last_problem}). "
                "Try again later, or raise max_retries."
            )
        delay = _retry_delay(exc, retries)
        if delay >= run.remaining_seconds():
            raise run.runtime_error(
                f"Retrying after {last_problem} means waiting {delay:.1f}s, past the runtime limit of "
                f"{cfg.max_runtime_seconds:g}s. Try again later or raise --timeout."
            )
        retries += 1
        run.count(retries=1)
        time.sleep(delay)


def _settle(
    run: Run, worst: Decimal, counted: int, content: str, usage: dict[str, Any] | None, started: float, retries: int
) -> ModelReply:
    cap = run.config.max_output_tokens
    if usage is None or not isinstance(usage.get("prompt_tokens"), int) or not isinstance(
        usage.get("completion_tokens"), int
    ):
        # Unknown usage: the provider may have billed the worst case, so keep it all.
        run.ledger.keep(worst)
        run.count(usage_missing=1)
        input_tokens, output_tokens, cost, reported = counted, cap, worst, False
    else:
        reported = True
        input_tokens, output_tokens = usage["prompt_tokens"], usage["completion_tokens"]
        cost = run.pricing.cost(input_tokens, output_tokens)
        run.ledger.settle(worst, cost)
        if output_tokens > cap:
            run.count(cap_breaches=1)
    return ModelReply(content, input_tokens, output_tokens, cost, worst, time.monotonic() - started, retries, reported)

