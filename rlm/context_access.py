"""Explicit, audited navigation of a context that never enters a prompt whole.

A task receives a :class:`Context`, not a string. Text passed as ``str`` is
kept in memory; a file is memory-mapped read-only, so a 20 GB log costs page
cache, not heap; a directory, a glob or a list of files is one logical
context over all of them, each file mapped only while it is read (at most
64 at a time), so thousands of files cost what one does. An object in
storage (``s3://``, ``https://``..., given in a list) is a file read by ranges
through ``rlm._remote``, never held whole. Every function here
returns bounded :class:`Chunk` pieces that remember their span (and file),
and records the access on the context and on the current run's trace.

Positions are offsets into the context: characters for in-memory text, bytes
for files (the files one after another, in order). Every function accepts
the positions the others return; ``Context.locate(pos)`` gives the file, the
offset in it and the line.

Clamping rule: a position below 0 is read as 0 and one past the end as the
end (``context_slice(ctx, m.start - 200, m.end + 200)`` is always safe); an
empty or inverted span gives an empty chunk. Negative positions are *not*
counted from the end. Over a file, a span boundary that falls inside a
multi-byte UTF-8 character is moved outward to the character's edge, so a
slice never returns less than asked for and never splits a character;
invalid UTF-8 decodes to U+FFFD. Nothing read spans two files: a slice is
kept to the file that holds most of it (so a window around a hit stays in the
hit's file), head and tail read the first and the last file, and searches and
chunks run file by file.
"""

from __future__ import annotations

import bisect
import contextlib
import glob as _glob
import hashlib
import itertools
import mmap
import operator
import os
import re
import stat
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, TypeVar, Union

from rlm import _remote
from rlm._files import kind_of, sniff
from rlm._regex import Hit, SearchDeadline, Searcher
from rlm._scope import current_scope
from rlm.errors import ContextAccessError

