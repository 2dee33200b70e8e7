"""Questions, pair conditions and scoring for the OOLONG-style and pairs-style benchmarks.

A question is a plain dict with a ``kind`` and its parameters, the English
``text`` a model is asked, and the gold ``answer``. The same module renders
questions to English, reads the English back (the oracle does, as a model
would), answers a question from labelled records, and scores an answer:
numbers score ``0.75 ** |error|``, everything else exact match, pairs F1.

A pair condition is a dict ``{"form": "both" | "one_other", "preds": [pred, ...]}``
where a pred is a list of atoms ``{"op": "has" | "lacks" | "only" | "at_least",
"n": int, "labels": [...]}`` that must all hold for a user. It renders to the
grammar ``rlm.tasks.generic.find_pairs`` reads (``"both:has:a|b"``,
``"one:has:a;other:lacks:b"``, ``"both:at_least:2:a&lacks:b"``) and to English.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "COMPARE_ANSWERS",
    "DATE_FORMAT",
    "NUMERIC_KINDS",
    "answer_oolong",
    "condition_grammar",
    "condition_text",
    "oolong_text",
    "pair_f1",
    "pairs_for",
    "pairs_question",
    "parse_oolong_question",
    "parse_pairs_question",
    "score_oolong",
    "user_satisfies",
]

DATE_FORMAT = "%b %d, %Y"
NUMERIC_KINDS = {"count", "user_count", "date_count"}
COMPARE_ANSWERS = ("more common than", "less common than", "same frequency as")


# -- OOLONG-style questions ------------------------------------------------------

def oolong_text(q: Mapping[str, Any]) -> str:
    """The English question for a question dict."""
    kind = q["kind"]
    if kind == "count":
        return f"How many instances should be classified as label '{q['label']}'?"
    if kind == "most":
        return "Which label is the most common among all the instances?"
    if kind == "least":
        return "Which label is the least common among all the instances?"
    if kind == "compare":
        return (f"Is label '{q['a']}' more common than, less common than, or the same frequency as "
                f"label '{q['b']}'?")
    if kind == "user_count":
        return f"For the user with ID {q['user']}, how many of their instances should be classified as label '{q['label']}'?"
    if kind == "user_most":
        return f"For the user with ID {q['user']}, which label is the most common among their instances?"
    if kind == "date_count":
        after = dt.date.fromisoformat(q["after"]).strftime(DATE_FORMAT)
        return f"Among the instances dated after {after}, how many should be classified as label '{q['label']}'?"
    raise ValueError(f"unknown question kind {kind!r}")


_OOLONG_PATTERNS = [
    ("count", re.compile(r"^How many instances should be classified as label '(?P<label>[^']+)'\?$")),
    ("most", re.compile(r"^Which label is the most common among all the instances\?$")),
    ("least", re.compile(r"^Which label is the least common among all the instances\?$")),
    ("compare", re.compile(r"^Is label '(?P<a>[^']+)' more common than, less common than, or the same frequency as "
                           r"label '(?P<b>[^']+)'\?$")),
    ("user_count", re.compile(r"^For the user with ID (?P<user>\S+), how many of their instances should be "
                              r"classified as label '(?P<label>[^']+)'\?$")),
    ("user_most", re.compile(r"^For the user with ID (?P<user>\S+), which label is the most common among their "
                             r"instances\?$")),
    ("date_count", re.compile(r"^Among the instances dated after (?P<after>[A-Z][a-z]{2} \d{2}, \d{4}), how many "
                              r"should be classified as label '(?P<label>[^']+)'\?$")),
]


def parse_oolong_question(text: str) -> dict[str, Any] | None:
    """Read an English question back into its dict (no answer), or None."""
    for kind, rx in _OOLONG_PATTERNS:
        m = rx.match(text.strip())
        if m:
            q: dict[str, Any] = {"kind": kind, **m.groupdict()}
            if "after" in q:
                q["after"] = dt.datetime.strptime(q["after"], DATE_FORMAT).date().isoformat()
            return q
    return None


def _mode(counts: Counter[str], labels: Sequence[str], *, least: bool = False) -> str | None:
    """The most (or least) common label; ties go to the earlier label. None when nothing was counted."""
    if not labels:
        return None
    pick = min if least else max
    best = pick(counts.get(label, 0) for label in labels)
    return next(label for label in labels if counts.get(label, 0) == best)


def answer_oolong(q: Mapping[str, Any], records: Iterable[tuple[str, dt.date, str | None]],
                  labels: Sequence[str]) -> Any:
    """Answer a question from ``(user, date, label)`` records (``label`` None when unknown: not counted)."""
    kind = q["kind"]
    counts: Counter[str] = Counter()
    after = dt.date.fromisoformat(q["after"]) if kind == "date_count" else None
    for user, date, label in records:
        if label is None:
            continue
        if kind in ("user_count", "user_most") and user != str(q["user"]):
            continue
        if after is not None and not date > after:
            continue
        counts[label] += 1
    if kind in NUMERIC_KINDS:
        return counts.get(q["label"], 0)
    if kind in ("most", "user_most"):
        return _mode(counts, labels)
    if kind == "least":
        return _mode(counts, labels, least=True)
    if kind == "compare":
        a, b = counts.get(q["a"], 0), counts.get(q["b"], 0)
        return COMPARE_ANSWERS[0] if a > b else COMPARE_ANSWERS[1] if a < b else COMPARE_ANSWERS[2]
    raise ValueError(f"unknown question kind {kind!r}")


def _norm(value: Any) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", str(value).lower()))


def score_oolong(q: Mapping[str, Any], predicted: Any) -> float:
    """OOLONG scoring: numbers ``0.75 ** |error|`` (0 when not a number), the rest exact match."""
    if q["kind"] in NUMERIC_KINDS:
        try:
            value = float(str(predicted).strip())
        except (TypeError, ValueError):
            return 0.0
        return 0.75 ** abs(value - float(q["answer"]))
    return 1.0 if _norm(predicted) == _norm(q["answer"]) and predicted is not None else 0.0


# -- pair conditions ---------------------------------------------------------------

def _atom_grammar(atom: Mapping[str, Any]) -> str:
    labels = "|".join(atom["labels"])
    return f"at_least:{atom['n']}:{labels}" if atom["op"] == "at_least" else f"{atom['op']}:{labels}"


def condition_grammar(cond: Mapping[str, Any]) -> str:
    """The condition in the grammar ``rlm.tasks.generic.find_pairs`` reads."""
    preds = ["&".join(_atom_grammar(a) for a in pred) for pred in cond["preds"]]
    if cond["form"] == "both":
        return f"both:{preds[0]}"
    return f"one:{preds[0]};other:{preds[1]}"


def _ors(labels: Sequence[str]) -> str:
    return " or ".join(f"'{label}'" for label in labels)


def _atom_text(atom: Mapping[str, Any]) -> str:
    op, labels = atom["op"], _ors(atom["labels"])
    if op == "has":
        return f"has at least one instance labelled {labels}"
    if op == "lacks":
        return f"has no instance labelled {labels}"
    if op == "only":
        return f"has only instances labelled {labels}"
    if op == "at_least":
        return f"has at least {atom['n']} instances labelled {labels}"
    raise ValueError(f"unknown condition op {op!r}")


def condition_text(cond: Mapping[str, Any]) -> str:
    preds = [" and ".join(_atom_text(a) for a in pred) for pred in cond["preds"]]
    if cond["form"] == "both":
        return f"each of the two users {preds[0]}"
    return f"one user {preds[0]} and the other user {preds[1]}"


def pairs_question(cond: Mapping[str, Any]) -> str:
    return f"List every pair of user IDs (each pair once, lower ID first) where {condition_text(cond)}."


_ATOM_PATTERNS = [
    ("has", re.compile(r"^has at least one instance labelled (?P<labels>.+)$")),
    ("lacks", re.compile(r"^has no instance labelled (?P<labels>.+)$")),
    ("only", re.compile(r"^has only instances labelled (?P<labels>.+)$")),
    ("at_least", re.compile(r"^has at least (?P<n>\d+) instances labelled (?P<labels>.+)$")),
]


def _parse_pred(text: str) -> list[dict[str, Any]] | None:
    atoms = []
    for part in re.split(r" and (?=has )", text):
        for op, rx in _ATOM_PATTERNS:
            m = rx.match(part)
            if m:
                atoms.append({"op": op, "n": int(m.group("n")) if op == "at_least" else 1,
                              "labels": re.findall(r"'([^']+)'", m.group("labels"))})
                break
        else:
            return None
    return atoms


def parse_pairs_question(text: str) -> dict[str, Any] | None:
    """Read an English pairs question back into its condition, or None."""
    m = re.match(r"^List every pair of user IDs \(each pair once, lower ID first\) where (?P<cond>.+)\.$", text.strip())
    if not m:
        return None
    cond = m.group("cond")
    both = re.match(r"^each of the two users (.+)$", cond)
    if both:
        pred = _parse_pred(both.group(1))
        return None if pred is None else {"form": "both", "preds": [pred]}
    one = re.match(r"^one user (.+) and the other user (.+)$", cond)
    if one:
        first, second = _parse_pred(one.group(1)), _parse_pred(one.group(2))
        return None if first is None or second is None else {"form": "one_other", "preds": [first, second]}
    return None


def user_satisfies(pred: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> bool:
    """Whether a user whose records have these label counts meets every atom of ``pred``."""
    total = sum(counts.values())
    for atom in pred:
        n = sum(counts.get(label, 0) for label in atom["labels"])
        op = atom["op"]
        ok = (n >= 1 if op == "has" else n == 0 if op == "lacks" else
              (total > 0 and n == total) if op == "only" else n >= atom["n"])
        if not ok:
            return False
    return True


def _key(user: str) -> tuple[int, str]:
    return (int(user), user) if user.isdigit() else (1 << 62, user)


def pairs_for(cond: Mapping[str, Any], users: Mapping[str, Mapping[str, int]]) -> set[tuple[str, str]]:
    """Every unordered pair (lower id first) of distinct users meeting the condition."""
    if cond["form"] == "both":
        ok = sorted((u for u, c in users.items() if user_satisfies(cond["preds"][0], c)), key=_key)
        return set(itertools.combinations(ok, 2))
    first = [u for u, c in users.items() if user_satisfies(cond["preds"][0], c)]
    second = [u for u, c in users.items() if user_satisfies(cond["preds"][1], c)]
    pairs = set()
    for a in first:
        for b in second:
            if a != b:
                pairs.add((a, b) if _key(a) < _key(b) else (b, a))
    return pairs


def pair_f1(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]]) -> float:
    """F1 of two sets of unordered pairs (both empty scores 1)."""
    g = {tuple(sorted(map(str, p), key=_key)) for p in gold}
    p = {tuple(sorted(map(str, q), key=_key)) for q in predicted if len(q) == 2}
    if not g and not p:
        return 1.0
    tp = len(g & p)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(p), tp / len(g)
    return 2 * precision * recall / (precision + recall)
