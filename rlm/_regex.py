"""Regex search over a context that never outruns the run's deadline, whatever the pattern.

Patterns are Python ``re`` syntax (``re`` validates them, so errors read the
same). Two engines run them:

- **RE2** (google-re2) runs in linear time, several times faster than ``re`` on
  a large file, but its semantics differ at the edges; it takes only patterns
  of a subset where both provably return the same matches over bytes:
  ASCII-only, never empty, made of literals, classes, ``.``, ``\\b``,
  alternation, groups and repeats, with at most IGNORECASE (RE2 in Latin-1
  mode, so ``.`` is one byte and case folding is ASCII-only, as in ``re``).
  It scans in windows (64 KB growing to 16 MB) with a deadline check between
  them. Windowing is exact when the pattern's match length is bounded (each
  window's search may run on past its end by that length) or when it cannot
  match a newline (windows end just after one); other RE2-safe patterns go to
  the second engine. An alternation of plain literals (``ERROR|FATAL``) is
  split into one fast scan per literal, merged leftmost-first as ``re`` would
  pick, window by window, so the first hit comes as fast as the first hit of
  the earliest literal, whatever the others do.
- **regex** (mrab-regex, ``re``-compatible syntax and results) runs every other
  pattern, with a timeout so that catastrophic backtracking, lookarounds and
  backreferences stop at the deadline, and with the GIL released so the rest
  of the runtime keeps running meanwhile.

A search that reaches the deadline raises :class:`SearchDeadline`; the
caller turns it into the run's RuntimeLimitError.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterator
from typing import Any

import regex as _regex

try:  # the accelerator is optional: without it every pattern runs on regex
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised only where google-re2 is missing
    _re2 = None

import re._constants as _sre_const  # type: ignore[import-not-found]
import re._parser as _sre_parse  # type: ignore[import-not-found]

__all__ = ["Searcher", "SearchDeadline", "Hit"]

Hit = tuple[int, int, Any, tuple[Any, ...]]  # start, end, matched text (bytes or str), groups
_NO_GROUPS: tuple[Any, ...] = ()
_RE2_MAX_REPEAT = 1000
_FIRST_WINDOW = 64 << 10
_MAX_WINDOW = 16 << 20
#: A newline is looked for in pieces of this size, the clock checked between them (a 3 GB line holds none).
_NEWLINE_PIECE = 16 << 20
#: A window that must end at a newline but finds none this far on is searched by the timed engine instead.
_GIANT_WINDOW = 4 * _MAX_WINDOW
#: Longest match length for which windows overlap instead of ending at newlines.
_MAX_OVERLAP = 1 << 20
#: A regex iterator is renewed when its per-search timeout could outlast the deadline by this much.
_TIMEOUT_SLACK = 0.1
_NEWLINE = 10


class SearchDeadline(Exception):
    """A search reached the run's deadline."""


def _parse(pattern: str, flags: int) -> Any | None:
    try:
        return _sre_parse.parse(pattern, flags)
    except Exception:
        return None


def _re2_safe(tree: Any, pattern: bytes, flags: int) -> bool:
    """Whether RE2 (Latin-1) and ``re`` (bytes) agree on every match of this parsed pattern."""
    if _re2 is None or tree is None or flags & ~re.IGNORECASE:
        return False
    # "[:" would be a POSIX class to RE2 but a plain set to re.
    if not pattern.isascii() or b"[:" in pattern:
        return False
    if tree.state.flags & ~(re.IGNORECASE | re.UNICODE) or tree.getwidth()[0] == 0:
        return False
    c = _sre_const
    ok_ops = {c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN, c.BRANCH, c.SUBPATTERN, c.MAX_REPEAT, c.MIN_REPEAT, c.AT}
    # \b and \B: both engines use ASCII word characters on bytes. ^, $, \A, \Z differ at line ends.
    ok_at = {c.AT_BOUNDARY, c.AT_NON_BOUNDARY}
    ok_in = {c.LITERAL, c.RANGE, c.NEGATE, c.CATEGORY}
    ok_categories = {c.CATEGORY_DIGIT, c.CATEGORY_NOT_DIGIT, c.CATEGORY_WORD, c.CATEGORY_NOT_WORD}

    def walk(items: Any) -> bool:
        for op, av in items:
            if op not in ok_ops:
                return False
            if op is c.AT and av not in ok_at:
                return False
            if op is c.IN:
                for iop, iav in av:
                    if iop not in ok_in or (iop is c.CATEGORY and iav not in ok_categories):
                        return False
            elif op is c.BRANCH:
                if not all(walk(branch) for branch in av[1]):
                    return False
            elif op is c.SUBPATTERN:
                _group, add_flags, del_flags, sub = av
                if add_flags or del_flags or not walk(sub):
                    return False
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                lo, hi, sub = av
                if lo > _RE2_MAX_REPEAT or (hi != c.MAXREPEAT and hi > _RE2_MAX_REPEAT) or not walk(sub):
                    return False
        return True

    return walk(tree)


