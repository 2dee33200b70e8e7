"""Configuration, resolved in one place: explicit values, then the environment, then ``.env``.

This is the only module that reads the process environment. The command
line (and the MCP server) load a ``.env`` file into it first with
:func:`load_dotenv_file`, never overriding a variable that is already set, so
the order is always: an explicit value, a real environment variable, a
``.env`` line, the default. :class:`GuardConfig` is resolved once, when it is
built; the values it holds are frozen and it does no I/O afterwards.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rlm.errors import ConfigError
from rlm.pricing import Pricing, resolve_pricing

__all__ = [
    "GuardConfig",
    "env",
    "env_flag",
    "load_dotenv_file",
    "configured_secrets",
    "default_cache_dir",
    "token_counting_forced_to_bytes",
    "is_openai",
    "without_credentials",
    "validate_base_url",
    "secrets_of",
    "runtime_limit",
    "DEFAULT_MAX_COST",
    "DEFAULT_MAX_RUNTIME",
    "DEFAULT_OPENAI_MODEL",
]

DEFAULT_MAX_COST = 0.50
DEFAULT_MAX_RUNTIME = 60.0
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
#: Variables whose values are secrets: redacted from every output.
_SECRET_ENV = ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY")
_TRUE = ("1", "true", "yes", "on")


def env(name: str) -> str | None:
    """A variable of the environment, stripped; None when unset or blank."""
    return os.environ.get(name, "").strip() or None


def env_flag(name: str) -> bool:
    """Whether a yes/no variable (``RLM_DEBUG=1``) is on."""
    return (env(name) or "").lower() in _TRUE


def load_dotenv_file() -> str | None:
    """Load the nearest ``.env`` (from the current directory up) without overriding what is set; its path."""
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if path:
        load_dotenv(path, override=False)  # the real environment wins over .env
    return path or None


def configured_secrets() -> list[str]:
    """The secret values the environment holds now (the API key), for redaction."""
    return [v for name in _SECRET_ENV if (v := os.environ.get(name, "")) and len(v) >= 4]


def default_cache_dir() -> Path:
    """Where the response cache lives: ``RLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/rlm``, else ``~/.cache/rlm``."""
    base = env("RLM_CACHE_DIR")
    if base:
        return Path(os.path.expanduser(os.path.expandvars(base)))
    xdg = env("XDG_CACHE_HOME")
    return Path(xdg) / "rlm" if xdg else Path.home() / ".cache" / "rlm"


def token_counting_forced_to_bytes() -> bool:
    """``RLM_TOKEN_COUNTING=bytes``: count tokens by the UTF-8 byte bound even where tiktoken could load."""
    return (env("RLM_TOKEN_COUNTING") or "").lower() == "bytes"


def is_openai(base_url: str | None) -> bool:
    """Whether requests go to OpenAI itself (no base URL, or an openai.com host)."""
    return base_url is None or (urlsplit(base_url).hostname or "").endswith("openai.com")


def without_credentials(url: str | None) -> str | None:
    """A URL fit for output: any ``user:password@`` part removed."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:  # unparseable: keep nothing after the scheme that could be a secret
        return url.split("@", 1)[-1] if "@" in url else url
    return urlunsplit(parts._replace(netloc=netloc))


def secrets_of(api_key: str | None, base_url: str | None) -> list[str]:
    """The key, and the user and password of a base URL (``http://user:pass@host``): never to be shown."""
    found = [api_key] if api_key else []
    if base_url:
        with contextlib.suppress(ValueError):
            parts = urlsplit(base_url)
            found += [v for v in (parts.password, parts.username) if v and len(v) >= 4]
    return found


