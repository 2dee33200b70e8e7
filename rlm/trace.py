"""The audit trail: an opt-in JSONL file with one event per step of a run.

Each event is written and flushed as it happens, so a killed process leaves
a valid file up to its last event. Secrets (API keys) are scrubbed from
every line before it is written. The schema is in docs/reports-and-resuming.md.
:class:`TraceReader` is the one way back in, for the audit report and for the
command line's ``--resume`` checks alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rlm._config import configured_secrets
from rlm.errors import ConfigError

__all__ = ["TraceWarning", "TraceWriter", "TraceReader", "RunRecord", "read_runs", "redact", "secret_values"]

# Anything shaped like an OpenAI key, even one we were never told about.
_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")
# The credentials of a URL (``https://user:password@host``), whoever wrote them where.
_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/@:]*:[^\s/@]*@")

# TraceWriter starts every line with the event's name and then its run, so a regex finds both
# without parsing the line (``[^"\\]*``: a name with an escape in it is parsed instead).
_HEAD = re.compile(r'\{"event": "([^"\\]*)", "run_id": "([^"\\]*)"')
_BLOCK_RUN = re.compile(rb'\n\{"event": "[^"\\]*", "run_id": "([^"\\]*)"')
_SCAN_BLOCK = 8 << 20
_RUN_BOUNDS = frozenset({"run_start", "run_end"})


def secret_values() -> list[str]:
    """The secret strings currently configured in the environment."""
    return configured_secrets()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace the environment's secrets, ``secrets``, URL credentials and anything shaped like a key with ``***``."""
    for secret in (*secret_values(), *secrets):
        if secret:
            text = text.replace(secret, "***")
    return _KEY_SHAPE.sub("sk-***", _URL_CREDENTIALS.sub(r"\1***@", text))


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


class TraceWarning(UserWarning):
    """The trace could not be written; the run goes on and its result is still returned."""


class TraceWriter:
    """Appends events to a JSONL file, one flushed line each, safe across threads."""

    def __init__(self, path: str | os.PathLike[str], run_id: str, *, seq: int = 0,
                 secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self._lock = threading.Lock()
        self._seq = seq  # the last sequence number written; a writer that continues a run's trail starts there
        self._secrets = [*secret_values(), *secrets]
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
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as exc:
                self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        """Stop writing (a full disk, a vanished mount): the run goes on and its result still prints."""
        file, self._file = self._file, None
        with contextlib.suppress(OSError):
            if file is not None:
                file.close()
        warnings.warn(f"The trace at {self.path} could not be written ({exc.strerror or exc}); it stops at event "
                      f"{self._seq - 1}, and the run goes on without it.", TraceWarning, stacklevel=4)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()  # flushes what is buffered: it may fail like a write
                except OSError as exc:
                    warnings.warn(f"The trace at {self.path} could not be completed ({exc.strerror or exc}).",
                                  TraceWarning, stacklevel=3)


@dataclass(frozen=True)
class RunRecord:
    """One top-level run as a trace recorded it: its start and (unless the process was killed) its end."""

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


class TraceReader:
    """Reads a JSONL trace line by line (never the whole file at once), skipping lines that are not events.

    A line that is not a JSON object with a string ``event`` and ``run_id``, such as the
    half-written last line of a killed process, is skipped and counted in :attr:`skipped`.
    Lines :class:`TraceWriter` wrote carry the event and run first, so lines of other runs
    or kinds are passed over without being parsed: a 100,000-subcall trace reads fast.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        #: Lines of the last pass (``events``, ``runs`` or ``run_ids``) that were not events.
        self.skipped = 0

    def _lines(self) -> Iterator[str]:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    yield line

    def events(self, run_id: str | None = None, kinds: Container[str] | None = None) -> Iterator[dict[str, Any]]:
        """The events of ``run_id`` (default: every run) whose name is in ``kinds`` (default: all), in order."""
        self.skipped = 0
        for line in self._lines():
            head = _HEAD.match(line)
            if head is not None and ((run_id is not None and head[2] != run_id)
                                     or (kinds is not None and head[1] not in kinds)):
                continue
            event = _event(line)
            if event is None:
                self.skipped += 1
            elif (run_id is None or event["run_id"] == run_id) and (kinds is None or event["event"] in kinds):
                yield event

    def run_ids(self) -> list[str]:
        """Every run in the trace, in the order each first appears.

        A scan of the bytes for TraceWriter's line heads; only a last line with no newline
        after it is parsed, so a half-written one names no run.
        """
        self.skipped = 0
        seen: dict[str, None] = {}
        with open(self.path, "rb") as f:
            carry = b"\n"  # every line is matched with the newline before it: a literal prefix, fast to find
            while block := f.read(_SCAN_BLOCK):
                data = carry + block
                cut = data.rfind(b"\n")
                for rid in _BLOCK_RUN.findall(data, 0, cut):
                    seen.setdefault(rid.decode("utf-8", "replace"), None)
                carry = data[cut:]
        last = _event(carry.decode("utf-8", "replace"))  # a line with no newline after it may be half-written
        if last is not None:
            seen.setdefault(last["run_id"], None)
        if not seen:  # not written by TraceWriter (keys in another order): parse every line
            for event in self.events():
                seen.setdefault(event["run_id"], None)
        return list(seen)

    def runs(self) -> list[RunRecord]:
        """The top-level runs (``run_start`` at depth 0), in the order they started."""
        starts: dict[str, dict[str, Any]] = {}
        ends: dict[str, dict[str, Any]] = {}
        for event in self.events(kinds=_RUN_BOUNDS):
            run_id = event["run_id"]
            if event["event"] == "run_start" and event.get("depth", 0) == 0 and run_id not in starts:
                starts[run_id] = event
            elif event["event"] == "run_end" and run_id in starts:
                ends[run_id] = event  # a nested run sharing the writer ends first; the run's own end is the last
        return [RunRecord(run_id, start, ends.get(run_id)) for run_id, start in starts.items()]


def _event(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("event"), str) and isinstance(value.get("run_id"), str):
        return value
    return None


def read_runs(path: str | os.PathLike[str]) -> list[RunRecord]:
    """The top-level runs of a JSONL trace, in order (lines that are not events are skipped); raises ``OSError``."""
    return TraceReader(path).runs()
