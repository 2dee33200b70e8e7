"""Objects in storage (s3://, gs://, az://, http(s)://, any fsspec URL) read by ranges, never whole.

This is the one module that touches fsspec, and it imports it only when a URL
is opened: without the ``remote`` extra a URL gets one line naming it. It
lists and globs objects, reads them through a small block cache (random reads:
slices, lines, chunks) or in streamed windows (searches, which fetch each
byte about once), retries a failing read with backoff within the run's
deadline, and turns every storage error into one :class:`ContextAccessError`
line that names the URL and never a credential.

Credentials and endpoints come from each backend's own sources (``AWS_*``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``):
rlm adds no setting of its own.
"""

from __future__ import annotations

import contextvars
import logging
import re
import re._constants as _sre_const  # type: ignore[import-not-found]
import re._parser as _sre_parse  # type: ignore[import-not-found]
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rlm._regex import Hit, SearchDeadline, Searcher
from rlm._scope import current_scope
from rlm.errors import ContextAccessError, RemoteInputError

__all__ = ["RemoteObject", "is_url", "list_objects", "bytes_fetched", "window_plan", "EXTRA", "LINE_BLOCK"]

log = logging.getLogger(__name__)

EXTRA = 'pip install "rlm[remote]"'
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = set("*?[")
#: Random reads (slices, lines, chunks) go through fsspec's block cache: this many blocks of this size per object.
_CACHE_BLOCK = 256 << 10
_CACHE_BLOCKS = 4
#: A search's first window: small, so that a first hit comes fast; windows then double up to _WINDOW.
_FIRST_WINDOW = 256 << 10
#: A search streams windows of this size (each ends just after a newline, or overlaps by the pattern's width).
_WINDOW = 8 << 20
#: Line numbers over an object are counted per block of this size; a search fills the counts as it streams.
LINE_BLOCK = 1 << 20
#: A window is fetched in ranges of at most this size; a line that runs past it, in ranges from the smaller size.
_PIECE, _FIRST_STEP = 8 << 20, 64 << 10
#: Bytes before a window that lookbehinds and ``\\b`` may see (a window starts at a line start otherwise).
_BEHIND = 64 << 10
_SNIFF_BYTES = 8192
_TRIES_OUTSIDE_A_RUN = 5
_FIRST_BACKOFF, _MAX_BACKOFF = 0.05, 2.0

_fetched = 0
_fetched_lock = threading.Lock()


def bytes_fetched() -> int:
    """Object bytes fetched by this process so far (every range read, cached or streamed)."""
    return _fetched


def _count_fetched(n: int) -> None:
    global _fetched
    with _fetched_lock:
        _fetched += n


def is_url(value: object) -> bool:
    """Whether ``value`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(value, str) and bool(_URL.match(value))


def shown(url: str) -> str:
    """A URL as results and traces name it: no user, password or query (a presigned URL's signature)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host if parts.netloc else "", parts.path, "", ""))


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise RemoteInputError(f"Reading URLs needs the remote extra: {EXTRA}.", reason="no_extra", url="") from exc
    return fsspec


@dataclass(frozen=True, slots=True)
class _Listed:
    url: str
    path: str
    size: int
    etag: str
    mtime: str


def _fact(info: dict[str, Any], *names: str) -> str:
    lowered = {k.lower(): v for k, v in info.items()}
    for name in names:
        value = lowered.get(name)
        if value not in (None, ""):
            return str(value.isoformat() if hasattr(value, "isoformat") else value).strip('"')
    return ""


def _listed(fs: Any, protocol: str, info: dict[str, Any]) -> _Listed:
    path = str(info["name"])
    url = path if is_url(path) else f"{protocol}://{path}"
    return _Listed(url, path, int(info.get("size") or 0), _fact(info, "etag", "md5hash"),
                   _fact(info, "lastmodified", "last_modified", "last-modified", "updated", "mtime", "created"))


def _fail(url: str, exc: BaseException) -> RemoteInputError:
    """One line saying what went wrong with ``url`` and what to do (the cause's text may hold secrets: left out)."""
    where = shown(url)
    kind = type(exc).__name__
    if kind in ("NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError", "DefaultCredentialsError"):
        return RemoteInputError(f"No credentials to read {where}: set the backend's usual variables (for S3, "
                                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE).",
                                reason="no_credentials", url=where)
    status = getattr(exc, "status", None) or getattr(exc.__cause__, "status", None)
    if isinstance(exc, PermissionError) or status in (401, 403):
        return RemoteInputError(f"Access denied to {where}: check the credentials and that they may read it.",
                                reason="access_denied", url=where)
    if isinstance(exc, FileNotFoundError) or status == 404:
        return RemoteInputError(f"No such object, prefix or bucket: {where}. Check the URL (and AWS_ENDPOINT_URL "
                                "for an S3-compatible store).", reason="not_found", url=where)
    if isinstance(exc, RemoteInputError):
        return exc
    return RemoteInputError(f"Cannot read {where}: {kind}. Check the URL, the endpoint and the network.",
                            reason="unreachable", url=where)


