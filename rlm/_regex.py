"""Regex search over mapped bytes, with RE2 as an accelerator where it is exact.

Patterns are Python ``re`` syntax. RE2 (the ``google-re2`` package) scans a
large file several times faster than ``re`` (see benchmarks/context_search.py),
but its semantics differ at the edges, so it is used only for patterns in a
subset where both engines provably return the same matches: ASCII-only,
never empty, made of literals, classes, ``.``, ``\b``, alternation, groups
and repeats, with at most the IGNORECASE flag. RE2 runs in Latin-1 mode so that,
like ``re`` on bytes, ``.`` is one byte and case folding is ASCII-only.
Everything else runs on ``re``.

An alternation of plain literals (``ERROR|FATAL|Exception``, the most common
log search) defeats RE2's literal prefilter, so it is split: each literal is
found with its own fast scan and the hits are merged leftmost-first, exactly
as ``re`` would pick them (at one position, the earliest alternative wins).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from typing import Any

try:  # the accelerator is optional: without it every pattern runs on re
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised only where google-re2 is missing
    _re2 = None

try:
    import re._parser as _sre_parse  # type: ignore[import-not-found]
    import re._constants as _sre_const  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python < 3.11
    _sre_parse = None
    _sre_const = None

__all__ = ["BytesSearcher"]

Hit = tuple[int, int, bytes, tuple[bytes | None, ...]]
_NO_GROUPS: tuple[bytes | None, ...] = ()
_RE2_MAX_REPEAT = 1000


def _re2_safe(pattern: bytes, flags: int) -> bool:
    """Whether RE2 (Latin-1) and ``re`` (bytes) agree on every match of this pattern."""
    if _re2 is None or _sre_parse is None or flags & ~re.IGNORECASE:
        return False
    # "[:" would be a POSIX class to RE2 but a plain set to re.
    if not pattern.isascii() or b"[:" in pattern:
        return False
    try:
        tree = _sre_parse.parse(pattern.decode("ascii"), flags)
    except Exception:
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


_META = set(b".^$*+?{}[]()|\\")


def _literal_alternatives(pattern: bytes) -> list[bytes] | None:
    """The literals of a pattern that is only ``lit|lit|...`` (maybe in ``(?:...)``), else None."""
    if pattern.startswith(b"(?:") and pattern.endswith(b")"):
        pattern = pattern[3:-1]
    alternatives: list[bytes] = []
    current = bytearray()
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == ord("|"):
            alternatives.append(bytes(current))
            current = bytearray()
        elif c == ord("\\"):
            if i + 1 >= len(pattern) or chr(pattern[i + 1]).isalnum():
                return None  # \d, \b, \1 ...: not a literal
            current.append(pattern[i + 1])
            i += 1
        elif c in _META:
            return None
        else:
            current.append(c)
        i += 1
    alternatives.append(bytes(current))
    if len(alternatives) < 2 or not all(alternatives):
        return None
    return alternatives


class BytesSearcher:
    """A compiled bytes pattern that yields ``(start, end, text, groups)`` hits in order."""

    def __init__(self, pattern: bytes, flags: int = 0) -> None:
        self.pattern = pattern.decode("utf-8", errors="replace")
        self._re = re.compile(pattern, flags)  # validates, and is the fallback
        self._re2_match: Any = None
        self._literal_matches: list[Any] = []
        if _re2_safe(pattern, flags):
            try:
                self._re2_match = self._compile_re2(pattern, flags)
                literals = _literal_alternatives(pattern)
                if literals is not None:
                    self._literal_matches = [self._compile_re2(lit, flags, literal=True) for lit in literals]
            except Exception:  # any surprise (another google-re2 build): re does the work
                self._re2_match = None
                self._literal_matches = []

    def _compile_re2(self, pattern: bytes, flags: int, literal: bool = False) -> Any:
        """RE2's engine call, without the wrapper's per-match Python objects.

        It returns ``[(start, end), *group spans]``, with ``(-1, -1)`` for no match.
        """
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
        if self._literal_matches:
            return f"re2 x{len(self._literal_matches)} literals"
        return "re2" if self._re2_match is not None else "re"

    def finditer(self, buf: Any, start: int, end: int) -> Iterator[Hit]:
        if self._literal_matches:
            yield from self._merge_literals(buf, start, end)
            return
        match = self._re2_match
        if match is not None:
            anchor = self._unanchored
            pos = start
            while True:
                spans = match(anchor, buf, pos, end)
                s, e = spans[0]
                if s < 0:
                    return
                groups = _NO_GROUPS if len(spans) == 1 else tuple(
                    None if gs < 0 else buf[gs:ge] for gs, ge in spans[1:])
                yield s, e, buf[s:e], groups
                pos = e  # patterns here never match empty, so the next search starts at the end
        else:
            for m in self._re.finditer(buf, start, end):
                yield m.start(), m.end(), m.group(), m.groups()

    def _merge_literals(self, buf: Any, start: int, end: int) -> Iterator[Hit]:
        """Leftmost-first hits of ``lit1|lit2|...`` from one scan per literal, merged on a heap."""
        anchor = self._unanchored
        matches = self._literal_matches
        heap: list[tuple[int, int, int]] = []  # (start, alternative index, end): ties go to the earlier one
        for index, match in enumerate(matches):
            s, e = match(anchor, buf, start, end)[0]
            if s >= 0:
                heap.append((s, index, e))
        heapq.heapify(heap)
        pos = start
        while heap:
            s, index, e = heap[0]
            if s < pos:  # overlapped by the hit just taken: look again from there
                s, e = matches[index](anchor, buf, pos, end)[0]
            else:
                yield s, e, buf[s:e], _NO_GROUPS
                pos = e
                s, e = matches[index](anchor, buf, e, end)[0]
            if s < 0:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (s, index, e))
