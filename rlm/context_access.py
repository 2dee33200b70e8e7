"""Explicit, audited navigation of a context that never enters a prompt whole.

A task receives a :class:`Context`, not a string. Text passed as ``str`` is
kept in memory; a file is memory-mapped read-only, so a 20 GB log costs page
cache, not heap. Every function here returns bounded :class:`Chunk` pieces
that remember their span, and records the access on the context (and on the
current run's trace, when there is one).

Positions are offsets into the context: characters for in-memory text, bytes
for a mapped file. Every function accepts the positions the others return.

Clamping rule: a position below 0 is read as 0 and one past the end as the
end (``context_slice(ctx, m.start - 200, m.end + 200)`` is always safe); an
empty or inverted span gives an empty chunk. Negative positions are *not*
counted from the end. Over a mapped file, a span boundary that falls inside a
multi-byte UTF-8 character is moved outward to the character's edge, so a
slice never returns less than asked for and never splits a character;
invalid UTF-8 decodes to U+FFFD.
"""

from __future__ import annotations

import itertools
import mmap
import operator
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from rlm._regex import SearchDeadline, Searcher
from rlm._scope import current_scope
from rlm.errors import ContextAccessError

__all__ = [
    "Access",
    "Chunk",
    "Context",
    "ContextSource",
    "Match",
    "DEFAULT_MAX_HITS",
    "DEFAULT_CHUNK_SIZE",
    "open_context",
    "context_head",
    "context_tail",
    "context_slice",
    "context_search",
    "context_finditer",
    "context_chunks",
    "context_line",
]

#: Bounded default for ``context_search`` (rule 3: bound every iteration).
DEFAULT_MAX_HITS = 100
#: Default piece size for ``context_chunks``, in positions.
#: 3000 bytes leave room, under the default 4000-token limit counted as UTF-8 bytes (the offline
#: bound), for the system prompt and an instruction of up to about 800 bytes.
DEFAULT_CHUNK_SIZE = 3000
#: How many recent accesses a context keeps in memory; the trace keeps all.
_ACCESS_LOG_SIZE = 10_000
#: Line numbers are counted lazily, with a checkpoint every block.
_LINE_BLOCK = 4 << 20


class Chunk(str):
    """Text read from a context, carrying the span ``[start, end)`` it came from.

    It is a ``str`` in every way (string methods return plain ``str``); the
    span lets a subcall and the trace say exactly where its text came from.
    ``start`` and ``end`` are context offsets: characters for a text context,
    bytes for a file. To cite a piece of the chunk, map positions in the
    string back to the context with :meth:`offset_of` and :meth:`span_of`,
    never ``chunk.start + i`` (over a file that is wrong after any non-ASCII
    character).
    """

    start: int
    end: int
    _fixes: tuple[tuple[int, int], ...]  # (index of a U+FFFD that replaced bad bytes, how many bytes it replaced)

    def __new__(cls, text: str, start: int, end: int, _fixes: tuple[tuple[int, int], ...] = ()) -> Chunk:
        obj = super().__new__(cls, text)
        obj.start = start
        obj.end = end
        obj._fixes = _fixes
        return obj

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    def offset_of(self, index: int) -> int:
        """The context offset of position ``index`` of this string (``len(chunk)`` maps to ``end``).

        Exact for multi-byte text and for bytes that were not valid UTF-8
        (each became one U+FFFD). Negative indexes count from the end, as for a str.
        """
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index <= size:
            raise IndexError(f"position {index} is outside this chunk of {size} characters")
        if self.end - self.start == size and not self._fixes:
            return self.start + index  # text, or a file chunk that is all ASCII
        offset = len(str.__getitem__(self, slice(0, index)).encode("utf-8", errors="surrogatepass"))
        for at, replaced in self._fixes:
            if at < index:
                offset += replaced - 3  # U+FFFD is 3 bytes in UTF-8; it stood for `replaced` bytes
        return self.start + offset

    def span_of(self, text: str, start: int = 0) -> tuple[int, int] | None:
        """The context span ``(start, end)`` of the first ``text`` in this chunk (from position ``start``), or None."""
        index = self.find(text, start)
        if index < 0:
            return None
        return (self.offset_of(index), self.offset_of(index + len(text)))

    def __getnewargs__(self) -> tuple[str, int, int, tuple[tuple[int, int], ...]]:  # type: ignore[override]
        return (str(self), self.start, self.end, self._fixes)

    def __repr__(self) -> str:
        text = str.__repr__(self)
        if len(text) > 60:
            text = text[:57] + "..."
        return f"Chunk({text}, start={self.start}, end={self.end})"