def _can_match_newline(tree: Any) -> bool:
    """Whether any match of an RE2-safe pattern could contain a newline byte."""
    c = _sre_const
    digit_or_word = {c.CATEGORY_DIGIT, c.CATEGORY_WORD}

    def in_set(items: Any) -> bool:
        hit, negate = False, False
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                hit |= av == _NEWLINE
            elif op is c.RANGE:
                hit |= av[0] <= _NEWLINE <= av[1]
            elif op is c.CATEGORY:
                hit |= av not in digit_or_word  # \D and \W contain a newline; \d and \w do not
        return hit != negate

    def walk(items: Any) -> bool:
        for op, av in items:
            if op is c.LITERAL and av == _NEWLINE:
                return True
            if op is c.NOT_LITERAL and av != _NEWLINE:
                return True
            if op is c.IN and in_set(av):
                return True
            if op is c.BRANCH and any(walk(branch) for branch in av[1]):
                return True
            if op is c.SUBPATTERN and walk(av[3]):
                return True
            if op in (c.MAX_REPEAT, c.MIN_REPEAT) and walk(av[2]):
                return True
        return False  # ANY: RE2-safe patterns have no DOTALL, so "." never matches a newline

    return walk(tree)


_META = set(b".^$*+?{}[]()|\\")


def _literal_alternatives(pattern: bytes) -> list[bytes] | None:
    """The literals of a pattern that is only ``lit|lit|...`` (maybe in ``(?:...)``), else None."""
    if pattern.startswith(b"(?:") and pattern.endswith(b")"):
        pattern = pattern[3:-1]
    alternatives: list[bytes] = []
    current = bytearray()
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == ord("|"):
            alternatives.append(bytes(current))
            current = bytearray()
        elif ch == ord("\\"):
            if i + 1 >= len(pattern) or chr(pattern[i + 1]).isalnum():
                return None  # \d, \b, \1 ...: not a literal
            current.append(pattern[i + 1])
            i += 1
        elif ch in _META:
            return None
        else:
            current.append(ch)
        i += 1
    alternatives.append(bytes(current))
    if len(alternatives) < 2 or not all(alternatives):
        return None
    return alternatives


def _windows(start: int, end: int, first: int, largest: int) -> Iterator[tuple[int, int]]:
    """Consecutive windows covering ``[start, end)``, small first so that a first hit comes fast."""
    lo, size = start, first
    while lo < end:
        hi = min(lo + size, end)
        yield lo, hi
        lo, size = hi, min(size * 2, largest)


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise SearchDeadline