def validate_base_url(url: str, *, where: str) -> str:
    """Refuse a base URL the SDK cannot use, in one line that says what is wrong with it."""
    shown = without_credentials(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # reading it raises for a port out of range
    except ValueError as exc:
        raise ConfigError(f"{where} is not a valid URL ({exc}): {shown!r}. Use e.g. http://127.0.0.1:8080/v1.") \
            from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where} must start with http:// or https:// (got {shown!r}), "
                          "e.g. http://127.0.0.1:11434/v1 for Ollama.")
    if not parts.hostname:
        raise ConfigError(f"{where} names no host (got {shown!r}); e.g. http://127.0.0.1:8080/v1.")
    return url


def _number(name: str, value: object, *, env_name: str | None, integer: bool = False,
            allow_zero: bool = False) -> Any:
    """Validate one numeric setting where it enters; the message names it and what is allowed."""
    where = f"{env_name} (from the environment)" if env_name else name
    allowed = ("a whole number" if integer else "a number") + (" of 0 or more" if allow_zero else " above 0")
    refused = ConfigError(f"{where} must be {allowed} (got {value!r}).")
    if isinstance(value, bool):
        raise refused
    try:
        number = int(value) if integer and not isinstance(value, float) else float(value)  # type: ignore[call-overload,arg-type]
    except (TypeError, ValueError):
        raise refused from None
    if integer and isinstance(value, float) and not value.is_integer():
        raise refused
    if isinstance(number, float) and not math.isfinite(number):
        raise refused
    if number < 0 or (number == 0 and not allow_zero):
        raise refused
    return int(number) if integer else float(number)


def _setting(name: str, value: object, env_name: str, default: object, **kw: Any) -> Any:
    """An explicit value, else the environment variable, else the default; validated."""
    if value is None:
        raw = env(env_name)
        if raw is not None:
            return _number(name, raw, env_name=env_name, **kw)
        value = default
    return _number(name, value, env_name=None, **kw)


def runtime_limit(explicit: float | None = None) -> float:
    """The runtime limit in seconds: ``explicit``, else ``RLM_MAX_RUNTIME``, else 60 (as GuardConfig resolves it)."""
    return float(_setting("max_runtime_seconds", explicit, "RLM_MAX_RUNTIME", DEFAULT_MAX_RUNTIME))


def _optional_price(name: str, value: float | None, env_name: str) -> float | None:
    if value is None:
        raw = env(env_name)
        return None if raw is None else float(_number(name, raw, env_name=env_name, allow_zero=True))
    return float(_number(name, value, env_name=None, allow_zero=True))


