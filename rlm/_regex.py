"""Regex search over mapped bytes, with RE2 as an accelerator where it is exact.

Patterns are Python ``re`` syntax. RE2 (the ``google-re2`` package) scans a
large file several times faster than ``re`` (see benchmarks/context_search.py),
but its semantics differ at the edges, so it is used only for patterns in a
subset where both engines provably return the same matches: ASCII-only,
never empty, made of literals, classes, ``.``, alternation, groups and
repeats, with at most the IGNORECASE flag. RE2 runs in Latin-1 mode so that,
like ``re`` on bytes, ``.`` is one byte and case folding is ASCII-only.
Everything else runs on ``re``.
"""

from __future__ import annotations

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
    ok_ops = {c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN, c.BRANCH, c.SUBPATTERN, c.MAX_REPEAT, c.MIN_REPEAT}
    ok_in = {c.LITERAL, c.RANGE, c.NEGATE, c.CATEGORY}
    ok_categories = {c.CATEGORY_DIGIT, c.CATEGORY_NOT_DIGIT, c.CATEGORY_WORD, c.CATEGORY_NOT_WORD}

    def walk(items: Any) -> bool:
        for op, av in items:
            if op not in ok_ops:
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


class BytesSearcher:
    """A compiled bytes pattern that yields ``(start, end, text, groups)`` hits in order."""

    def __init__(self, pattern: bytes, flags: int = 0) -> None:
        self.pattern = pattern.decode("utf-8", errors="replace")
        self._re = re.compile(pattern, flags)  # validates, and is the fallback
        self._re2 = None
        if _re2_safe(pattern, flags):
            options = _re2.Options()
            options.encoding = _re2.Options.Encoding.LATIN1
            options.case_sensitive = not flags & re.IGNORECASE
            try:
                self._re2 = _re2.compile(pattern, options)
            except Exception:
                self._re2 = None

    @property
    def engine(self) -> str:
        return "re2" if self._re2 is not None else "re"

    def finditer(self, buf: Any, start: int, end: int) -> Iterator[Hit]:
        if self._re2 is not None:
            # Patterns here never match empty, so each search resumes at the last end.
            search = self._re2.search
            pos = start
            while True:
                m = search(buf, pos, end)
                if m is None:
                    return
                s, e = m.span()
                yield s, e, m.group(), m.groups()
                pos = e
        else:
            for m in self._re.finditer(buf, start, end):
                yield m.start(), m.end(), m.group(), m.groups()
