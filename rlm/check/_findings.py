"""What the checker reports: a finding, its rule and fix, the error when a file cannot be checked."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from rlm.errors import RLMError

#: The rules a finding can name.
RULES = ("rule1", "rule2", "rule3", "rule4", "hazard")

_RULE_OF_PREFIX = MappingProxyType({"R1": "rule1", "R2": "rule2", "R3": "rule3", "R4": "rule4", "H": "hazard"})


@dataclass(frozen=True)
class Finding:
    """One place where a task breaks a rule (or walks into a hazard), and how to fix it."""

    file: str
    line: int
    col: int  # 1-based
    rule: str  # one of RULES
    message: str
    fix: str
    code: str = ""  # e.g. "R1-fstring"


class CheckError(RLMError):
    """A file could not be checked: unreadable, not Python, or without the function asked for."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


_FIXES = MappingProxyType({
    "R1": "send one bounded piece instead: a chunk from context_slice(ctx, a, b) or context_line(ctx, m.start) "
          "around a context_search hit; format facts like len(ctx), never the context",
    "R2": "reach the context only through rlm.context_access: context_slice / context_head / context_tail, "
          "context_search / context_finditer, context_chunks, context_line",
    "R2-subscript": "use context_slice(ctx, start, end), context_head(ctx, n) or context_tail(ctx, n)",
    "R2-in": "use context_search(ctx, re.escape(text), max_hits=1) and test whether it found anything",
    "R2-iter": "walk it with context_chunks(ctx, size), or find what you need with context_search(ctx, pattern, "
               "max_hits=N) / context_finditer(ctx, pattern)",
    "R2-open": "do not read the input file yourself: the runtime maps it into the task's context argument; "
               "use the rlm.context_access functions on that",
    "R3": "bound it: context_search(..., max_hits=N), a slice [:N], itertools.islice(it, N), zip(range(N), it) "
          "or a counter with break; narrow with context_search first, then make one subcall per kept hit",
    "R4": "build the answer in Python (lists, counts and dicts of per-chunk answers); "
          "use subcalls only to interpret bounded chunks",
    "H-re": "use context_search(ctx, pattern, max_hits=N) or context_finditer(ctx, pattern): they scan the "
            "mapped file and stop at the run's deadline",
    "H-sequential": "run the calls concurrently with parallel_map(fn, items), under the same guards",
    "H-materialize": "stream instead: for m in context_finditer(ctx, pattern) counting or grouping in Python, "
                     "or cap the list with max_hits=N",
    "H-accumulate": "count or group while streaming, or cap the list (if len(items) < N: items.append(...))",
    "H-threads": "make the subcalls with rlm.subcalls.parallel_map(fn, items): its workers carry the run's budget, "
                 "deadline and trace, and the run's max_workers caps them",
})


def fix_for(code: str) -> str:
    """The fix for a finding code: its own, or its rule's."""
    return _FIXES.get(code) or _FIXES[code.split("-")[0]]


class Findings:
    """The findings of one file: at most one per line and rule (the first reported wins)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._found: dict[tuple[int, str], Finding] = {}

    def report(self, node: ast.AST, code: str, message: str) -> None:
        rule = _RULE_OF_PREFIX[code.split("-")[0]]
        line = getattr(node, "lineno", 1)
        key = (line, rule)
        if key not in self._found:
            self._found[key] = Finding(self.filename, line, getattr(node, "col_offset", 0) + 1, rule, message,
                                       fix_for(code), code)

    def in_order(self) -> list[Finding]:
        """In line order; materialising a scan is not also a hazard where rule 3 already reports the scan."""
        rule3_lines = {line for line, rule in self._found if rule == "rule3"}
        kept = [f for f in self._found.values() if not (f.code == "H-materialize" and f.line in rule3_lines)]
        return sorted(kept, key=lambda f: (f.line, f.col, f.rule))


def format_findings(findings: Iterable[Finding]) -> str:
    """One line per finding: ``file:line:col: rule: message (fix: ...)``."""
    return "\n".join(f"{f.file}:{f.line}:{f.col}: {f.rule}: {f.message} (fix: {f.fix})" for f in findings)
