"""A SQLite cache of subcall answers, so a repeated run replays at $0 with no requests.

The key is a hash of everything that decides the answer: API host, model,
messages, temperature, output cap and JSON mode. The value is the answer and
the usage it cost. It lives in the user cache directory (``$RLM_CACHE_DIR``,
else ``$XDG_CACHE_HOME/rlm``, else ``~/.cache/rlm``): replays work whatever the
working directory, and cached answers never end up inside a repository.
SQLite's WAL mode and a busy timeout make it safe for threads and for several
processes at once. A corrupt file is set aside with one warning and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rlm._config import default_cache_dir

__all__ = ["CacheWarning", "CachedAnswer", "ResponseCache", "default_cache_path", "clear_cache", "cache_key",
           "expand_path"]

_FILE_NAME = "responses.sqlite3"
_OPEN_ATTEMPTS = 10
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    created REAL NOT NULL
)
"""
# The model a server with no model configured said it serves (GET /models), so a replay need not ask again.
_MODELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS served_models (
    base_url TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    seen REAL NOT NULL
)
"""


class CacheWarning(UserWarning):
    """The cache could not be used as it was (corrupt or unreadable); the run goes on."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    answer: str
    input_tokens: int
    output_tokens: int
    cost: Decimal


def expand_path(value: str | os.PathLike[str]) -> Path:
    """A path as a shell would read it: ``~`` and ``$VARS`` expanded (a ``.env`` file expands neither)."""
    return Path(os.path.expanduser(os.path.expandvars(os.fspath(value))))


def default_cache_path() -> Path:
    """``RLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/rlm``, else ``~/.cache/rlm``: the cache file in it."""
    return default_cache_dir() / _FILE_NAME


def cache_key(*, base_url: str | None, model: str, messages: list[dict[str, str]], temperature: float,
              max_output_tokens: int, json_mode: bool) -> str:
    payload = {"base_url": base_url or "https://api.openai.com/v1", "model": model, "messages": messages,
               "temperature": temperature, "max_output_tokens": max_output_tokens, "json_mode": json_mode}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _answer(row: tuple[Any, ...]) -> CachedAnswer | None:
    """A stored answer, or None for a row that does not read as one (it is skipped, as a miss)."""
    answer, input_tokens, output_tokens, cost = row
    try:
        price = Decimal(str(cost))
    except ArithmeticError:
        return None
    if not isinstance(answer, str) or not price.is_finite() or price < 0:
        return None
    if not all(isinstance(n, int) and n >= 0 for n in (input_tokens, output_tokens)):
        return None
    return CachedAnswer(answer, input_tokens, output_tokens, price)


def _sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def clear_cache(path: str | os.PathLike[str] | None = None) -> str:
    """Delete the cache file; returns a one-line report."""
    target = expand_path(path) if path is not None else default_cache_path()
    removed = [p for p in _sidecars(target) if p.exists()]
    for p in removed:
        p.unlink()
    return f"Cleared the response cache at {target}." if removed else f"No response cache at {target}."


