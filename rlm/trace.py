"""The audit trail: an opt-in JSONL file with one event per step of a run.

Each event is written and flushed as it happens, so a killed process leaves
a valid file up to its last event. Secrets (API keys) are scrubbed from
every line before it is written. The schema is documented in the README.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rlm._config import configured_secrets
from rlm.errors import ConfigError

__all__ = ["TraceWriter", "RunRecord", "read_runs", "redact", "secret_values"]

# Anything shaped like an OpenAI key, even one we were never told about.
_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")


def secret_values() -> list[str]:
    """The secret strings currently configured in the environment."""
    return configured_secrets()


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Replace every known secret, and anything shaped like an API key, with ``***``."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, "***")
    return _KEY_SHAPE.sub("sk-***", text)


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


class TraceWriter:
    """Appends events to a JSONL file, one flushed line each, safe across threads."""

    def __init__(self, path: str | os.PathLike[str], run_id: str, *, seq: int = 0) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self._lock = threading.Lock()
        self._seq = seq  # the last sequence number written; a writer that continues a run's trail starts there
        self._secrets = secret_values()
        try:
            self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the trace to {self.path}: {exc.strerror or exc}. Pass a writable file path "
                "to --trace (trace_path)."
            ) from None

    @property
    def seq(self) -> int:
        """The sequence number of the last event written."""
        return self._seq

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            if self._file is None:
                return
            self._seq += 1
            record = {"event": event, "run_id": self.run_id, "seq": self._seq, "ts": round(time.time(), 6), **fields}
            line = redact(json.dumps(record, default=_jsonable, ensure_ascii=False), self._secrets)
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@dataclass(frozen=True)
class RunRecord:
    """One run as a trace recorded it: its start and (unless the process was killed) its end."""

    run_id: str
    start: dict[str, Any]
    end: dict[str, Any] | None

    @property
    def task(self) -> str | None:
        value = self.start.get("task")
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str | None:
        return None if self.end is None else self.end.get("status")


def read_runs(path: str | os.PathLike[str]) -> list[RunRecord]:
    """The top-level runs of a JSONL trace, in order (unreadable lines are skipped)."""
    starts: dict[str, dict[str, Any]] = {}
    ends: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or not isinstance(event.get("run_id"), str):
                continue
            run_id = event["run_id"]
            if event.get("event") == "run_start" and event.get("depth", 0) == 0 and run_id not in starts:
                starts[run_id] = event
                order.append(run_id)
            elif event.get("event") == "run_end" and run_id in starts:
                ends[run_id] = event
    return [RunRecord(run_id, starts[run_id], ends.get(run_id)) for run_id in order]