def _permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help (no object, no access, no credentials, a bad argument)."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError, TypeError)):
        return True
    return getattr(exc, "status", None) in (400, 401, 403, 404, 416) or type(exc).__name__.endswith(
        ("CredentialsError", "AuthTokenError"))


def list_objects(urls: list[str], *, order: Callable[[list[str]], list[str]],
                 binary: Callable[[bytes], bool]) -> tuple[list[RemoteObject], list[str]]:
    """The objects a list of URLs stands for (prefixes and globs expanded), and the binary ones left out.

    A URL ending in ``/`` or naming a prefix is every object under it (hidden names left out), a URL with
    ``*``, ``?`` or ``[`` is a glob, any other is one object. ``order`` sorts the keys a prefix or glob
    lists (the context's rule for rotated logs); ``binary`` tells from an object's first bytes that it is
    left out. Raises ContextAccessError, one line naming the URL, when any is missing, denied or unreachable.
    """
    fsspec = _fsspec()
    objects: list[RemoteObject] = []
    skipped: list[str] = []
    for url in urls:
        try:
            # A fresh filesystem reads the backend's credentials and endpoint as they are now.
            fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
            protocol = url.split("://", 1)[0]
            if _GLOB_CHARS & set(urlsplit(url).path) and protocol not in ("http", "https"):
                found = [_listed(fs, protocol, i) for i in fs.glob(path, detail=True).values() if i["type"] == "file"]
                if not found:
                    raise RemoteInputError(f"The pattern {shown(url)} matches no objects.", reason="empty",
                                           url=shown(url))
            else:
                info = fs.info(path)
                if info.get("type") == "directory":
                    root = path.rstrip("/") + "/"
                    found = [_listed(fs, protocol, i) for name, i in sorted(fs.find(path, detail=True).items())
                             if i.get("type") == "file"
                             and not any(p.startswith(".") for p in name[len(root):].split("/"))]
                    if not found:
                        raise RemoteInputError(f"The prefix {shown(url)} holds no objects.", reason="empty",
                                               url=shown(url))
                else:
                    found = [_listed(fs, protocol, {**info, "name": url if protocol in ("http", "https")
                                                     else info.get("name", path)})]
                    objects.append(RemoteObject(fs, found[0]))
                    continue
            by_path = {listed.path: listed for listed in found}
            found = [by_path[p] for p in order(list(by_path))]
            for listed, head in zip(found, _heads(fs, found)):
                if binary(head):
                    skipped.append(shown(listed.url))
                else:
                    objects.append(RemoteObject(fs, listed))
        except ContextAccessError:
            raise
        except ImportError as exc:  # gs://, az://... need their own fsspec backend; fsspec's message names it
            raise RemoteInputError(f"Cannot read {shown(url)}: {exc}.", reason="no_backend", url=shown(url)) from exc
        except Exception as exc:
            raise _why(fs if "fs" in locals() else None, url, exc) from exc
    return objects, skipped


def _why(fs: Any, url: str, exc: BaseException) -> RemoteInputError:
    """A missing bucket and a missing key read differently, so say which one it is."""
    if getattr(exc.__cause__, "status", None) in (401, 403):
        return _fail(url, exc)
    if isinstance(exc, FileNotFoundError) and fs is not None and url.split("://", 1)[0] in (
            "s3", "s3a", "gs", "gcs", "az", "abfs"):
        bucket = urlsplit(url).netloc
        try:
            exists = fs.exists(bucket)
        except Exception:
            exists = True
        if not exists:
            return RemoteInputError(f"No such bucket: {bucket} (for {shown(url)}). Check the URL (and "
                                    "AWS_ENDPOINT_URL for an S3-compatible store).", reason="no_bucket", url=shown(url))
        return RemoteInputError(f"No such object or prefix: {shown(url)}. Check the key.", reason="not_found",
                                url=shown(url))
    return _fail(url, exc)


