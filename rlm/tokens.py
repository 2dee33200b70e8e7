"""Upper bounds on the tokens of a chat request, with or without tiktoken.

tiktoken downloads its BPE files on first use, which fails offline. When its
encoding cannot be loaded (or the model is not an OpenAI model it knows) the
count falls back to the UTF-8 byte length: every byte-level BPE token is at
least one byte, so that bound can only over-count, and the guards stay sound.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlm._config import token_counting_forced_to_bytes

__all__ = ["TokenCount", "count_request_tokens", "count_text_tokens", "counting_method"]

# Chat framing per message (<|start|>role ... <|end|>) and the reply primer;
# a little above OpenAI's published 3 + 3 so the bound stays a bound.
_PER_MESSAGE = 4
_REPLY_PRIMER = 3
# Headroom for the JSON-mode instruction some servers add to the prompt.
_JSON_MODE_OVERHEAD = 16


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A request's token upper bound and how it was counted."""

    tokens: int
    method: str


@functools.lru_cache(maxsize=32)
def _encoding(model: str) -> Any | None:
    """tiktoken's encoding for an OpenAI model, or None when it cannot be loaded."""
    if token_counting_forced_to_bytes():
        return None
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        return tiktoken.encoding_for_model(model)
    except KeyError:
        return None  # not an OpenAI model: its tokenizer is unknown, bytes bound it
    except Exception:
        return None  # BPE file not cached and not downloadable (offline)


def counting_method(model: str | None) -> str:
    enc = _encoding(model) if model else None
    return f"tiktoken:{enc.name}" if enc is not None else "utf8-bytes (upper bound; tiktoken encoding unavailable)"


def count_text_tokens(model: str | None, text: str) -> int:
    """An upper bound on the tokens of ``text`` (tiktoken's count, else its UTF-8 length)."""
    enc = _encoding(model) if model else None
    if enc is not None:
        return len(enc.encode_ordinary(text))
    return len(text.encode("utf-8", errors="surrogatepass"))


def count_request_tokens(model: str | None, messages: Sequence[tuple[str, str]], *,
                         json_mode: bool = False) -> TokenCount:
    """Count the whole request, ``(role, content)`` pairs: every role and content plus chat framing."""
    enc = _encoding(model) if model else None
    method = f"tiktoken:{enc.name}" if enc is not None else "utf8-bytes"
    total = _REPLY_PRIMER + (_JSON_MODE_OVERHEAD if json_mode else 0)
    for role, content in messages:
        total += _PER_MESSAGE + count_text_tokens(model, role) + count_text_tokens(model, content)
    return TokenCount(total, method)
