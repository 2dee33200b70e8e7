"""What a value is, as far as the check knows: a taint, a set of labels.

A label is a fact about a value (it is the context, a lazy scan of it, a
subcall's answer...) or a structure around one (a container of it, a count
of items, a function, an instance of a class of the checked module).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Elem:
    """An element of a container holds ``inner``."""

    inner: Label


@dataclass(frozen=True)
class Count:
    """A sequence of at most ``n`` items."""

    n: int


@dataclass(frozen=True)
class Fn:
    """A reference to a function (an index into the analysis's function references)."""

    index: int


@dataclass(frozen=True)
class Inst:
    """An instance of a class of the checked module."""

    cls: str


Label = str | Elem | Count | Fn | Inst
Taint = frozenset[Label]

CTX = "ctx"  # the context itself
WHOLE = "whole"  # text holding the whole document (read from the file, or reassembled)
STRINGIFIED = "stringified"  # the context turned into a string (already reported)
FILE = "file"  # an open file
PATH = "path"  # a pathlib.Path
STREAM = "stream"  # a lazy scan of the whole context: every match, chunk or position
ULIST = "ulist"  # a list of every match, chunk or line of the whole context
LIST = "list"  # a Python container built by the task
AGG = "agg"  # text aggregated from many values (a join, a dumped list, an accumulated string)
SUBCALL = "subcall"  # a subcall's answer
SUBCALL_AGG = "subcall_agg"  # a subcall's answer over aggregated results ("summarize everything")
PATTERN = "pattern"  # a compiled regular expression

EMPTY: Taint = frozenset()
UNBOUNDED = frozenset({STREAM, ULIST})
WHOLE_TEXT = frozenset({CTX, WHOLE, STRINGIFIED})
ANSWERS = frozenset({SUBCALL, SUBCALL_AGG})
_CARRIED = frozenset({CTX, WHOLE, STRINGIFIED, SUBCALL, SUBCALL_AGG, PATTERN, FILE})


def elems(t: Taint) -> Taint:
    """What iterating over, or indexing into, a value with taint ``t`` gives."""
    return frozenset(label.inner for label in t if isinstance(label, Elem))


def wrap(t: Taint) -> Taint:
    """The taint of a container holding a value with taint ``t``."""
    return frozenset(Elem(label) for label in t if isinstance(label, (Elem, Fn, Inst)) or label in _CARRIED)


def count(t: Taint) -> int | None:
    """The most items a value with taint ``t`` can have, if known."""
    counts = [label.n for label in t if isinstance(label, Count)]
    return max(counts) if counts else None


def no_counts(t: Taint) -> Taint:
    return frozenset(label for label in t if not isinstance(label, Count))


def fns(t: Taint) -> list[int]:
    """The function references a value may be."""
    return sorted(label.index for label in t if isinstance(label, Fn))


def union(taints: tuple[Taint, ...] | list[Taint]) -> Taint:
    return frozenset().union(*taints) if taints else EMPTY


def merge(*envs: dict[str, Taint]) -> dict[str, Taint]:
    """Names bound on any of several paths: each may hold what any path gave it."""
    out: dict[str, Taint] = {}
    for env in envs:
        for name, t in env.items():
            out[name] = out.get(name, EMPTY) | t
    return out