def _heads(fs: Any, found: list[_Listed]) -> list[bytes]:
    """The first bytes of each listed object, fetched together, to leave binary and compressed ones out."""
    if not found:
        return []
    ends = [min(o.size, _SNIFF_BYTES) for o in found]
    heads: list[bytes] = fs.cat_ranges([o.path for o in found], [0] * len(found), ends, on_error="raise")
    _count_fetched(sum(len(h) for h in heads))
    return heads


class RemoteObject:
    """One object: its URL and facts, random reads through a bounded block cache, and streamed searches."""

    def __init__(self, fs: Any, listed: _Listed) -> None:
        self._fs = fs
        self.url = listed.url
        self.name = shown(listed.url)
        self.path = listed.path
        self.size = listed.size
        self.etag = listed.etag
        self.mtime = listed.mtime
        self._lock = threading.Lock()
        self._cache: Any = None
        self._block_newlines: dict[int, int] = {}  # newlines in line block k, filled by streamed searches
        # The window a search is streaming (its offset, its bytes): reads and line counts near its hits use it.
        self._window: tuple[int, bytes] | None = None

    def identity(self) -> bytes:
        """What the input fingerprint uses: URL, size, ETag and modification time (no byte is read)."""
        return f"{self.name}\0{self.size}\0{self.etag}\0{self.mtime}\0".encode()

    def close(self) -> None:
        with self._lock:
            self._cache = None

    # -- reading ---------------------------------------------------------------
    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``, retried with backoff while the run's deadline allows."""
        end = min(end, self.size)  # the block cache asks for whole blocks, the last one past the end
        if end <= start:
            return b""
        run = current_scope()
        tries = 0
        delay = _FIRST_BACKOFF
        while True:
            try:
                data: bytes = self._fs.cat_file(self.path, start=start, end=end)
            except Exception as exc:
                if _permanent(exc):
                    raise _fail(self.url, exc) from exc
                tries += 1
                now = time.monotonic()
                if run is not None:
                    if now + delay >= run.deadline_at():
                        raise run.runtime_error(
                            f"Reading {self.name} failed ({type(exc).__name__}) and was retried {tries} times until "
                            "the runtime limit; results published so far are kept. Check the network or endpoint."
                        ) from exc
                elif tries >= _TRIES_OUTSIDE_A_RUN:
                    raise RemoteInputError(f"Reading {self.name} failed {tries} times ({type(exc).__name__}); "
                                           "check the network or the endpoint.", reason="network",
                                           url=self.name) from exc
                log.warning("reading %s bytes %d-%d failed (%s); retrying in %.2fs", self.name, start, end,
                            type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
                continue
            _count_fetched(len(data))
            if len(data) != end - start:
                raise RemoteInputError(f"{self.name} returned {len(data)} bytes for a range of {end - start}: it "
                                       "changed while it was being read, or its server ignores Range requests.",
                                       reason="changed", url=self.name)
            return data

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` through fsspec's block cache (at most a few blocks held per object)."""
        start, end = max(start, 0), min(end, self.size)
        if end <= start:
            return b""
        window = self._window
        if window is not None and window[0] <= start and end <= window[0] + len(window[1]):
            return window[1][start - window[0]: end - window[0]]
        if end - start > _CACHE_BLOCK * _CACHE_BLOCKS // 2:
            return self._fetch(start, end)  # a long read would only churn the cache
        with self._lock:
            if self._cache is None:
                from fsspec.caching import BlockCache

                self._cache = BlockCache(_CACHE_BLOCK, self._fetch, self.size, maxblocks=_CACHE_BLOCKS)
            data: bytes = self._cache._fetch(start, end)
            return data

    def count_newlines(self, start: int, end: int) -> int:
        """Newlines in ``[start, end)``; a whole line block a search streamed costs no fetch."""
        if start % LINE_BLOCK == 0 and end - start == LINE_BLOCK:
            known = self._block_newlines.get(start // LINE_BLOCK)
            if known is not None:
                return known
        window = self._window
        if window is not None and window[0] <= start and end <= window[0] + len(window[1]):
            return window[1].count(b"\n", start - window[0], end - window[0])
        total = 0
        for a in range(start, end, LINE_BLOCK):
            total += self.read(a, min(a + LINE_BLOCK, end)).count(b"\n")
        return total

    def _tally(self) -> Callable[[int, bytes], None]:
        """A counter fed consecutive fetched pieces, which records the newlines of every line block they cover."""
        state = [-1, 0, False]  # current block, newlines counted in it, whether counting began at its start

        def note(offset: int, data: bytes) -> None:
            i = 0
            while i < len(data):
                block = (offset + i) // LINE_BLOCK
                stop = min(len(data), (block + 1) * LINE_BLOCK - offset)
                if block != state[0]:
                    state[:] = [block, 0, (offset + i) % LINE_BLOCK == 0]
                state[1] += data.count(b"\n", i, stop)
                if (offset + stop) % LINE_BLOCK == 0 and state[2]:
                    self._block_newlines[block] = int(state[1])
                i = stop

        return note

    # -- searching ---------------------------------------------------------------
    def hits(self, rx: Searcher, start: int, end: int, deadline: float | None) -> Generator[Hit, None, None]:
        """Every hit of ``rx`` in ``[start, end)``, exactly as over the whole object, from windows streamed in order.

        Windows end just after a newline when no match can hold one, or overlap by the pattern's longest
        match; each byte is fetched once (the overlap is kept, not fetched again). Other patterns raise
        ContextAccessError (see window_plan). At most one window, and the pieces it is fetched in, is held.
        """
        overlap = window_plan(rx.pattern, rx.flags)
        note = self._tally()
        tail = self._read_back(max(start - _BEHIND, 0), start)  # what lookbehinds and \b see before `start`
        tail_at = start - len(tail)  # object offset of the first byte held
        pieces = [tail]
        fetched_to = pos = start
        size = _FIRST_WINDOW
        ahead: list[tuple[int, Future[bytes]]] = []  # the next range, fetched while this window is searched

        def fetch(to: int) -> None:
            nonlocal fetched_to
            if ahead:
                at, future = ahead.pop()
                if at == fetched_to:  # always so: reads are consecutive
                    data = future.result()
                    note(fetched_to, data)
                    pieces.append(data)
                    fetched_to += len(data)
            if fetched_to < to:
                data = self._fetch(fetched_to, to)
                note(fetched_to, data)
                pieces.append(data)
                fetched_to = to

        def newline_after(offset: int) -> int:
            """The object offset of the first newline at or past ``offset`` in what is held, or -1."""
            at = tail_at
            for piece in pieces:  # piece by piece: no copy of the window just to find its edge
                if at + len(piece) > offset and (found := piece.find(b"\n", max(offset - at, 0))) >= 0:
                    return at + found
                at += len(piece)
            return -1

        try:
            while pos < end:
                if deadline is not None and time.monotonic() >= deadline:
                    raise SearchDeadline
                want = min(pos + size, end)
                while fetched_to < want:
                    fetch(min(fetched_to + _PIECE, want))
                edge = limit = want
                if overlap is not None:
                    limit = min(end, want + overlap)
                    if fetched_to < limit:
                        fetch(limit)
                elif want < end:
                    # The window ends just after the first newline at or past `want` (it may be held already).
                    nl = newline_after(want)
                    step = _FIRST_STEP
                    while nl < 0 and fetched_to < end:
                        before = fetched_to
                        fetch(min(fetched_to + step, end))
                        step = min(step * 2, _PIECE)
                        nl = newline_after(before)
                    edge = limit = end if nl < 0 else nl + 1
                size = min(size * 2, _WINDOW)
                if fetched_to < end:
                    ahead.append((fetched_to, _prefetch(self._fetch, fetched_to, min(end, fetched_to + size))))
                window = b"".join(pieces)
                del pieces[:]
                self._window = (tail_at, window)
                last_end = edge
                try:
                    for s, e, raw, groups in rx.finditer(window, pos - tail_at, limit - tail_at, deadline):
                        if s + tail_at >= edge and edge < end:
                            break
                        last_end = max(last_end, e + tail_at)
                        yield s + tail_at, e + tail_at, raw, groups
                finally:
                    self._window = None
                pos = max(edge, last_end)
                keep = max(pos - _BEHIND, tail_at)
                pieces.append(window[keep - tail_at:])  # what comes before the next window, and what was read past it
                tail_at = keep
                del window
        finally:
            for _, future in ahead:
                future.cancel()  # one range at most is fetched for nothing when a search stops early

    def _read_back(self, lo: int, start: int) -> bytes:
        """The bytes from the last newline before ``start`` (at most back to ``lo``), for lookbehinds and ``\\b``."""
        if start <= 0:
            return b""
        before = self.read(max(start - 4096, lo), start)
        nl = before.rfind(b"\n")
        if nl >= 0 or start - len(before) <= lo:
            return before[nl:] if nl >= 0 else before
        return self._fetch(lo, start)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _prefetch(fetch: Callable[[int, int], bytes], start: int, end: int) -> Future[bytes]:
    """``fetch(start, end)`` on a worker thread, in this run's context (its deadline, its retries)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlm-prefetch")
    return _pool.submit(contextvars.copy_context().run, fetch, start, end)


def window_plan(pattern: str, flags: int) -> int | None:
    """How a pattern is searched in streamed windows: by an overlap of this many bytes, or None (edges at newlines).

    Exact for a pattern whose longest match is bounded (with no lookaround or end anchor), and for one that
    can never match a newline (its windows end just after one). Any other pattern raises
    ContextAccessError: over an object it could match across a window's edge.
    """
    try:
        tree = _sre_parse.parse(pattern.encode("utf-8"), flags & ~re.UNICODE)  # widths in bytes
    except Exception as exc:
        raise _unstreamable(pattern) from exc
    width = tree.getwidth()[1]
    if width < (1 << 20) and _plain(tree):
        return int(width) + 1
    if not _may_cross_lines(tree, bool(tree.state.flags & re.DOTALL), bool(tree.state.flags & re.MULTILINE)):
        return None
    raise _unstreamable(pattern)


def _unstreamable(pattern: str) -> ContextAccessError:
    return ContextAccessError(
        f"The pattern {pattern!r} may match across lines with no bound on its length, which cannot be searched in "
        "an object read by ranges. Keep matches within a line (e.g. [^\\n]* instead of .* with DOTALL).")


def _plain(items: Any) -> bool:
    """No lookaround, backreference or string-end anchor anywhere (only \\b-like anchors and line starts)."""
    c = _sre_const
    for op, av in items:
        if op in (c.ASSERT, c.ASSERT_NOT, c.GROUPREF, c.GROUPREF_EXISTS):
            return False
        if op is c.AT and av in (c.AT_END, c.AT_END_STRING, c.AT_END_LINE):
            return False
        subs: list[Any] = []
        if op is c.BRANCH:
            subs = list(av[1])
        elif op is c.SUBPATTERN:
            subs = [av[3]]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            subs = [av[2]]
        elif op is getattr(c, "ATOMIC_GROUP", None):
            subs = [av]
        if not all(_plain(sub) for sub in subs):
            return False
    return True


def _may_cross_lines(items: Any, dotall: bool, multiline: bool) -> bool:
    """Whether a match (or a lookaround in it) could hold a newline, or ``$`` could see a window's end."""
    c = _sre_const
    for op, av in items:
        if op is c.ANY and dotall:
            return True
        if op is c.LITERAL and av == 10 or op is c.NOT_LITERAL and av != 10:
            return True
        if op is c.IN and _set_has_newline(av):
            return True
        if op is c.AT and av is c.AT_END and not multiline:
            return True  # "$" matches before a string's last newline: a window's edge is one
        if op in (c.GROUPREF_EXISTS,):
            return True
        subs: list[Any] = []
        sub_dotall, sub_multiline = dotall, multiline
        if op is c.BRANCH:
            subs = list(av[1])
        elif op is c.SUBPATTERN:
            _group, add, remove, sub = av
            sub_dotall = (dotall or bool(add & re.DOTALL)) and not remove & re.DOTALL
            sub_multiline = (multiline or bool(add & re.MULTILINE)) and not remove & re.MULTILINE
            subs = [sub]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            subs = [av[2]]
        elif op in (c.ASSERT, c.ASSERT_NOT):
            subs = [av[1]]
        elif op is getattr(c, "ATOMIC_GROUP", None):
            subs = [av]
        if any(_may_cross_lines(sub, sub_dotall, sub_multiline) for sub in subs):
            return True
    return False


def _set_has_newline(items: Any) -> bool:
    c = _sre_const
    hit, negate = False, False
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            hit |= av == 10
        elif op is c.RANGE:
            hit |= av[0] <= 10 <= av[1]
        elif op is c.CATEGORY:
            hit |= av not in (c.CATEGORY_DIGIT, c.CATEGORY_WORD, c.CATEGORY_UNI_DIGIT, c.CATEGORY_UNI_WORD,
                              c.CATEGORY_NOT_LINEBREAK, c.CATEGORY_UNI_NOT_LINEBREAK)
    return hit != negate