__all__ = [
    "Access",
    "Chunk",
    "Context",
    "ContextSource",
    "Location",
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
T = TypeVar("T")
_ACCESS_LOG_SIZE = 10_000
#: Line numbers are counted lazily, with a checkpoint every block.
_LINE_BLOCK = 4 << 20
#: Files of a context mapped at once; the least recently read is unmapped to open another.
_MAX_OPEN_FILES = 64
_FINGERPRINT_BYTES = 8192
_NEWLINE_SNIFF = 64 << 10  # how much of a file's head says which character ends its lines
_CLOCK_EVERY = 256  # files listed, sniffed or fingerprinted between two looks at the deadline
_GLOB_CHARS = set("*?[")


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
    #: The file the chunk was read from (a context of files), or None for text.
    file: str | None
    _fixes: tuple[tuple[int, int], ...]  # (index of a U+FFFD that replaced bad bytes, how many bytes it replaced)
    _file_start: int  # where the chunk's file starts in the context

    def __new__(cls, text: str, start: int, end: int, _fixes: tuple[tuple[int, int], ...] = (),
                file: str | None = None, _file_start: int = 0) -> Chunk:
        obj = super().__new__(cls, text)
        obj.start = start
        obj.end = end
        obj.file = file
        obj._fixes = _fixes
        obj._file_start = _file_start
        return obj

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def file_span(self) -> tuple[int, int]:
        """The span in the chunk's own file (the same as ``span`` but for a context of several files)."""
        return (self.start - self._file_start, self.end - self._file_start)

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

    def __getnewargs__(  # type: ignore[override]
            self) -> tuple[str, int, int, tuple[tuple[int, int], ...], str | None, int]:
        return (str(self), self.start, self.end, self._fixes, self.file, self._file_start)

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


def _chunk_of(raw: str | bytes, start: int, end: int, file: str | None = None, file_start: int = 0) -> Chunk:
    if isinstance(raw, str):
        return Chunk(raw, start, end, (), file, file_start)
    text, fixes = _decode_bytes(raw)
    return Chunk(text, start, end, fixes, file, file_start)


@dataclass(frozen=True, slots=True)
class Access:
    """One recorded read of a context: which function, which span, how much came back, in which file."""

    function: str
    start: int
    end: int
    returned: int
    detail: str = ""
    file: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """Where a context offset is: its file (None for text), the offset in that file, and the 1-based line there."""

    file: str | None
    offset: int
    line: int


ContextSource = Union[str, "os.PathLike[str]", "Context", Sequence["str | os.PathLike[str]"]]
_P = TypeVar("_P", bound=PurePath)


class _LineIndex:
    """Maps positions to 1-based line numbers, counting newlines only when asked.

    A cursor makes lookups in increasing order (the order of search hits)
    cost one pass in total; the checkpoints it leaves at every block boundary
    bound a lookup further back to one block of counting.
    """

    def __init__(self, count: Callable[[int, int], int], block: int = _LINE_BLOCK) -> None:
        self._count = count
        self._block = block
        self._lock = threading.Lock()
        self._checkpoints = [0]  # newlines before k * _LINE_BLOCK, for every boundary passed so far
        self._cursor = (0, 0)  # (position, newlines before it)

    def line_at(self, pos: int) -> int:
        with self._lock:
            cps = self._checkpoints
            cur_pos, lines = self._cursor
            size = self._block
            block = min(pos // size, len(cps) - 1)
            if pos < cur_pos or block * size > cur_pos:
                # Start from the nearest checkpoint at or before pos: backwards, or a jump forward
                # over blocks already counted once. Any lookup then counts at most one new block.
                cur_pos, lines = block * size, cps[block]
            while (boundary := (cur_pos // size + 1) * size) <= pos:
                lines += self._count(cur_pos, boundary)
                cur_pos = boundary
                if boundary // size == len(cps):
                    cps.append(lines)
            lines += self._count(cur_pos, pos)
            self._cursor = (pos, lines)
            return lines + 1


class _Part:
    """One file of a context (or its text): where it starts in the context, and its contents on demand."""

    __slots__ = ("name", "path", "start", "length", "text", "lines", "_file", "_mm", "_users", "_owner", "_newline")

    def __init__(self, owner: Context, *, start: int, length: int, name: str, path: Path | None,
                 text: str | None = None) -> None:
        self._owner = owner
        self.name = name
        self.path = path
        self.start = start
        self.length = length
        self.text = text
        self.lines = _LineIndex(self._count_newlines)
        self._file: Any = None
        self._mm: mmap.mmap | None = None
        self._users = 0
        self._newline: bytes | None = None

    @property
    def newline(self) -> bytes:
        """What ends a line here: ``\\n``, or ``\\r`` in a file whose head has carriage returns and no ``\\n``."""
        if self._newline is None:
            with self.use() as buf:
                head = b"" if buf is None else buf[:_NEWLINE_SNIFF]
            raw = head.encode("utf-8", errors="surrogatepass") if isinstance(head, str) else head
            self._newline = b"\r" if b"\n" not in raw and b"\r" in raw else b"\n"
        return self._newline

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def file(self) -> str | None:
        """The name a Match or Chunk of this part gives as its file (None for text)."""
        return None if self.path is None else self.name

    @contextlib.contextmanager
    def use(self) -> Iterator[str | mmap.mmap | None]:
        """The part's text or mapped bytes (None when empty), kept mapped while the block runs."""
        if self.text is not None:
            yield self.text
            return
        owner = self._owner
        with owner._files_lock:
            owner._check_open()
            if self._mm is None and self.length:
                self._open()
            self._users += 1
            owner._recent[id(self)] = self
            owner._recent.move_to_end(id(self))
        try:
            yield self._mm
        finally:
            with owner._files_lock:
                self._users -= 1
                owner._evict()

    def _open(self) -> None:
        assert self.path is not None
        try:
            self._file = open(self.path, "rb")
            size = os.fstat(self._file.fileno()).st_size
            if size < self.length:
                raise ContextAccessError(
                    f"{self.name} shrank from {self.length} to {size} bytes while it was being read; "
                    "analyse a file that is not being rewritten (copy it first).")
            self._mm = mmap.mmap(self._file.fileno(), self.length, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ContextAccessError(f"Cannot read {self.name}: {exc.strerror or exc}.") from exc
        finally:  # the map keeps its own descriptor: one per mapped file, not two
            if self._file is not None:
                self._file.close()
                self._file = None

    def close(self) -> bool:
        """Unmap the file unless it is in use; True if it is closed now."""
        if self._users or self._mm is None:
            return self._mm is None
        try:
            self._mm.close()
        except BufferError:  # a search elsewhere still holds a view of it
            return False
        self._mm = None
        return True

    def read(self, lo: int, hi: int) -> Chunk:
        """Local ``[lo, hi)`` as a Chunk with context offsets."""
        start, end = self.start + lo, self.start + hi
        if hi <= lo:
            return Chunk("", start, max(start, end), (), self.file, self.start)
        with self.use() as buf:
            assert buf is not None
            return _chunk_of(buf[lo:hi], start, end, self.file, self.start)

    def find_newline(self, lo: int, hi: int, *, last: bool = False) -> int:
        """Local position of the first (or last) newline in local ``[lo, hi)``, or -1."""
        if hi <= lo:
            return -1
        newline = self.newline
        with self.use() as buf:
            if buf is None:
                return -1
            if isinstance(buf, str):
                char = newline.decode()
                return buf.rfind(char, lo, hi) if last else buf.find(char, lo, hi)
            return buf.rfind(newline, lo, hi) if last else buf.find(newline, lo, hi)

    def snap(self, pos: int, forward: bool) -> int:
        """Move a local byte position off a UTF-8 continuation byte (outward)."""
        if self.text is not None or pos <= 0 or pos >= self.length:
            return pos
        with self.use() as buf:
            assert isinstance(buf, mmap.mmap)
            for _ in range(3):
                if pos <= 0 or pos >= self.length or (buf[pos] & 0xC0) != 0x80:
                    break
                pos += 1 if forward else -1
        return pos

    @contextlib.contextmanager
    def searching(self, rx: Searcher, lo: int, hi: int, deadline: float | None) -> Iterator[Iterator[Hit]]:
        """The hits of ``rx`` in local ``[lo, hi)``, with the part kept readable while they are consumed."""
        with self.use() as buf:
            if buf is None:
                yield iter(())
                return
            yield rx.finditer(buf, self.snap(lo, forward=False), self.snap(hi, forward=True), deadline)

    def fingerprint_into(self, digest: Any) -> None:
        """Feed what identifies this part's contents to a hash: text whole, a file by name, size, mtime and ends."""
        if self.text is not None:
            digest.update(self.text.encode("utf-8", errors="surrogatepass"))
            return
        assert self.path is not None
        info = os.stat(self.path)
        digest.update(f"{self.name}\0{self.length}\0{info.st_mtime_ns}\0".encode())
        with self.use() as buf:
            if isinstance(buf, mmap.mmap):
                digest.update(buf[:_FINGERPRINT_BYTES])
                digest.update(buf[max(self.length - _FINGERPRINT_BYTES, _FINGERPRINT_BYTES):])

    def _count_newlines(self, start: int, end: int) -> int:
        newline = self.newline
        run = current_scope()
        with self.use() as buf:
            if buf is None:
                return 0
            if isinstance(buf, str):
                return buf.count(newline.decode(), start, end)
            # Counted in bounded pieces (slicing an mmap copies), the clock checked between them. bytes.replace
            # finds newlines with memchr, about twice as fast as bytes.count's byte-by-byte loop (measured).
            total = 0
            for a in range(start, end, _LINE_BLOCK):
                piece = buf[a: min(a + _LINE_BLOCK, end)]
                total += len(piece) - len(piece.replace(newline, b""))
                if run is not None:
                    run.check_deadline()
            return total


class _ObjectPart(_Part):
    """One object in storage (s3://, https://...): read by ranges through rlm._remote, never mapped or held whole."""

    __slots__ = ("object",)

    def __init__(self, owner: Context, *, start: int, obj: _remote.RemoteObject) -> None:
        super().__init__(owner, start=start, length=obj.size, name=obj.name, path=None)
        self.object = obj
        self.lines = _LineIndex(obj.count_newlines, _remote.LINE_BLOCK)

    @property
    def file(self) -> str | None:
        return self.name

    @contextlib.contextmanager
    def use(self) -> Iterator[str | mmap.mmap | None]:
        """Nothing to map (every read goes to the object by range), but the context's limit of open parts
        bounds the block caches too: the least recently read object's cache is dropped to read another."""
        owner = self._owner
        with owner._files_lock:
            owner._check_open()
            owner._recent[id(self)] = self
            owner._recent.move_to_end(id(self))
            owner._evict()
        yield None

    def close(self) -> bool:
        self.object.close()
        return True

    def read(self, lo: int, hi: int) -> Chunk:
        start, end = self.start + lo, self.start + hi
        if hi <= lo:
            return Chunk("", start, max(start, end), (), self.file, self.start)
        with self.use():
            return _chunk_of(self.object.read(lo, hi), start, end, self.file, self.start)

    def find_newline(self, lo: int, hi: int, *, last: bool = False) -> int:
        if hi <= lo:
            return -1
        with self.use():
            piece = self.object.read(lo, hi)
        at = piece.rfind(b"\n") if last else piece.find(b"\n")
        return -1 if at < 0 else lo + at

    def snap(self, pos: int, forward: bool) -> int:
        if pos <= 0 or pos >= self.length:
            return pos
        with self.use():
            near = self.object.read(pos - 3, pos + 4)  # a character is at most 4 bytes
        at = min(pos, 3)
        for _ in range(3):
            if pos <= 0 or pos >= self.length or not 0 <= at < len(near) or (near[at] & 0xC0) != 0x80:
                break
            pos += 1 if forward else -1
            at += 1 if forward else -1
        return pos

    @contextlib.contextmanager
    def searching(self, rx: Searcher, lo: int, hi: int, deadline: float | None) -> Iterator[Iterator[Hit]]:
        self._owner._check_open()
        hits = self.object.hits(rx, self.snap(lo, forward=False), self.snap(hi, forward=True), deadline)
        try:
            yield hits
        finally:
            hits.close()

    def fingerprint_into(self, digest: Any) -> None:
        digest.update(self.object.identity())  # ETag, size and modification time: no byte is fetched


class Match(tuple):  # type: ignore[type-arg]
    """One search hit: its span, its text (a :class:`Chunk`), its file and its 1-based line in that file.

    An immutable value (a tuple underneath, so a million hits stay cheap).
    ``line`` is counted on first use (one pass over the file at most), so
    counting hits does not pay for line numbers nobody reads.
    """

    __slots__ = ()

    def __new__(cls, start: int, end: int, raw: str | bytes, groups: tuple[str | bytes | None, ...],
                part: _Part) -> Match:
        return tuple.__new__(cls, (start, end, raw, groups, part))

    start: int = property(operator.itemgetter(0), doc="Where the hit starts.")  # type: ignore[assignment]
    end: int = property(operator.itemgetter(1), doc="Where the hit ends (exclusive).")  # type: ignore[assignment]

    @property
    def span(self) -> tuple[int, int]:
        return (self[0], self[1])

    @property
    def text(self) -> Chunk:
        part: _Part = self[4]
        return _chunk_of(self[2], self[0], self[1], part.file, part.start)

    @property
    def file_span(self) -> tuple[int, int]:
        """The hit's span in its own file (the same as ``span`` but for a context of several files)."""
        part: _Part = self[4]
        return (self[0] - part.start, self[1] - part.start)

    @property
    def file(self) -> str | None:
        """The file the hit is in (None for a text context)."""
        part: _Part = self[4]
        return part.file

    @property
    def line(self) -> int:
        """The 1-based line of the hit in its file."""
        part: _Part = self[4]
        return part.lines.line_at(self[0] - part.start)

    @property
    def groups(self) -> tuple[str | None, ...]:
        return tuple(None if g is None else _decode(g) for g in self[3])

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view: span, line, text, and file (for a context of files)."""
        data: dict[str, object] = {"start": self.start, "end": self.end, "line": self.line, "text": str(self.text)}
        if self.file is not None:
            data["file"] = self.file
            if self.file_span != self.span:
                data["file_span"] = list(self.file_span)
        return data

    def __repr__(self) -> str:
        where = f"{self.file}:" if self.file is not None else "line "
        return f"Match(start={self.start}, end={self.end}, {where}{self.line}, text={str(self.text)!r})"


def _decode(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else _decode_bytes(raw)[0]


class Context:
    """The document a task works on, held outside every prompt: a text, a file, or many files as one.

    Build one with :func:`open_context`. It refuses ``ctx[a:b]``, iteration
    and ``str(ctx)`` so that the whole text cannot slip into a prompt; use the
    ``context_*`` functions instead. ``len(ctx)`` is its size in positions.
    """

    def __init__(self, *, text: str | None = None, path: Path | None = None,
                 paths: Sequence[Path | _remote.RemoteObject] = (),
                 name: str | None = None, skipped: Sequence[str] = ()) -> None:
        self._files_lock = threading.Lock()
        self._recent: OrderedDict[int, _Part] = OrderedDict()  # mapped parts, least recently read first
        self._closed = False
        self._parts: list[_Part] = []
        self.skipped = list(skipped)  # files of a directory or glob left out (binary)
        if text is not None:
            self._parts.append(_Part(self, start=0, length=len(text), name=name or "<text>", path=None, text=text))
        else:
            files = [path] if path is not None else list(paths)
            offset = 0
            for file in _on_the_clock(files):
                if isinstance(file, _remote.RemoteObject):
                    self._parts.append(_ObjectPart(self, start=offset, obj=file))
                    offset += file.size
                    continue
                size = os.stat(file).st_size
                shown = name if name is not None and path is not None else _shown(file)  # e.g. "<stdin>"
                self._parts.append(_Part(self, start=offset, length=size, name=shown, path=file))
                offset += size
        self._starts = [p.start for p in self._parts]
        self._length = sum(p.length for p in self._parts)
        self.path = path
        self.name = name or (self._parts[0].name if len(self._parts) == 1 else f"{len(self._parts)} files")
        self.accesses: deque[Access] = deque(maxlen=_ACCESS_LOG_SIZE)
        self.access_count = 0
        self._record_lock = threading.Lock()  # parallel subcalls read the same context

    # -- what a context is ---------------------------------------------------
    @property
    def unit(self) -> str:
        """What a position counts: ``"chars"`` for text, ``"bytes"`` for files."""
        return "chars" if self._parts and self._parts[0].text is not None else "bytes"

    @property
    def files(self) -> list[str]:
        """The files of the context, in order (empty for text)."""
        return [p.name for p in self._parts if p.file is not None]

    @property
    def file_spans(self) -> list[tuple[str, int, int]]:
        """``(file, start, end)`` of each file, in context offsets (empty for text)."""
        return [(p.name, p.start, p.end) for p in self._parts if p.file is not None]

    @property
    def mapped_files(self) -> list[tuple[str, int]]:
        """``(path, bytes)`` of each local file mapped for this context: what must not shrink while it is read."""
        return [(os.fspath(p.path), p.length) for p in self._parts if p.path is not None]

    @property
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> dict[str, object]:
        """A secret-free description for traces and summaries (with every file and where it starts)."""
        data: dict[str, object] = {"name": self.name, "length": self._length, "unit": self.unit,
                                   "mapped": self.unit == "bytes"
                                   and not any(isinstance(p, _ObjectPart) for p in self._parts)}
        if self.path is not None:
            data["path"] = str(self.path.resolve())
        if len(self._parts) > 1 or self.path is None and self.unit == "bytes":
            data["files"] = [{"name": p.name, "path": str(p.path.resolve()) if p.path else None,
                              "start": p.start, "length": p.length} for p in self._parts]
        if self.skipped:
            data["skipped"] = list(self.skipped)
        return data

    def fingerprint(self) -> str:
        """A SHA-256 that changes when the input does, cheap on any size.

        Text is hashed whole. A file is fingerprinted by its name, size, modification time and its first
        and last 8 KB (not every byte: hashing a 20 GB log, or a thousand files, would cost more than most
        tasks); an object in storage by its URL, size, ETag and modification time.
        """
        digest = hashlib.sha256()
        for part in _on_the_clock(self._parts):  # a thousand files cost a thousand opens
            part.fingerprint_into(digest)
        return digest.hexdigest()

    def locate(self, pos: int) -> Location:
        """The file, the offset in it, and the 1-based line there of context offset ``pos``."""
        part = self._part_at(min(max(int(pos), 0), self._length))
        local = min(max(int(pos), 0), self._length) - part.start
        return Location(part.file, local, part.lines.line_at(local))

    def close(self) -> None:
        """Unmap and close every file. Text contexts have nothing to release."""
        with self._files_lock:
            if self._closed:
                return
            self._closed = True
            for part in self._parts:
                if not part.close():
                    raise BufferError(f"{part.name} is still being read")
            self._recent.clear()

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

    # -- parts (internal) ----------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ContextAccessError(f"Context {self.name!r} is closed; open it again with open_context().")

    def _evict(self) -> None:
        """Unmap the least recently read files beyond the limit (called with the files lock held)."""
        while len(self._recent) > _MAX_OPEN_FILES:
            for key, part in self._recent.items():
                if part.close():
                    del self._recent[key]
                    break
            else:
                return  # every mapped file is in use right now

    def _part_at(self, pos: int) -> _Part:
        """The part holding context offset ``pos`` (the last one for the end)."""
        return self._parts[max(bisect.bisect_right(self._starts, pos) - 1, 0)]

    def _edge_part(self, *, first: bool) -> _Part:
        """The first (or last) part with any content, for head and tail."""
        ordered = self._parts if first else reversed(self._parts)
        return next((p for p in ordered if p.length), self._parts[0 if first else -1])

    def _parts_in(self, lo: int, hi: int) -> Iterator[tuple[_Part, int, int]]:
        """Each part overlapping ``[lo, hi)`` with the local range inside it."""
        if not self._parts:
            return
        index = max(bisect.bisect_right(self._starts, lo) - 1, 0)
        for part in self._parts[index:]:
            if part.start >= hi and not (part.start == lo == hi):
                break
            a, b = max(lo, part.start) - part.start, min(hi, part.end) - part.start
            if b > a:
                yield part, a, b

    def _one_part(self, start: int, end: int) -> tuple[_Part, int, int]:
        """A clamped span kept to the one part that holds most of it, as local ``(part, lo, hi)``."""
        start = min(max(int(start), 0), self._length)
        end = min(max(int(end), 0), self._length)
        if end <= start:
            part = self._part_at(start)
            local = start - part.start
            return part, local, local
        part, lo, hi = max(self._parts_in(start, end), key=lambda p: p[2] - p[1])  # ties: the earlier part
        return part, part.snap(lo, forward=False), part.snap(hi, forward=True)

    def _record(self, function: str, start: int, end: int, returned: int, detail: str = "",
                file: str | None = None) -> None:
        access = Access(function, start, end, returned, detail, file)
        with self._record_lock:
            self.accesses.append(access)
            self.access_count += 1
        run = current_scope()
        if run is not None:
            run.record_access(context=self.name, function=function, start=start, end=end, returned=returned,
                              detail=detail, file=file)

    def _chunk(self, function: str, part: _Part, lo: int, hi: int) -> Chunk:
        """Read a local span of one part, record the access, and return it as a Chunk."""
        chunk = part.read(lo, hi)
        self._record(function, chunk.start, chunk.end, len(chunk), file=part.file if len(self._parts) > 1 else None)
        return chunk


def _shown(path: Path) -> str:
    """How a file is named in results and traces: relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith(os.pardir) else relative


def _natural(path: PurePath) -> list[object]:
    """Sort key: digits compare as numbers (app.log.2 before app.log.10)."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", str(path))]


_ROTATED = re.compile(r"^(?P<base>.+)\.(?P<n>\d+)$")


def _in_order(paths: list[_P]) -> list[_P]:
    """Files in reading order: natural name order, except that rotated logs come oldest first.

    logrotate names the live file ``app.log`` and its older generations ``app.log.1``, ``app.log.2``
    ...: where ``app.log`` is there too, ``app.log.3, app.log.2, app.log.1, app.log`` is the order in
    time. Other numbered names (``chapter.1``, ``part.2``) keep their natural order.
    """
    present = set(paths)

    def key(path: _P) -> tuple[list[object], int]:
        found = _ROTATED.match(path.name)
        if found and path.with_name(found["base"]) in present:
            return _natural(path.with_name(found["base"])), -int(found["n"])
        return _natural(path), 0

    return sorted(paths, key=key)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _looks_binary(path: Path) -> bool:
    try:
        return sniff(path).binary
    except OSError:  # unreadable: not judged here; opening it says why
        return False


def _on_the_clock(items: Iterable[T]) -> Iterator[T]:
    """``items``, with a look at the run's deadline every few hundred (listing a huge folder stops in time)."""
    run = current_scope()
    for n, item in enumerate(items):
        if run is not None and not n % _CLOCK_EVERY:
            run.check_deadline()
        yield item


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop
        return False


def _binary_head(head: bytes) -> bool:
    return kind_of(head).binary


def _keys_in_order(keys: list[str]) -> list[str]:
    """Object keys in reading order: the rule for files (rotated logs oldest first)."""
    return [str(p) for p in _in_order([PurePosixPath(k) for k in keys])]


def _expand(source: Path) -> tuple[list[Path], list[str]]:
    """The files a directory or a glob stands for, in natural order, and those left out (binary, or a link
    that leads out of the directory), each named with why. Listing and sniffing run under the run's clock."""
    skipped: list[str] = []
    if source.is_dir():
        root = source.resolve()
        candidates = []
        for p in _on_the_clock(source.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(source).parts):
                continue
            if not _inside(p, root):  # a link (or a linked folder) that leads elsewhere: never followed out
                skipped.append(f"{_shown(p)} (a link to outside {_shown(source)})")
                continue
            candidates.append(p)
    else:
        candidates = [Path(p) for p in _glob.glob(str(source), recursive=True)]
    files: list[Path] = []
    for path in _on_the_clock(_in_order([p for p in _on_the_clock(candidates) if _regular(p)])):
        if _looks_binary(path):
            skipped.append(_shown(path))
        else:
            files.append(path)
    return files, skipped


def _file(path: Path) -> Path:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ContextAccessError(f"No such file: {path}. Check the path, or pass text as a str.") from None
    except OSError as exc:
        raise ContextAccessError(f"Cannot read {path}: {exc.strerror or exc}. Check its permissions.") from exc
    if not stat.S_ISREG(mode):
        raise ContextAccessError(f"{path} is not a regular file; pass files, a directory or a glob.")
    if not os.access(path, os.R_OK):
        raise ContextAccessError(f"Cannot read {path}: permission denied. Check its permissions.")
    return path


def open_context(source: ContextSource, *, name: str | None = None) -> Context:
    """Build a context from text, a file, a directory, a glob, a list of files, or a context.

    A ``str`` is always text, never a path. A ``pathlib.Path`` (any
    ``os.PathLike``) is a file (mapped read-only, never read whole; an empty
    file is a valid empty context), a directory (every regular file under it,
    hidden ones and binary ones left out, in natural order), or a glob
    pattern (``Path("logs/app.log*")``). A list or tuple of paths is those
    files in that order (directories and globs in it expand in place), except
    that a rotated log's generations (``app.log``, ``app.log.1``, ...) are read
    oldest first wherever they stand, as in a folder or a glob.

    Objects in storage are files too: a URL in the list (``["s3://bucket/logs/"]``, ``s3://``, ``gs://``,
    ``az://``, ``https://``, any fsspec protocol) is an object, a prefix (every object under it) or a glob,
    read by ranges and never held whole (needs ``pip install "rlm[remote]"``; see docs/remote.md). A lone
    ``str`` stays text, so put a single URL in a list.
    """
    if isinstance(source, Context):
        return source
    if isinstance(source, str):
        return Context(text=source, name=name)
    if isinstance(source, os.PathLike) and _remote.is_url(os.fspath(source)):
        source = [os.fspath(source)]
    if isinstance(source, os.PathLike):
        path = Path(os.fspath(source))
        if path.is_dir() or (not path.exists() and _GLOB_CHARS & set(str(path))):
            files, skipped = _expand(path)
            if not files:
                what = "directory" if path.is_dir() else "pattern"
                raise ContextAccessError(f"The {what} {path} holds no readable text files"
                                         + (f" ({len(skipped)} binary ones left out)." if skipped else "."))
            return Context(paths=[_file(f) for f in _on_the_clock(files)], name=name or str(path), skipped=skipped)
        return Context(path=_file(path), name=name)
    if isinstance(source, (list, tuple)):
        listed, skipped = _many(source)
        if not listed:
            raise ContextAccessError("The list of files is empty; pass at least one file.")
        if len(listed) == 1 and not skipped and isinstance(listed[0], Path):
            return Context(path=listed[0], name=name)
        return Context(paths=listed, name=name, skipped=skipped)
    raise ContextAccessError(
        f"Cannot build a context from {type(source).__name__}; pass a str of text, a pathlib.Path (a file, a "
        "directory or a glob), a list of paths, or a Context."
    )


def _many(sources: Iterable[object]) -> tuple[list[Path | _remote.RemoteObject], list[str]]:
    files: list[Path | _remote.RemoteObject] = []
    skipped: list[str] = []
    for item in sources:
        if not isinstance(item, (str, os.PathLike)):
            raise ContextAccessError(f"A list of files must hold paths (got {type(item).__name__}).")
        if _remote.is_url(os.fspath(item)):
            objects, left_out = _remote.list_objects([os.fspath(item)], order=_keys_in_order, binary=_binary_head)
            files += objects
            skipped += left_out
            continue
        path = Path(os.fspath(item))
        if path.is_dir() or (not path.exists() and _GLOB_CHARS & set(str(path))):
            more, left_out = _expand(path)
            files += more
            skipped += left_out
        else:
            files.append(_file(path))
    return _rotations_oldest_first(files), skipped


def _rotations_oldest_first(files: list[Path | _remote.RemoteObject]) -> list[Path | _remote.RemoteObject]:
    """Named files in the order given, except that a rotated log's generations are read oldest first wherever
    they stand (``app.log app.log.1 app.log.2``, as a shell's ``app.log*`` lists them, reads ``.2 .1`` then
    ``app.log``): the same rule as a folder or a glob."""
    present = {f for f in files if isinstance(f, Path)}

    def family(f: Path | _remote.RemoteObject) -> tuple[object, int]:
        found = _ROTATED.match(f.name) if isinstance(f, Path) else None
        if found and isinstance(f, Path) and f.with_name(found["base"]) in present:
            return f.with_name(found["base"]), int(found["n"])
        return f, 0

    first: dict[object, int] = {}
    for index, f in enumerate(files):
        first.setdefault(family(f)[0], index)
    return sorted(files, key=lambda f: (first[family(f)[0]], -family(f)[1]))


def _ctx(ctx: ContextSource) -> Context:
    run = current_scope()
    if run is not None:
        run.check_deadline()  # an abandoned or expired task may not read on
    context = open_context(ctx)
    context._check_open()
    return context


def context_head(ctx: ContextSource, n: int = 1000) -> Chunk:
    """The first ``n`` positions of the context (of its first file)."""
    context = _ctx(ctx)
    part = context._edge_part(first=True)
    return context._chunk("context_head", *context._one_part(part.start, min(part.start + max(int(n), 0), part.end)))


def context_tail(ctx: ContextSource, n: int = 1000) -> Chunk:
    """The last ``n`` positions of the context (of its last file)."""
    context = _ctx(ctx)
    part = context._edge_part(first=False)
    return context._chunk("context_tail", *context._one_part(max(part.end - max(int(n), 0), part.start), part.end))


def context_slice(ctx: ContextSource, start: int, end: int) -> Chunk:
    """The text between ``start`` and ``end``, clamped to the context and to one file (see the module docs)."""
    context = _ctx(ctx)
    return context._chunk("context_slice", *context._one_part(start, end))


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
        return Searcher(source, all_flags, binary=context.unit == "bytes")
    except (re.error, ValueError, OverflowError) as exc:
        raise ContextAccessError(
            f"Invalid search pattern {source!r}: {exc}. Patterns use Python re syntax; "
            "escape special characters with re.escape() to search for literal text."
        ) from exc


def _range(context: Context, start: int, end: int | None) -> tuple[int, int]:
    lo = min(max(int(start), 0), len(context))
    hi = min(max(int(len(context) if end is None else end), 0), len(context))
    return lo, max(lo, hi)


def context_finditer(
    ctx: ContextSource,
    pattern: str | re.Pattern[str],
    *,
    flags: int = 0,
    start: int = 0,
    end: int | None = None,
) -> Generator[Match, None, None]:
    """Yield every match of ``pattern`` in order, lazily, file by file; prefer ``context_search`` with ``max_hits``.

    For scanning a whole input with flat memory: count or group hits as they
    come. Over files the pattern is matched against UTF-8 bytes: ``\\w``,
    ``\\d`` and ``re.IGNORECASE`` are ASCII-only there. No match spans two files.
    """
    return _scan(ctx, pattern, flags, start, end, "context_finditer")


def _scan(ctx: ContextSource, pattern: str | re.Pattern[str], flags: int, start: int, end: int | None,
          function: str) -> Generator[Match, None, None]:
    """The one search loop; the trace names the public ``function`` that asked for it."""
    context = _ctx(ctx)
    rx = _compile(context, pattern, flags)
    lo, hi = _range(context, start, end)
    hits = 0
    last = lo
    run = current_scope()
    deadline = run.deadline_at() if run is not None else None
    new = tuple.__new__
    if hi > lo:
        spans = list(context._parts_in(lo, hi))
    else:  # an empty range can still hold an empty match
        empty = context._part_at(lo)
        spans = [(empty, lo - empty.start, lo - empty.start)]
    try:
        for part, a, b in spans:
            base = part.start
            with part.searching(rx, a, b, deadline) as found:
                # The hot loop of a large scan: Match(...) without the call overhead.
                for s, e, raw, groups in found:
                    hits += 1
                    if not hits & 4095 and run is not None:
                        run.check_deadline()  # a consumer's slow loop still stops at the deadline
                    last = base + e
                    yield new(Match, (base + s, last, raw, groups, part))
            last = max(last, base + b)
    except SearchDeadline:
        assert run is not None
        raise run.runtime_error() from None
    finally:
        in_files = {p.file for p, _, _ in spans} if len(context._parts) > 1 else set()
        context._record(function, lo, min(last, hi) if hi > lo else lo, hits, detail=rx.pattern,
                        file=in_files.pop() if len(in_files) == 1 else None)


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
    ``start`` / ``end`` search one range only. An invalid pattern raises
    :class:`ContextAccessError`.
    """
    if max_hits is not None and max_hits < 0:
        raise ContextAccessError(f"max_hits must be 0 or more (got {max_hits}).")
    if max_hits == 0:
        return []
    hits = _scan(ctx, pattern, flags, start, end, "context_search")
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
    """Walk the context (or ``[start, end)``) in order, file by file, in pieces of at most ``size`` positions.

    A piece ends just after a newline when one lies in its last quarter, so
    lines are rarely cut; no piece spans two files. Consecutive pieces of a
    file share ``overlap`` positions; together they cover the range with no gaps.
    """
    if size <= 0:
        raise ContextAccessError(f"context_chunks size must be positive (got {size}).")
    if overlap < 0 or overlap >= size:
        raise ContextAccessError(f"overlap must be at least 0 and below size {size} (got {overlap}).")
    context = _ctx(ctx)
    lo, hi = _range(context, start, end)
    several = len(context._parts) > 1
    for part, a, b in list(context._parts_in(lo, hi)):
        pos, stop = part.snap(a, forward=False), part.snap(b, forward=True)
        while pos < stop:
            cut = min(pos + size, stop)
            if cut < stop:
                nl = part.find_newline(max(pos, cut - size // 4), cut, last=True)
                if nl >= pos:
                    cut = nl + 1
                else:
                    # No newline near: cut at a character boundary inside the window.
                    cut = max(part.snap(cut, forward=False), pos + 1)
                    cut = part.snap(cut, forward=True) if cut == pos + 1 else cut
            chunk = part.read(pos, cut)
            context._record("context_chunks", chunk.start, chunk.end, len(chunk),
                            file=part.file if several else None)
            yield chunk
            if cut >= stop:
                break
            nxt = part.snap(cut - overlap, forward=False) if overlap else cut
            pos = nxt if nxt > pos else cut


def context_line(ctx: ContextSource, pos: int, max_len: int = 2000) -> Chunk:
    """The whole line holding position ``pos`` (without its newline), at most ``max_len`` positions each side.

    Handy after ``context_search``: ``context_line(ctx, m.start)`` is the log line a hit sits on. A line
    never continues into the next file.
    """
    context = _ctx(ctx)
    pos = min(max(int(pos), 0), len(context))
    part = context._part_at(pos)
    local = pos - part.start
    lo = part.find_newline(max(local - max_len, 0), local, last=True) + 1 or max(local - max_len, 0)
    nl = part.find_newline(local, min(local + max_len, part.length))
    hi = nl if nl >= 0 else min(local + max_len, part.length)
    return context._chunk("context_line", part, part.snap(lo, forward=False), part.snap(hi, forward=True))
