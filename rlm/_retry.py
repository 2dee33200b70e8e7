"""When and how long to wait before retrying a model call: the openai SDK's rules, kept.

rlm turns the SDK's own retries off (its timeout is per socket read, so it
cannot honour a run's deadline) and retries itself; these are the SDK's rules
carried over with their edge cases, so a server behaves the same under rlm as
under the SDK: ``retry-after-ms`` then ``retry-after`` (seconds or an HTTP
date); an unparseable, non-finite, zero or negative value falls back to
exponential backoff; a server-directed delay above two minutes is not retried;
``x-should-retry: true|false`` overrides the status; 408, 409, 429 and 5xx
are retried, as are connection failures and broken or malformed answers.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping

__all__ = ["MAX_RETRY_AFTER", "parse_retry_after", "should_retry", "retry_delay"]

INITIAL_DELAY = 0.5
MAX_BACKOFF = 8.0
#: Server-directed delays are honoured up to this many seconds; longer ones are not retried.
MAX_RETRY_AFTER = 120.0
_INFINITE_WORDS = {"inf", "+inf", "infinity", "+infinity"}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, v in headers.items():
            if key.lower() == name:
                return v
    return value


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait, or None when it asks nothing readable.

    A number too large for a float is an excessive delay (just above the
    maximum, so it is refused), not a malformed value; an ``inf`` literal or
    ``nan`` is returned as is and later ignored as non-finite.
    """
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = _header(headers, name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if delay == math.inf and value.strip().lower() not in _INFINITE_WORDS:
            return MAX_RETRY_AFTER + 1
        return delay / divisor
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return float(email.utils.mktime_tz(parsed) - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def should_retry(status_code: int | None, headers: Mapping[str, str]) -> bool:
    """Whether a failed attempt is worth another try (None: no HTTP status, e.g. a dropped connection)."""
    if status_code is None:
        return True
    delay = parse_retry_after(headers)
    if delay is not None and math.isfinite(delay) and delay > MAX_RETRY_AFTER:
        return False
    directive = _header(headers, "x-should-retry")
    if directive == "true":
        return True
    if directive == "false":
        return False
    return status_code in (408, 409, 429) or status_code >= 500


def retry_delay(headers: Mapping[str, str], retries_done: int, jitter: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``retries_done + 1``."""
    delay = parse_retry_after(headers)
    if delay is not None and math.isfinite(delay) and 0 < delay <= MAX_RETRY_AFTER:
        return delay
    backoff = min(INITIAL_DELAY * 2.0 ** min(retries_done, 1000), MAX_BACKOFF)
    return max(backoff * (1 - 0.25 * jitter()), 0.0)