class ResponseCache:
    """A thread-safe handle on the cache file; disabled (never raising) if it cannot be used."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = expand_path(path) if path is not None else default_cache_path()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.disabled_reason: str | None = None
        #: Why answers are not being stored (a read-only or full filesystem), while stored ones still replay.
        self.read_only_reason: str | None = None
        self._open()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Two processes creating the file at once can see "database is locked" while one of them
        # switches it to WAL; SQLite's busy handler does not cover that step, so retry briefly.
        for attempt in range(_OPEN_ATTEMPTS):
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout = 10000")
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                # In WAL mode NORMAL cannot corrupt the file; a crash may only lose the last answers.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA)
                conn.execute(_MODELS_SCHEMA)
                conn.execute("SELECT count(*) FROM responses WHERE key = ''").fetchone()
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if "locked" not in str(exc) or attempt == _OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _open(self) -> None:
        try:
            self._conn = self._connect()
        except sqlite3.OperationalError as exc:  # the filesystem (read-only, full) or a lock, not the file
            if "locked" in str(exc):
                self._disable(f"it is locked by another process ({exc})")
                return
            self._open_read_only(str(exc))
        except sqlite3.DatabaseError as exc:  # the file itself is not a database, or is damaged
            self._set_aside(exc)
        except OSError as exc:
            self._open_read_only(exc.strerror or str(exc))

    def _open_read_only(self, why: str) -> None:
        """Replay what the cache holds without writing to it; give it up only if it cannot even be read."""
        if not self.path.is_file():
            self._disable(f"it cannot be created ({why})")
            return
        for query in ("mode=ro", "mode=ro&immutable=1"):  # immutable: a WAL file on a read-only filesystem
            try:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{query}", uri=True, timeout=10.0,
                                       check_same_thread=False, isolation_level=None)
                conn.execute("SELECT count(*) FROM responses WHERE key = ''").fetchone()
            except sqlite3.Error:
                continue
            self._conn = conn
            self._stop_writing(why)
            return
        self._disable(f"it cannot be opened ({why})")

    def _stop_writing(self, why: str) -> None:
        if self.read_only_reason is None:
            self.read_only_reason = why
            warnings.warn(f"The response cache at {self.path} cannot be written ({why}): its answers still replay, "
                          "new ones are not stored.", CacheWarning, stacklevel=4)

    def _set_aside(self, exc: BaseException) -> None:
        """Move a corrupt file out of the way (with one warning) and start a fresh one."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for p in _sidecars(self.path):
                if p.exists():
                    p.replace(p.with_name(p.name.replace(self.path.name, aside.name)))
            warnings.warn(f"The response cache at {self.path} was unreadable ({exc}); it was moved to {aside} "
                          "and a new cache was started.", CacheWarning, stacklevel=2)
            self._conn = self._connect()
        except (OSError, sqlite3.Error) as again:
            self._disable(f"it is corrupt and could not be rebuilt ({again})")

    def _disable(self, why: str) -> None:
        self.disabled_reason = why
        self._conn = None
        warnings.warn(f"The response cache at {self.path} is not used for this run: {why}.", CacheWarning,
                      stacklevel=3)

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            if self._conn is None:
                return None
            try:
                row = self._conn.execute(
                    "SELECT answer, input_tokens, output_tokens, cost_usd FROM responses WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.OperationalError:  # the disk, not the file: this answer is asked for afresh
                return None
            except sqlite3.DatabaseError as exc:
                self._set_aside(exc)
                return None
        return None if row is None else _answer(row)

    def put(self, key: str, model: str, answer: CachedAnswer) -> None:
        with self._lock:
            if self._conn is None or self.read_only_reason is not None:
                return
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, model, answer.answer, answer.input_tokens, answer.output_tokens, str(answer.cost),
                     time.time()),
                )
            except sqlite3.OperationalError as exc:  # full or read-only: keep replaying, stop storing
                self._stop_writing(str(exc))
            except sqlite3.DatabaseError as exc:
                self._set_aside(exc)

    def served_model(self, base_url: str) -> str | None:
        """The model ``base_url`` last said it serves, if this cache saw it."""
        with self._lock:
            if self._conn is None:
                return None
            try:
                row = self._conn.execute("SELECT model FROM served_models WHERE base_url = ?", (base_url,)).fetchone()
            except sqlite3.DatabaseError:
                return None
        return None if row is None else str(row[0])

    def remember_model(self, base_url: str, model: str) -> None:
        """Note the model ``base_url`` serves (see :meth:`served_model`)."""
        with self._lock:
            if self._conn is None:
                return
            if self.read_only_reason is not None:
                return
            with contextlib.suppress(sqlite3.DatabaseError):
                self._conn.execute("INSERT OR REPLACE INTO served_models VALUES (?, ?, ?)",
                                   (base_url, model, time.time()))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            if self._conn is None:
                return {"path": str(self.path), "entries": 0, "disabled": self.disabled_reason}
            (n,) = self._conn.execute("SELECT count(*) FROM responses").fetchone()
        return {"path": str(self.path), "entries": n}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