class Searcher:
    """A compiled pattern for one kind of context (bytes of a mapped file, or text) that yields hits in order."""

    def __init__(self, pattern: str, flags: int = 0, *, binary: bool,
                 windows: tuple[int, int] = (_FIRST_WINDOW, _MAX_WINDOW)) -> None:
        self.pattern = pattern
        self.binary = binary
        self._window_sizes = windows
        source: str | bytes = pattern.encode("utf-8") if binary else pattern
        if binary:
            flags &= ~re.UNICODE
        self.flags = flags  # as compiled: what a search streamed in windows needs to know of the pattern
        self._re: Any = re.compile(source, flags)  # validates: errors read as re's, whatever engine runs it
        self._regex: Any = _regex.compile(source, flags)
        self._re2: Any = None
        self._literals: list[tuple[Any, int]] = []  # (engine call, literal length)
        self._overlap: int | None = None  # window overlap for bounded patterns; None: windows end at newlines
        if binary:
            self._try_re2(pattern.encode("utf-8"), flags)

    def _try_re2(self, pattern: bytes, flags: int) -> None:
        tree = _parse(pattern.decode("ascii", errors="replace"), flags)
        if tree is None or not _re2_safe(tree, pattern, flags):
            return
        widest = tree.getwidth()[1]
        bounded = widest <= _MAX_OVERLAP
        if not bounded and _can_match_newline(tree):
            return  # no exact window edge: the regex engine, which can time out, runs it
        try:
            literals = _literal_alternatives(pattern)
            if literals is not None:
                self._literals = [(self._compile_re2(lit, flags, literal=True), len(lit)) for lit in literals]
            else:
                self._re2 = self._compile_re2(pattern, flags)
        except Exception:  # any surprise (another google-re2 build): the regex engine does the work
            self._re2, self._literals = None, []
            return
        self._overlap = widest + 1 if bounded else None

    def _compile_re2(self, pattern: bytes, flags: int, literal: bool = False) -> Any:
        """RE2's engine call, without the wrapper's per-match Python objects.

        It returns ``[(start, end), *group spans]``, with ``(-1, -1)`` for no match.
        """
        assert _re2 is not None
        options = _re2.Options()
        options.encoding = _re2.Options.Encoding.LATIN1
        options.case_sensitive = not flags & re.IGNORECASE
        options.literal = literal
        match = _re2.compile(pattern, options)._regexp.Match
        self._unanchored = _re2._Anchor.UNANCHORED
        match(self._unanchored, b"", 0, 0)
        return match

    @property
    def engine(self) -> str:
        if self._literals:
            return f"re2 x{len(self._literals)} literals"
        return "re2" if self._re2 is not None else "regex"

    def finditer(self, buf: Any, start: int, end: int, deadline: float | None = None) -> Iterator[Hit]:
        """Hits in ``[start, end)`` of ``buf``, leftmost-first as ``re.finditer`` gives them."""
        if self._literals:
            return self._literal_hits(buf, start, end, deadline)
        if self._re2 is not None:
            return self._re2_hits(buf, start, end, deadline)
        return self._regex_hits(buf, start, end, deadline)

    def _window_end(self, buf: Any, hi: int, end: int, deadline: float | None) -> tuple[int, int]:
        """(where hits may start, where the search may read) for a window ending at ``hi``."""
        if self._overlap is not None:
            return hi, min(end, hi + self._overlap)
        at = hi
        while at < end:  # in pieces: a file with no newline for gigabytes still stops at the deadline
            piece = min(end, at + _NEWLINE_PIECE)
            nl = buf.find(b"\n", at, piece)
            if nl >= 0:
                return nl + 1, nl + 1
            at = piece
            _check(deadline)
        return end, end

    def _re2_hits(self, buf: Any, start: int, end: int, deadline: float | None) -> Iterator[Hit]:
        match, anchor = self._re2, self._unanchored
        pos = start
        for _lo, hi in _windows(start, end, *self._window_sizes):
            if hi <= pos:
                continue
            _check(deadline)
            hi, limit = self._window_end(buf, hi, end, deadline)
            if limit - pos > _GIANT_WINDOW:  # one enormous line: RE2 could not be stopped, the timed engine can
                for hit in self._regex_hits(buf, pos, limit, deadline):
                    yield hit
                    pos = hit[1]
                pos = max(pos, hi)
                continue
            while True:
                spans = match(anchor, buf, pos, limit)
                s, e = spans[0]
                if s < 0 or s >= hi:
                    break
                groups = _NO_GROUPS if len(spans) == 1 else tuple(
                    None if gs < 0 else buf[gs:ge] for gs, ge in spans[1:])
                yield s, e, buf[s:e], groups
                pos = e  # RE2 patterns here never match empty: the next search starts at the end
            pos = max(pos, hi)

    def _literal_hits(self, buf: Any, start: int, end: int, deadline: float | None) -> Iterator[Hit]:
        """Leftmost-first hits of ``lit1|lit2|...``: per window, one scan per literal, merged on a heap."""
        anchor = self._unanchored
        calls = [call for call, _ in self._literals]
        lengths = [length for _, length in self._literals]
        pos = start
        for _lo, hi in _windows(start, end, *self._window_sizes):
            if hi <= pos:
                continue
            _check(deadline)
            # A literal hit that starts before hi ends before hi + its length: search no further.
            limits = [min(end, hi + length - 1) for length in lengths]
            heap: list[tuple[int, int, int]] = []  # (start, alternative, end): ties go to the earlier one
            for index, call in enumerate(calls):
                s, e = call(anchor, buf, pos, limits[index])[0]
                if s >= 0:
                    heap.append((s, index, e))
            heapq.heapify(heap)
            while heap:
                s, index, e = heap[0]
                if s < pos:  # overlapped by the hit just taken: look again from there
                    s, e = calls[index](anchor, buf, pos, limits[index])[0]
                else:
                    yield s, e, buf[s:e], _NO_GROUPS
                    pos = e
                    s, e = calls[index](anchor, buf, e, limits[index])[0]
                if s < 0:
                    heapq.heappop(heap)
                else:
                    heapq.heapreplace(heap, (s, index, e))
            pos = max(pos, hi)

    def _regex_hits(self, buf: Any, start: int, end: int, deadline: float | None) -> Iterator[Hit]:
        # regex's timeout applies to each search of an iterator, counted from that search's start, so an
        # iterator made long ago could let one search run past the deadline: renew it (exactly, right after
        # a non-empty hit) once its timeout could overshoot.
        if not len(buf):  # the one place the engines differ (\B on empty input); nothing to time out
            for m in self._re.finditer(buf):
                yield m.start(), m.end(), m.group(), m.groups()
            return
        rx = self._regex
        pos = start
        while True:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if timeout == 0.0:
                raise SearchDeadline
            renew_at = None if timeout is None else time.monotonic() + _TIMEOUT_SLACK
            try:
                for m in rx.finditer(buf, pos, end, concurrent=True, timeout=timeout):
                    s, e = m.span()
                    yield s, e, m.group(), m.groups()
                    if renew_at is not None and e > s and time.monotonic() >= renew_at:
                        pos = e
                        break
                else:
                    return
            except TimeoutError:
                raise SearchDeadline from None
