"""The RE2 fast paths return exactly what Python's re returns, hit for hit."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlm._regex import BytesSearcher

ALPHABET = "abcAB. \n-é"
literal = st.text(alphabet="abcAB-", min_size=1, max_size=4)


def atoms() -> st.SearchStrategy[str]:
    return st.one_of(
        literal.map(re.escape),
        st.sampled_from([".", "[ab]", "[^a]", r"\d", r"\w", r"\W", "[a-c]", "(?:ab|b)", "(a|bc)"]),
    )


def patterns() -> st.SearchStrategy[str]:
    repeated = st.tuples(atoms(), st.sampled_from(["", "+", "*?", "{1,3}", "?"])).map("".join)
    piece = st.one_of(repeated, st.sampled_from([r"\b", r"\B"]))  # anchors take no repeat
    seq = st.lists(piece, min_size=1, max_size=4).map("".join)
    return st.lists(seq, min_size=1, max_size=3).map("|".join)


def both(pattern: str, text: str, flags: int) -> tuple[list[tuple[int, int, bytes]], list[tuple[int, int, bytes]]]:
    data = text.encode("utf-8")
    searcher = BytesSearcher(pattern.encode(), flags)
    ours = [(s, e, raw) for s, e, raw, _ in searcher.finditer(data, 0, len(data))]
    theirs = [(m.start(), m.end(), m.group()) for m in re.compile(pattern.encode(), flags).finditer(data)]
    return ours, theirs


@settings(max_examples=300, deadline=None)
@given(pattern=patterns(), text=st.text(alphabet=ALPHABET, max_size=60), ignore_case=st.booleans())
def test_re2_path_agrees_with_re(pattern: str, text: str, ignore_case: bool) -> None:
    ours, theirs = both(pattern, text, re.IGNORECASE if ignore_case else 0)
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(lits=st.lists(literal, min_size=2, max_size=4), text=st.text(alphabet="abcAB-", max_size=80),
       ignore_case=st.booleans())
def test_split_literal_alternation_agrees_with_re(lits: list[str], text: str, ignore_case: bool) -> None:
    pattern = "|".join(map(re.escape, lits))
    assert BytesSearcher(pattern.encode()).engine.startswith("re2 x")
    ours, theirs = both(pattern, text, re.IGNORECASE if ignore_case else 0)
    assert ours == theirs


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@pytest.mark.parametrize(
    ("pattern", "engine"),
    [("ERROR", "re2"), (r"(?i)\b(error|fatal)\b", "re2"), ("ERROR|FATAL|Exception", "re2 x3 literals"), ("(?i)out of memory", "re2"),
     (r"(\w+)\1", "re"), (r"^ERROR", "re"), (r"a\sb", "re"), ("[[:alpha:]]", "re"), ("x*", "re"),
     ("é|ü", "re")],
)
def test_engine_choice(pattern: str, engine: str) -> None:
    assert BytesSearcher(pattern.encode(), 0).engine == engine


def test_overlapping_literals_follow_leftmost_first() -> None:
    ours, theirs = both("ab|abc|bcd", "abcd abc bcd", 0)
    assert ours == theirs == [(0, 2, b"ab"), (5, 7, b"ab"), (9, 12, b"bcd")]
