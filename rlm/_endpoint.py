"""The model API a run talks to: base URL, key, model and what the server accepts, resolved once.

The key is asked for at the first request, not before: a task that makes no
subcalls runs with none. The model, when none is configured, is the server's
only one (``GET /models``, asked once per run however many workers need it).
What the server turns out to refuse (JSON mode, usage in the stream) is
learned here from its answers and remembered for the rest of the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rlm._attempt import ChatRequest
from rlm._budget import MAX_BYTES_PER_TOKEN
from rlm._config import GuardConfig, is_openai, without_credentials
from rlm.errors import ConfigError, SubcallError

if TYPE_CHECKING:
    from rlm._transport import Transport

__all__ = ["Endpoint", "PLACEHOLDER_KEYS"]

PLACEHOLDER_KEYS = frozenset({"sk-your-key-here", "sk-...", "your-api-key", "sk-your-api-key"})
_MODELS_TIMEOUT = 10.0


class Endpoint:
    """One run's model API: who to ask, with which key, for which model, and what it accepts.

    Owns the run's :class:`~rlm._transport.Transport` (opened at the first
    request, closed by :meth:`close`).
    """

    def __init__(self, config: GuardConfig) -> None:
        self.base_url = config.base_url
        self.api_key = config.api_key
        self.model: str | None = config.model
        #: True while the model is only remembered from an earlier run (see assume_model), not yet confirmed.
        self.assumed = False
        self.json_mode = True  # response_format json_object, until the server refuses it
        self.stream_usage = True  # stream_options.include_usage, until the server refuses it
        self.legacy_max_tokens = not is_openai(config.base_url)  # Ollama and others read only max_tokens
        self._transport: Transport | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def where(self) -> str:
        """The server, for messages: its base URL without credentials, or OpenAI."""
        return without_credentials(self.base_url) or "OpenAI"

    @property
    def is_local(self) -> bool:
        """Whether the server is on this machine (a refused connection there will not heal by retrying)."""
        import ipaddress
        from urllib.parse import urlsplit

        host = (urlsplit(self.base_url).hostname or "") if self.base_url else ""
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def problem(self) -> str | None:
        """Why requests cannot be made with these API settings, or None."""
        key, base = self.api_key, self.base_url
        if key is None and base is None:
            return ("No model API configured: set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL (for a local "
                    "OpenAI-compatible server such as Ollama, vLLM or llama.cpp), or use --dry-run.")
        if key is not None and (key in PLACEHOLDER_KEYS or "your-key" in key or "your_key" in key):
            return ("OPENAI_API_KEY is still the placeholder from .env.example. Put your real key in .env, or set "
                    "OPENAI_BASE_URL for a local server (which needs no key), or use --dry-run.")
        return None

    def transport(self) -> Transport:
        """The transport, opened on first use; ConfigError when the API settings cannot work."""
        with self._lock:
            if self._closed:
                raise ConfigError("This run has ended; its model API connection is closed. Start a new run.")
            if self._transport is None:
                problem = self.problem()
                if problem is not None:
                    raise ConfigError(problem)
                from rlm._transport import Transport

                self._transport = Transport(api_key=self.api_key, base_url=self.base_url)
            return self._transport

    def resolve_model(self, timeout: float, on_adopt: Callable[[str], object] | None = None) -> str:
        """The model to ask: the configured one, else the server's only one (asked once).

        ``on_adopt`` is told the model the server named before it is used (the budget prices it there, and
        refuses a model with no known price).
        """
        with self._lock:
            if self.model is not None:
                return self.model
        transport = self.transport()
        with self._lock:
            if self.model is not None:  # another worker asked while this one waited
                return self.model
            try:
                served = transport.list_models(timeout=min(timeout, _MODELS_TIMEOUT))
            except Exception as exc:
                raise SubcallError(
                    f"No model is set, and the server at {self.where} did not say which it serves "
                    f"(GET /models failed: {type(exc).__name__}). Check OPENAI_BASE_URL, or set RLM_MODEL "
                    "(--model).",
                    status_code=getattr(exc, "status_code", None),
                ) from exc
            model = self.only_model(served)
            if on_adopt is not None:
                on_adopt(model)
            self.model = model
            return model

    def assume_model(self, model: str) -> None:
        """Use the model the server served last time, without asking: a replay from the cache makes no request.

        The first request that must reach the server confirms it first (:meth:`confirm_model`).
        """
        with self._lock:
            if self.model is None:
                self.model, self.assumed = model, True

    def confirm_model(self, timeout: float, on_adopt: Callable[[str], object] | None = None) -> bool:
        """Check an assumed model against the server (once); True if the server now serves another one."""
        transport = self.transport()
        with self._lock:
            if not self.assumed:
                return False
            try:
                served = transport.list_models(timeout=min(timeout, _MODELS_TIMEOUT))
            except Exception:  # the request itself will say what is wrong with the server
                self.assumed = False
                return False
            self.assumed = False
            if self.model in served:
                return False
            model = self.only_model(served)
            if on_adopt is not None:
                on_adopt(model)
            self.model = model
            return True

    def only_model(self, served: Sequence[str]) -> str:
        """The server's one model, or ConfigError naming what it serves."""
        if not served:
            raise ConfigError(f"The server at {self.where} lists no models (GET /models). Set RLM_MODEL (--model).")
        if len(served) > 1:
            listed = ", ".join(served[:20]) + (", ..." if len(served) > 20 else "")
            raise ConfigError(f"The server at {self.where} serves {len(served)} models ({listed}); choose one with "
                              "--model or RLM_MODEL.")
        return served[0]

    def served_models_hint(self, timeout: float) -> str:
        """' The server serves: a, b.' for an error message, or '' (never raises)."""
        if is_openai(self.base_url):
            return ""
        try:
            names = self.transport().list_models(timeout=timeout)
        except Exception:  # the list is only a hint for the message
            return ""
        return f" The server serves: {', '.join(names[:20]) or '(none)'}."

    def request(self, messages: tuple[tuple[str, str], ...], *, temperature: float, max_output_tokens: int,
                json_mode: bool) -> ChatRequest:
        """A request shaped for what this server accepts, as learned so far."""
        assert self.model is not None, "the model is resolved before a request is built"
        return ChatRequest(
            model=self.model, messages=messages, temperature=temperature, max_output_tokens=max_output_tokens,
            json_mode=json_mode and self.json_mode, stream_usage=self.stream_usage,
            legacy_max_tokens=self.legacy_max_tokens, max_output_bytes=max_output_tokens * MAX_BYTES_PER_TOKEN,
        )

    def learn_refusal(self, request: ChatRequest, status_code: int | None, problem: str) -> bool:
        """Whether a 400 refused an option this request can do without; if so, it is dropped from now on."""
        if status_code != 400:
            return False
        text = problem.lower()
        if request.json_mode and ("response_format" in text or "json" in text):
            self.json_mode = False
            return True
        if request.stream_usage and ("stream_options" in text or "include_usage" in text):
            self.stream_usage = False
            return True
        return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
