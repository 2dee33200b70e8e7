"""Reading a model's free-text answer as JSON, a yes/no, or one of a set of choices, tolerantly.

Models wrap JSON in fences and prose, say "Yes." or "no, because...", and name
a choice among others or only to deny it ("not critical, it's a warning").
These parsers read what was meant, and return nothing rather than guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["parse_json", "parse_bool", "parse_choice", "normalize_choice"]

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()


def parse_json(answer: str) -> tuple[bool, Any]:
    """``(True, value)`` for the first JSON value in an answer (bare, fenced or in prose), else ``(False, None)``."""
    text = answer.strip()
    try:
        return True, json.loads(text)
    except ValueError:
        pass
    for block in _FENCE.findall(text):
        try:
            return True, json.loads(block.strip())
        except ValueError:
            continue
    for m in re.finditer(r"[\[{]", text):
        try:
            value, _ = _DECODER.raw_decode(text, m.start())
        except ValueError:
            continue
        return True, value
    return False, None


_WORDS = re.compile(r"[a-z0-9]+")
_YES_FIRST = {"yes", "y", "true", "correct", "affirmative", "yep", "yeah", "yup", "1"}
_NO_FIRST = {"no", "n", "false", "incorrect", "negative", "nope", "nah", "0"}
_YES_ANY = {"yes", "true"}
_NO_ANY = {"no", "false"}


def parse_bool(answer: str) -> bool | None:
    """Read a yes/no answer; ``None`` when it is neither (or both)."""
    words = _WORDS.findall(answer.lower())
    if not words:
        return None
    if words[0] in _YES_FIRST:
        return True
    if words[0] in _NO_FIRST:
        return False
    yes = any(w in _YES_ANY for w in words)
    no = any(w in _NO_ANY for w in words)
    return yes if yes != no else None


_NEGATIONS = {"not", "no", "never", "isn", "isnt", "aren", "arent", "wasn", "wasnt", "neither", "nor", "without",
              "than", "instead", "except", "non"}
_CLAUSE_BREAK = re.compile(r"[.;:!?()\[\]\n,]|\bbut\b")


def normalize_choice(text: str) -> str:
    """The words of a choice, lower-cased: what two choices must not share."""
    return " ".join(_WORDS.findall(text.lower()))


def parse_choice(answer: str, choices: Sequence[str]) -> str | None:
    """The one choice an answer names without negating it, or ``None``."""
    whole = normalize_choice(answer)
    keys = {normalize_choice(c): c for c in choices}
    if whole in keys:
        return keys[whole]
    lowered = answer.lower()
    taken: list[tuple[int, int]] = []
    named: set[str] = set()
    for key in sorted(keys, key=len, reverse=True):  # longest first: "very high" before "high"
        pattern = r"(?<![a-z0-9])" + r"[\W_]+".join(map(re.escape, key.split())) + r"(?![a-z0-9])"
        for m in re.finditer(pattern, lowered):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            before = _CLAUSE_BREAK.split(lowered[: m.start()])[-1]
            if not _NEGATIONS.intersection(_WORDS.findall(before)[-3:]):
                named.add(keys[key])
    return named.pop() if len(named) == 1 else None