def _text(name: str, value: object, env_name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string (got {type(value).__name__}).")
    return (value.strip() or None) if value is not None else env(env_name)


def _path(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.path.expanduser(os.path.expandvars(os.fspath(value)))


@dataclass(frozen=True, init=False)
class GuardConfig:
    """The limits of one run, and the model API it talks to. Resolved once, when it is built.

    Values left as ``None`` come from the environment, then the defaults:
    ``max_cost`` (USD, env ``RLM_MAX_COST``, default 0.50); ``max_runtime_seconds``
    (env ``RLM_MAX_RUNTIME``, default 60); ``api_key`` (env ``OPENAI_API_KEY``);
    ``base_url`` (env ``OPENAI_BASE_URL``; unset means OpenAI); ``model`` (env
    ``RLM_MODEL``; unset means gpt-4o-mini on OpenAI, and the server's only
    model on any other server, asked with ``GET /models``); prices in USD per
    1M tokens (env ``RLM_PRICE_INPUT`` / ``RLM_PRICE_OUTPUT``; 0 for a local
    server). Bad values are refused here, with a message naming the value.
    Once built, ``max_cost`` and ``max_runtime_seconds`` are always numbers;
    ``model`` is None only when the server is to be asked.
    """

    max_cost: float
    max_tokens_per_subcall: int
    max_runtime_seconds: float
    model: str | None
    max_depth: int
    max_output_tokens: int
    price_input_per_mtok: float | None
    price_output_per_mtok: float | None
    temperature: float
    max_retries: int
    max_workers: int
    trace_path: str | None
    dry_run: bool
    cache: bool
    cache_path: str | None
    cache_nonzero_temperature: bool
    base_url: str | None
    api_key: str | None = field(repr=False)

    def __init__(
        self,
        max_cost: float | None = None,
        max_tokens_per_subcall: int = 4000,
        max_runtime_seconds: float | None = None,
        model: str | None = None,
        max_depth: int = 1,
        max_output_tokens: int = 1024,
        price_input_per_mtok: float | None = None,
        price_output_per_mtok: float | None = None,
        temperature: float = 0.0,
        max_retries: int = 4,
        max_workers: int = 8,
        trace_path: str | os.PathLike[str] | None = None,
        dry_run: bool = False,
        cache: bool = False,
        cache_path: str | os.PathLike[str] | None = None,
        cache_nonzero_temperature: bool = False,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        put = object.__setattr__
        put(self, "max_cost", _setting("max_cost", max_cost, "RLM_MAX_COST", DEFAULT_MAX_COST))
        put(self, "max_runtime_seconds", runtime_limit(max_runtime_seconds))
        for name, value in (("max_tokens_per_subcall", max_tokens_per_subcall),
                            ("max_output_tokens", max_output_tokens), ("max_depth", max_depth),
                            ("max_workers", max_workers)):
            put(self, name, _number(name, value, env_name=None, integer=True))
        put(self, "max_retries", _number("max_retries", max_retries, env_name=None, integer=True, allow_zero=True))
        put(self, "temperature", _number("temperature", temperature, env_name=None, allow_zero=True))
        if self.temperature > 2:
            raise ConfigError(f"temperature must be between 0 and 2 (got {temperature!r}).")
        put(self, "api_key", _text("api_key", api_key, "OPENAI_API_KEY"))
        base = _text("base_url", base_url, "OPENAI_BASE_URL")
        if base is not None:
            validate_base_url(base, where="base_url" if base_url is not None else "OPENAI_BASE_URL")
        put(self, "base_url", base)
        put(self, "trace_path", _path(trace_path))
        put(self, "cache_path", _path(cache_path))
        for name, flag in (("dry_run", dry_run), ("cache", cache),
                           ("cache_nonzero_temperature", cache_nonzero_temperature)):
            put(self, name, bool(flag))
        resolved = model if model is not None else env("RLM_MODEL")
        if resolved is not None and (not isinstance(resolved, str) or not resolved.strip()):
            raise ConfigError(f"model must be a non-empty model name (got {resolved!r}).")
        if resolved is None and is_openai(self.base_url):
            resolved = DEFAULT_OPENAI_MODEL
        put(self, "model", resolved.strip() if resolved else None)
        put(self, "price_input_per_mtok",
            _optional_price("price_input_per_mtok", price_input_per_mtok, "RLM_PRICE_INPUT"))
        put(self, "price_output_per_mtok",
            _optional_price("price_output_per_mtok", price_output_per_mtok, "RLM_PRICE_OUTPUT"))
        if self.model is not None or self.has_price_override:
            self.pricing()  # refuse a model with no known price now, before any call is made

    @property
    def has_price_override(self) -> bool:
        return self.price_input_per_mtok is not None or self.price_output_per_mtok is not None

    def pricing(self, model: str | None = None) -> Pricing:
        """Prices of ``model`` (default: this config's model): the override first, then genai-prices."""
        def dec(v: float | None) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        name = model or self.model or "(the server's model)"
        return resolve_pricing(name, dec(self.price_input_per_mtok), dec(self.price_output_per_mtok))

    def secrets(self) -> list[str]:
        """What must never be shown: the API key and any credentials in the base URL, however they were given."""
        return secrets_of(self.api_key, self.base_url)

    def public_dict(self) -> dict[str, Any]:
        """The config as plain data, for traces: the API key is left out, the base URL has no credentials."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        data["base_url"] = without_credentials(self.base_url)
        data["api_key_set"] = self.api_key is not None
        return data