def _decode_bytes(raw: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """UTF-8 text of ``raw`` with each invalid sequence as one U+FFFD, and where those replacements are."""
    try:
        return raw.decode("utf-8"), ()
    except UnicodeDecodeError:
        pass
    parts: list[str] = []
    fixes: list[tuple[int, int]] = []
    chars = pos = 0
    while pos < len(raw):
        try:
            good = raw[pos:].decode("utf-8")
        except UnicodeDecodeError as exc:  # the same rule as errors="replace": one U+FFFD per bad sequence
            good = raw[pos:pos + exc.start].decode("utf-8")
            parts.append(good)
            chars += len(good)
            fixes.append((chars, exc.end - exc.start))
            parts.append("\ufffd")
            chars += 1
            pos += exc.end
        else:
            parts.append(good)
            break
    return "".join(parts), tuple(fixes)


def _chunk_of(raw: str | bytes, start: int, end: int) -> Chunk:
    if isinstance(raw, str):
        return Chunk(raw, start, end)
    text, fixes = _decode_bytes(raw)
    return Chunk(text, start, end, fixes)


@dataclass(frozen=True, slots=True)
class Access:
    """One recorded read of a context: which function, which span, how much came back."""

    function: str
    start: int
    end: int
    returned: int
    detail: str = ""


ContextSource = Union[str, "os.PathLike[str]", "Context"]


class _LineIndex:
    """Maps positions to 1-based line numbers, counting newlines only when asked.

    A cursor makes lookups in increasing order (the order of search hits)
    cost one pass in total; the checkpoints it leaves at every block boundary
    bound a lookup further back to one block of counting.
    """

    def __init__(self, count: Callable[[int, int], int]) -> None:
        self._count = count
        self._lock = threading.Lock()
        self._checkpoints = [0]  # newlines before k * _LINE_BLOCK, for every boundary passed so far
        self._cursor = (0, 0)  # (position, newlines before it)

    def line_at(self, pos: int) -> int:
        with self._lock:
            cps = self._checkpoints
            cur_pos, lines = self._cursor
            if pos < cur_pos:  # backwards: restart from the checkpoint at or before pos
                block = min(pos // _LINE_BLOCK, len(cps) - 1)
                cur_pos, lines = block * _LINE_BLOCK, cps[block]
            while (boundary := (cur_pos // _LINE_BLOCK + 1) * _LINE_BLOCK) <= pos:
                lines += self._count(cur_pos, boundary)
                cur_pos = boundary
                if boundary // _LINE_BLOCK == len(cps):
                    cps.append(lines)
            lines += self._count(cur_pos, pos)
            self._cursor = (pos, lines)
            return lines + 1


class Match(tuple):  # type: ignore[type-arg]
    """One search hit: its span, its text (a :class:`Chunk`) and its 1-based line.

    An immutable value (a tuple underneath, so a million hits stay cheap).
    ``line`` is counted on first use (one pass over the context at most), so
    counting hits does not pay for line numbers nobody reads.
    """

    __slots__ = ()

    def __new__(cls, start: int, end: int, raw: str | bytes, groups: tuple[str | bytes | None, ...],
                lines: _LineIndex) -> Match:
        return tuple.__new__(cls, (start, end, raw, groups, lines))

    start: int = property(operator.itemgetter(0), doc="Where the hit starts.")  # type: ignore[assignment]
    end: int = property(operator.itemgetter(1), doc="Where the hit ends (exclusive).")  # type: ignore[assignment]

    @property
    def span(self) -> tuple[int, int]:
        return (self[0], self[1])

    @property
    def text(self) -> Chunk:
        return _chunk_of(self[2], self[0], self[1])

    @property
    def line(self) -> int:
        lines: _LineIndex = self[4]
        return lines.line_at(self[0])

    @property
    def groups(self) -> tuple[str | None, ...]:
        return tuple(None if g is None else _decode(g) for g in self[3])

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view: span, line and text."""
        return {"start": self.start, "end": self.end, "line": self.line, "text": str(self.text)}

    def __repr__(self) -> str:
        return f"Match(start={self.start}, end={self.end}, line={self.line}, text={str(self.text)!r})"


def _decode(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else _decode_bytes(raw)[0]


class Context:
    """The document a task works on, held outside every prompt.

    Build one with :func:`open_context`. It refuses ``ctx[a:b]``, iteration
    and ``str(ctx)`` so that the whole text cannot slip into a prompt; use the
    ``context_*`` functions instead. ``len(ctx)`` is its size in positions.
    """

    def __init__(
        self,
        *,
        text: str | None = None,
        path: Path | None = None,
        name: str | None = None,
    ) -> None:
        self._text = text
        self._mm: mmap.mmap | None = None
        self._file = None
        self.path = path
        if path is not None:
            self._file = open(path, "rb")
            size = os.fstat(self._file.fileno()).st_size
            # An empty file cannot be mapped; it is a valid empty context.
            if size:
                self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._length = size
        else:
            assert text is not None
            self._length = len(text)
        self.name = name or (str(path) if path is not None else "<text>")
        self.accesses: deque[Access] = deque(maxlen=_ACCESS_LOG_SIZE)
        self.access_count = 0
        self._record_lock = threading.Lock()  # parallel subcalls read the same context
        self._lines = _LineIndex(self._count_newlines)
        self._closed = False

    # -- what a context is ---------------------------------------------------
    @property
    def unit(self) -> str:
        """What a position counts: ``"chars"`` for text, ``"bytes"`` for a mapped file."""
        return "bytes" if self.path is not None else "chars"

    @property
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> dict[str, object]:
        """A secret-free description for traces and summaries."""
        return {"name": self.name, "length": self._length, "unit": self.unit, "mapped": self._mm is not None}

    def close(self) -> None:
        """Unmap and close the file. Text contexts have nothing to release."""
        if self._closed:
            return
        self._closed = True
        if self._mm is not None:
            self._mm.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"<Context {self.name!r} {self._length} {self.unit}>"

    # -- rule 2, enforced ----------------------------------------------------
    def __getitem__(self, key: object) -> str:
        raise ContextAccessError(
            "Contexts cannot be indexed or sliced directly (rule 2). "
            "Use context_slice(ctx, start, end), context_head(ctx, n) or context_tail(ctx, n)."
        )

    def __iter__(self) -> Iterator[str]:
        raise ContextAccessError(
            "Contexts cannot be iterated directly (rule 2). "
            "Use context_chunks(ctx, size) to walk it in bounded pieces."
        )

    def __contains__(self, item: object) -> bool:
        raise ContextAccessError(
            "'x in ctx' would scan the whole context unaudited. Use context_search(ctx, pattern, max_hits=1)."
        )

    def __str__(self) -> str:
        raise ContextAccessError(
            "A context cannot be turned into one string (rule 1: never load the context into a prompt). "
            "Narrow it with context_search / context_slice and pass bounded chunks to subcalls."
        )

    def __format__(self, spec: str) -> str:
        return self.__str__()

    # -- raw reads (internal) ------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ContextAccessError(f"Context {self.name!r} is closed; open it again with open_context().")

    def _record(self, function: str, start: int, end: int, returned: int, detail: str = "") -> None:
        access = Access(function, start, end, returned, detail)
        with self._record_lock:
            self.accesses.append(access)
            self.access_count += 1
        run = current_scope()
        if run is not None:
            run.record_access(context=self.name, function=function, start=start, end=end, returned=returned,
                              detail=detail, file=None)

    def _snap(self, pos: int, forward: bool) -> int:
        """Move a byte position off a UTF-8 continuation byte (outward)."""
        mm = self._mm
        if mm is None:
            return pos
        n = self._length
        for _ in range(3):
            if pos <= 0 or pos >= n or (mm[pos] & 0xC0) != 0x80:
                break
            pos += 1 if forward else -1
        return pos

    def _clamp(self, start: int, end: int) -> tuple[int, int]:
        start = min(max(int(start), 0), self._length)
        end = min(max(int(end), 0), self._length)
        if end <= start:
            return start, start
        return self._snap(start, forward=False), self._snap(end, forward=True)

    def _read(self, start: int, end: int) -> Chunk:
        """``[start, end)`` as a Chunk (the span is not clamped or recorded here)."""
        if self._text is not None:
            return Chunk(self._text[start:end], start, end)
        if self._mm is None or end <= start:
            return Chunk("", start, max(start, end))
        return _chunk_of(self._mm[start:end], start, end)

    def _find_newline(self, lo: int, hi: int, *, last: bool = False) -> int:
        """Position of the first (or last) newline in ``[lo, hi)``, or -1."""
        if self._text is not None:
            return self._text.rfind("\n", lo, hi) if last else self._text.find("\n", lo, hi)
        if self._mm is None:
            return -1
        return self._mm.rfind(b"\n", lo, hi) if last else self._mm.find(b"\n", lo, hi)

    def _chunk(self, function: str, start: int, end: int) -> Chunk:
        """Clamp a span, read it, record the access, and return it as a Chunk."""
        start, end = self._clamp(start, end)
        chunk = self._read(start, end)
        self._record(function, start, end, len(chunk))
        return chunk

    def _count_newlines(self, start: int, end: int) -> int:
        if self._text is not None:
            return self._text.count("\n", start, end)
        if self._mm is None:
            return 0
        self._check_open()
        # Counted in bounded pieces (slicing an mmap copies). bytes.replace finds newlines with
        # memchr, about twice as fast as bytes.count's byte-by-byte loop (measured).
        total = 0
        for a in range(start, end, _LINE_BLOCK):
            piece = self._mm[a : min(a + _LINE_BLOCK, end)]
            total += len(piece) - len(piece.replace(b"\n", b""))
        return total


def open_context(source: ContextSource, *, name: str | None = None) -> Context:
    """Build a context from text (``str``), a file (``pathlib.Path`` or any ``os.PathLike``) or a context.

    A ``str`` is always text, never a path. A file is opened read-only and
    memory-mapped, never read whole; an empty file is a valid empty context.
    """
    if isinstance(source, Context):
        return source
    if isinstance(source, str):
        return Context(text=source, name=name)
    if isinstance(source, os.PathLike):
        path = Path(os.fspath(source))
        if not path.exists():
            raise ContextAccessError(f"No such file: {path}. Check the path, or pass text as a str.")
        if path.is_dir():
            raise ContextAccessError(f"{path} is a directory; pass a file.")
        try:
            return Context(path=path, name=name)
        except OSError as exc:
            raise ContextAccessError(f"Cannot read {path}: {exc.strerror or exc}. Check its permissions.") from exc
    raise ContextAccessError(
        f"Cannot build a context from {type(source).__name__}; pass a str of text, a pathlib.Path, or a Context."
    )


def _ctx(ctx: ContextSource) -> Context:
    run = current_scope()
    if run is not None:
        run.check_deadline()  # an abandoned or expired task may not read on
    context = open_context(ctx)
    context._check_open()
    return context


def context_head(ctx: ContextSource, n: int = 1000) -> Chunk:
    """The first ``n`` positions of the context."""
    return _ctx(ctx)._chunk("context_head", 0, n)


def context_tail(ctx: ContextSource, n: int = 1000) -> Chunk:
    """The last ``n`` positions of the context."""
    context = _ctx(ctx)
    return context._chunk("context_tail", len(context) - max(int(n), 0), len(context))


def context_slice(ctx: ContextSource, start: int, end: int) -> Chunk:
    """The text between ``start`` and ``end``, clamped to the context (see the module docs)."""
    return _ctx(ctx)._chunk("context_slice", start, end)


def _compile(context: Context, pattern: str | re.Pattern[str], flags: int) -> Searcher:
    if isinstance(pattern, re.Pattern):
        source, all_flags = pattern.pattern, pattern.flags | flags
    else:
        source, all_flags = pattern, flags
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="strict")
    if not isinstance(source, str):
        raise ContextAccessError(
            f"A search pattern must be a str or a compiled re pattern (got {type(source).__name__}).")
    try:
        return Searcher(source, all_flags, binary=context._text is None)
    except (re.error, ValueError, OverflowError) as exc:
        raise ContextAccessError(
            f"Invalid search pattern {source!r}: {exc}. Patterns use Python re syntax; "
            "escape special characters with re.escape() to search for literal text."
        ) from exc


def context_finditer(
    ctx: ContextSource,
    pattern: str | re.Pattern[str],
    *,
    flags: int = 0,
    start: int = 0,
    end: int | None = None,
) -> Generator[Match, None, None]:
    """Yield every match of ``pattern`` in order, lazily; prefer ``context_search`` with ``max_hits``.

    Over a mapped file the pattern is matched against UTF-8 bytes: ``\\w``,
    ``\\d`` and ``re.IGNORECASE`` are ASCII-only there.
    """
    context = _ctx(ctx)
    rx = _compile(context, pattern, flags)
    lo, hi = context._clamp(start, len(context) if end is None else end)
    hits = 0
    last = lo
    run = current_scope()
    deadline = run.deadline_at() if run is not None else None
    buf = context._text if context._text is not None else context._mm
    try:
        if buf is not None:
            lines = context._lines
            new = tuple.__new__
            # The hot loop of a large scan: Match(...) without the call overhead.
            for hits, (s, last, raw, groups) in enumerate(rx.finditer(buf, lo, hi, deadline), 1):
                if not hits & 4095 and run is not None:
                    run.check_deadline()  # a consumer's slow loop still stops at the deadline
                yield new(Match, (s, last, raw, groups, lines))
    except SearchDeadline:
        assert run is not None
        raise run.runtime_error() from None
    finally:
        context._record("context_search", lo, last, hits, detail=rx.pattern)


def context_search(
    ctx: ContextSource,
    pattern: str | re.Pattern[str],
    max_hits: int | None = DEFAULT_MAX_HITS,
    *,
    flags: int = 0,
    start: int = 0,
    end: int | None = None,
) -> list[Match]:
    """Find up to ``max_hits`` matches of a regex (Python ``re`` syntax), in order.

    Scanning stops at the ``max_hits``-th hit, so a common pattern on a huge
    file returns at once. ``max_hits=None`` scans everything (use sparingly).
    An invalid pattern raises :class:`ContextAccessError`.
    """
    if max_hits is not None and max_hits < 0:
        raise ContextAccessError(f"max_hits must be 0 or more (got {max_hits}).")
    if max_hits == 0:
        return []
    hits = context_finditer(ctx, pattern, flags=flags, start=start, end=end)
    try:
        return list(itertools.islice(hits, max_hits))
    finally:
        hits.close()  # records the access now, not whenever the generator is collected


def context_chunks(
    ctx: ContextSource,
    size: int = DEFAULT_CHUNK_SIZE,
    overlap: int = 0,
    *,
    start: int = 0,
    end: int | None = None,
) -> Generator[Chunk, None, None]:
    """Walk the context (or ``[start, end)``) in order, in pieces of at most ``size`` positions.

    A piece ends just after a newline when one lies in its last quarter, so
    lines are rarely cut. Consecutive pieces share ``overlap`` positions;
    together they cover the range with no gaps.
    """
    if size <= 0:
        raise ContextAccessError(f"context_chunks size must be positive (got {size}).")
    if overlap < 0 or overlap >= size:
        raise ContextAccessError(f"overlap must be at least 0 and below size {size} (got {overlap}).")
    context = _ctx(ctx)
    pos, hi = context._clamp(start, len(context) if end is None else end)
    while pos < hi:
        cut = min(pos + size, hi)
        if cut < hi:
            nl = context._find_newline(max(pos, cut - size // 4), cut, last=True)
            if nl >= pos:
                cut = nl + 1
            else:
                # No newline near: cut at a character boundary inside the window.
                cut = max(context._snap(cut, forward=False), pos + 1)
                cut = context._snap(cut, forward=True) if cut == pos + 1 else cut
        chunk = context._read(pos, cut)
        context._record("context_chunks", pos, cut, len(chunk))
        yield chunk
        if cut >= hi:
            break
        nxt = cut - overlap if overlap else cut
        nxt = context._snap(nxt, forward=False)
        pos = nxt if nxt > pos else cut


def context_line(ctx: ContextSource, pos: int, max_len: int = 2000) -> Chunk:
    """The whole line holding position ``pos`` (without its newline), at most ``max_len`` positions each side.

    Handy after ``context_search``: ``context_line(ctx, m.start)`` is the log line a hit sits on.
    """
    context = _ctx(ctx)
    pos = min(max(int(pos), 0), len(context))
    lo = context._find_newline(max(pos - max_len, 0), pos, last=True) + 1 or max(pos - max_len, 0)
    nl = context._find_newline(pos, min(pos + max_len, len(context)))
    return context._chunk("context_line", lo, nl if nl >= 0 else pos + max_len)
