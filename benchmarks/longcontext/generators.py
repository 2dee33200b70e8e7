"""Seeded inputs for the long-context benchmarks, written streaming to files.

Sizes are in tokens, approximated as UTF-8 bytes / 4 (a file for ``2**exp``
tokens holds about ``4 * 2**exp`` bytes; 2^24 tokens is 64 MiB). Each input
``<name>.txt`` gets ``<name>.gold.json`` (the answers, computed in code while
writing, never in the text) and ``<name>.manifest.json`` (benchmark, size,
seed, SHA-256 of the input and of the gold file). The same seed and size
always give the same bytes.

- S-NIAH: essay-like filler with one needle sentence
  ``One of the special magic {type} for {key} is: {value}.`` at a seeded depth.
  The filler vocabulary has neither "special" nor "magic", so no accidental needle.
- OOLONG-style: one record per line ``Date: ... || User: ... || Instance: <question>``;
  each question's TREC coarse label is hidden (see :mod:`.pool`); ten questions
  count labels, compare them, or ask about one user or a date range.
- Pairs-style: the same records, each user asking questions of only a few
  labels, and three pair conditions answered by sets of user-id pairs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .pool import TREC_LABELS, instance_pool
from .questions import (
    COMPARE_ANSWERS,
    DATE_FORMAT,
    condition_grammar,
    oolong_text,
    pairs_for,
    pairs_question,
)

__all__ = [
    "GENERATORS",
    "GENERATOR_VERSION",
    "TOKEN_BYTES",
    "Generated",
    "generate_oolong",
    "generate_pairs",
    "generate_sniah",
    "load",
    "target_bytes",
]

TOKEN_BYTES = 4
GENERATOR_VERSION = 1
_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True)
class Generated:
    """One generated input: its file, its manifest and its gold answers (read from the files on disk)."""

    path: Path
    manifest_path: Path
    gold_path: Path
    manifest: dict[str, Any]
    gold: dict[str, Any]


def target_bytes(exp: int) -> int:
    """Bytes of an input of ``2**exp`` tokens (tokens approximated as bytes / 4)."""
    if not 1 <= exp <= 30:
        raise ValueError(f"exp must be between 1 and 30 (got {exp}).")
    return TOKEN_BYTES << exp


class _Sink:
    """Streams bytes to a temporary file, hashing and counting as it goes; renamed into place on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".part")
        self.file: BinaryIO = open(self.tmp, "wb")  # noqa: SIM115 (open until close(), across many writes)
        self.sha = hashlib.sha256()
        self.size = 0
        self._buf: list[bytes] = []
        self._buffered = 0

    def write(self, data: bytes) -> None:
        self._buf.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        block = b"".join(self._buf)
        self.sha.update(block)
        self.file.write(block)
        self._buf, self._buffered = [], 0

    def close(self) -> str:
        self._flush()
        self.file.close()
        self.tmp.replace(self.path)
        return self.sha.hexdigest()


def _finish(directory: Path, name: str, sink: _Sink, manifest: dict[str, Any], gold: dict[str, Any]) -> Generated:
    sha = sink.close()
    gold_path = directory / f"{name}.gold.json"
    gold_bytes = json.dumps(gold, indent=1, sort_keys=True).encode()
    gold_path.write_bytes(gold_bytes)
    manifest = {
        **manifest,
        "file": sink.path.name,
        "bytes": sink.size,
        "approx_tokens": sink.size // TOKEN_BYTES,
        "token_estimate": "UTF-8 bytes / 4",
        "sha256": sha,
        "gold_file": gold_path.name,
        "gold_sha256": hashlib.sha256(gold_bytes).hexdigest(),
        "generator_version": GENERATOR_VERSION,
    }
    manifest_path = directory / f"{name}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return Generated(sink.path, manifest_path, gold_path, manifest, gold)


def load(manifest_path: Path) -> Generated:
    """A generated input from its manifest (the gold file is checked against the manifest's hash)."""
    manifest = json.loads(manifest_path.read_text())
    gold_path = manifest_path.with_name(manifest["gold_file"])
    gold_bytes = gold_path.read_bytes()
    if hashlib.sha256(gold_bytes).hexdigest() != manifest["gold_sha256"]:
        raise ValueError(f"{gold_path} does not match its manifest")
    return Generated(manifest_path.with_name(manifest["file"]), manifest_path, gold_path, manifest,
                     json.loads(gold_bytes))


# -- S-NIAH ------------------------------------------------------------------------

_SUBJECTS = ["The founder", "A good essay", "Every startup", "The first draft", "An honest critic", "The market",
             "Most investors", "A careful reader", "The old café", "Our naïve plan", "The committee", "A small team",
             "The best programmers", "A new city", "The museum in Zürich", "Her résumé", "The façade of the bank",
             "A patient teacher", "The library", "Every good question", "The weather in São Paulo", "My fiancée"]
_VERBS = ["changes", "rewards", "ignores", "depends on", "grows out of", "shapes", "hides", "explains",
          "questions", "borrows from", "outlasts", "reflects", "survives", "improves", "tests", "undervalues"]
_OBJECTS = ["the habits of its readers", "a slow afternoon", "the price of bread", "every rule of thumb",
            "the long view", "what people actually want", "the quiet work of revision", "a crowded room",
            "the last chapter", "an unfinished map", "the taste of strong coffee", "a year of small experiments",
            "the distance between two ideas", "the noise of the city", "an argument nobody won",
            "the shape of the river", "a letter never sent", "the cost of waiting", "the view from the hill"]
_TAILS = ["", "", "", " more than anyone expects", " in ways that are hard to measure", " over the years",
          " — at least at first", " when nobody is watching", " without much ceremony", " almost by accident",
          " for better or worse", " long after the fact", " in the end"]
_OPENERS = ["", "", "", "In practice, ", "Oddly enough, ", "For a while, ", "Looking back, ", "Usually, ",
            "Sometimes ", "Of course, ", "In 1998, ", "By the spring of 2007, ", "Even so, "]
_KEY_ADJECTIVES = ["amber", "brisk", "coral", "dusky", "elfin", "fervid", "gilded", "hazel", "ivory", "jaunty",
                   "kindly", "lucid", "mellow", "nimble", "opal", "placid", "quaint", "russet", "sable", "tawny",
                   "umber", "vivid", "wistful", "zesty"]
_KEY_NOUNS = ["falcon", "harbor", "lantern", "meadow", "orchid", "pebble", "quarry", "ribbon", "saddle", "thistle",
              "upland", "valley", "willow", "yarrow", "zephyr", "beacon", "cinder", "dahlia", "ember", "fjord"]
_VALUE_WORDS = ["anchor", "bramble", "cobalt", "drizzle", "falafel", "gazebo", "hammock", "igloo", "jigsaw",
                "kettle", "lozenge", "mosaic", "nutmeg", "origami", "pretzel", "quiver", "rhubarb", "sorbet",
                "trellis", "ukulele", "velvet", "walrus", "xylophone", "yogurt"]
_FORBIDDEN = ("special", "magic")


def _filler_sentences(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        opener, subject = rng.choice(_OPENERS), rng.choice(_SUBJECTS)
        if opener:
            subject = subject[0].lower() + subject[1:]
        out.append(f"{opener}{subject} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}.")
    text = " ".join(out).lower()
    if any(word in text for word in _FORBIDDEN):
        raise AssertionError("filler vocabulary contains a needle word")
    return out


def _paragraph(rng: random.Random, sentences: list[str]) -> str:
    return " ".join(rng.choice(sentences) for _ in range(rng.randint(3, 9)))


def generate_sniah(directory: Path, exp: int, seed: int) -> Generated:
    """An S-NIAH input of ``2**exp`` tokens: filler plus one needle; gold is the needle's value."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"s-niah:{exp}:{seed}")
    sentences = _filler_sentences(rng, 3000)
    paragraphs = [(_paragraph(rng, sentences) + "\n").encode() for _ in range(600)]
    vtype = rng.choice(["numbers", "words", "uuids"])
    key = f"{rng.choice(_KEY_ADJECTIVES)}-{rng.choice(_KEY_NOUNS)}"
    if vtype == "numbers":
        value = str(rng.randrange(1_000_000, 10_000_000))
    elif vtype == "words":
        value = rng.choice(_VALUE_WORDS)
    else:
        value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    needle = f"One of the special magic {vtype} for {key} is: {value}."
    question = f"What is the special magic {vtype[:-1]} for {key} mentioned in the provided text?"
    depth = rng.random()
    total = target_bytes(exp)
    at = int(depth * total)

    name = f"s-niah-2p{exp}-s{seed}"
    sink = _Sink(directory / f"{name}.txt")
    needle_span: list[int] = []
    picks = iter(lambda: paragraphs[rng.randrange(len(paragraphs))], None)
    while sink.size < total:
        if not needle_span and sink.size >= at:
            before = " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 4))) + " "
            after = " " + " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 4))) + "\n"
            sink.write(before.encode())
            needle_span = [sink.size, sink.size + len(needle.encode())]
            sink.write(needle.encode())
            sink.write(after.encode())
            continue
        sink.write(next(picks))
    if not needle_span:  # depth so close to 1 that the filler ran out first
        needle_span = [sink.size, sink.size + len(needle.encode())]
        sink.write(needle.encode() + b"\n")
    gold = {"benchmark": "s-niah", "question": question, "answer": value, "key": key, "value_type": vtype,
            "needle": needle, "needle_span": needle_span, "depth": round(depth, 6)}
    return _finish(directory, name, sink, {"benchmark": "s-niah", "exp": exp, "seed": seed}, gold)


# -- OOLONG-style and pairs-style records ----------------------------------------------

_FIRST_DAY = dt.date(2022, 1, 1)
_DAYS = [(_FIRST_DAY + dt.timedelta(days=i)) for i in range(3 * 365 + 1)]
_DAY_TEXT = [d.strftime(DATE_FORMAT) for d in _DAYS]
_LABEL_WEIGHTS = [0.28, 0.22, 0.17, 0.14, 0.11, 0.08]
_QUESTIONS_PER_INPUT = 10
_CONDITIONS_PER_INPUT = 3


def _pool_lists() -> list[list[str]]:
    pool = instance_pool()
    lists = [list(pool[label]) for label in TREC_LABELS]
    if not all(q.isascii() for qs in lists for q in qs):
        raise AssertionError("the instance pool must be ASCII (record offsets are then chars and bytes alike)")
    return lists


def _avg_record_bytes(lists: list[list[str]]) -> float:
    mean_q = sum(len(q) for qs in lists for q in qs) / sum(len(qs) for qs in lists)
    return len("Date: Mar 14, 2023 || User: 12345 || Instance: \n") + mean_q


def _records(rng: random.Random, total: int, users: list[str], label_of_user: Any) -> Iterator[tuple[int, int, int, bytes]]:
    """(user index, day index, label index, line bytes) until ``total`` bytes are reached."""
    lists = _pool_lists()
    written = 0
    n_users, n_days = len(users), len(_DAYS)
    while written < total:
        for _ in range(4096):
            u = rng.randrange(n_users)
            d = rng.randrange(n_days)
            label = label_of_user(u)
            qs = lists[label]
            line = f"Date: {_DAY_TEXT[d]} || User: {users[u]} || Instance: {qs[rng.randrange(len(qs))]}\n".encode()
            written += len(line)
            yield u, d, label, line
            if written >= total:
                return


def _user_ids(rng: random.Random, n: int) -> list[str]:
    return [str(u) for u in rng.sample(range(10_000, 100_000), n)]


def generate_oolong(directory: Path, exp: int, seed: int) -> Generated:
    """An OOLONG-style input of ``2**exp`` tokens with ten questions and their gold answers."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"oolong:{exp}:{seed}")
    total = target_bytes(exp)
    n_users = max(8, int(total / _avg_record_bytes(_pool_lists()) / 16))
    users = _user_ids(rng, n_users)
    weights = _LABEL_WEIGHTS[:]
    rng.shuffle(weights)
    cum = [sum(weights[: i + 1]) for i in range(len(weights))]
    after_day = rng.randrange(len(_DAYS) // 4, 3 * len(_DAYS) // 4)

    k = len(TREC_LABELS)
    counts = [0] * k
    per_user = [[0] * k for _ in users]
    after = [0] * k

    def label_of(_: int) -> int:
        r = rng.random() * cum[-1]
        return next(i for i, c in enumerate(cum) if r < c)

    name = f"oolong-2p{exp}-s{seed}"
    sink = _Sink(directory / f"{name}.txt")
    n = 0
    for u, d, label, line in _records(rng, total, users, label_of):
        sink.write(line)
        n += 1
        counts[label] += 1
        per_user[u][label] += 1
        if d > after_day:
            after[label] += 1

    questions = _oolong_questions(rng, users, counts, per_user, after, _DAYS[after_day])
    gold = {"benchmark": "oolong", "labels": TREC_LABELS, "records": n, "users": n_users,
            "label_counts": dict(zip(TREC_LABELS, counts)), "questions": questions}
    return _finish(directory, name, sink, {"benchmark": "oolong", "exp": exp, "seed": seed}, gold)


def _unique_extreme(values: list[int], *, least: bool = False) -> int | None:
    best = min(values) if least else max(values)
    return values.index(best) if values.count(best) == 1 else None


def _oolong_questions(rng: random.Random, users: list[str], counts: list[int], per_user: list[list[int]],
                      after: list[int], after_day: dt.date) -> list[dict[str, Any]]:
    """Ten questions with gold answers computed from the counters kept while writing."""
    labels = TREC_LABELS
    out: list[dict[str, Any]] = []

    def add(q: dict[str, Any], answer: Any) -> None:
        q["answer"] = answer
        q["text"] = oolong_text(q)
        out.append(q)

    for i in rng.sample(range(len(labels)), 2):
        add({"kind": "count", "label": labels[i]}, counts[i])
    for kind, least in (("most", False), ("least", True)):
        top = _unique_extreme(counts, least=least)
        if top is not None:
            add({"kind": kind}, labels[top])
    for _ in range(2):
        a, b = rng.sample(range(len(labels)), 2)
        answer = COMPARE_ANSWERS[0] if counts[a] > counts[b] else COMPARE_ANSWERS[1] if counts[a] < counts[b] \
            else COMPARE_ANSWERS[2]
        add({"kind": "compare", "a": labels[a], "b": labels[b]}, answer)
    active = sorted(range(len(users)), key=lambda u: (-sum(per_user[u]), users[u]))[: max(1, len(users) // 2)]
    for u in rng.sample(active, min(2, len(active))):
        i = rng.randrange(len(labels))
        add({"kind": "user_count", "user": users[u], "label": labels[i]}, per_user[u][i])
    for u in rng.sample(active, len(active)):
        top = _unique_extreme(per_user[u])
        if top is not None:
            add({"kind": "user_most", "user": users[u]}, labels[top])
            break
    i = rng.randrange(len(labels))
    add({"kind": "date_count", "after": after_day.isoformat(), "label": labels[i]}, after[i])
    while len(out) < _QUESTIONS_PER_INPUT:  # a tie dropped a question: count another label instead
        i = rng.randrange(len(labels))
        add({"kind": "count", "label": labels[i]}, counts[i])
    return out


def generate_pairs(directory: Path, exp: int, seed: int) -> Generated:
    """A pairs-style input of ``2**exp`` tokens with three pair conditions and their gold pairs.

    Users number ``records / 10`` (at least 8, at most 300, so the answer stays a
    few tens of thousands of pairs); each asks questions of one to four labels only.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"pairs:{exp}:{seed}")
    total = target_bytes(exp)
    n_users = min(300, max(8, int(total / _avg_record_bytes(_pool_lists()) / 10)))
    users = _user_ids(rng, n_users)
    k = len(TREC_LABELS)
    subsets = [rng.sample(range(k), rng.choice([1, 2, 2, 3, 3, 4])) for _ in users]
    per_user = [[0] * k for _ in users]

    def label_of(u: int) -> int:
        s = subsets[u]
        return s[rng.randrange(len(s))]

    name = f"pairs-2p{exp}-s{seed}"
    sink = _Sink(directory / f"{name}.txt")
    n = 0
    for u, _d, label, _line in _records(rng, total, users, label_of):
        sink.write(_line)
        n += 1
        per_user[u][label] += 1

    seen = {users[u]: {TREC_LABELS[i]: c for i, c in enumerate(per_user[u]) if c} for u in range(n_users)
            if sum(per_user[u])}
    conditions = []
    families = rng.sample(range(len(_FAMILIES)), _CONDITIONS_PER_INPUT)
    for family in families:
        for attempt in range(20):
            cond = _FAMILIES[family](rng)
            pairs = pairs_for(cond, seen)
            if pairs or attempt == 19:
                break
        conditions.append({"condition": cond, "grammar": condition_grammar(cond), "text": pairs_question(cond),
                           "answer": sorted([list(p) for p in pairs])})
    gold = {"benchmark": "pairs", "labels": TREC_LABELS, "records": n, "users": len(seen),
            "user_label_counts": seen, "questions": conditions}
    return _finish(directory, name, sink, {"benchmark": "pairs", "exp": exp, "seed": seed}, gold)


def _labels(rng: random.Random, n: int) -> list[str]:
    return rng.sample(TREC_LABELS, n)


def _atom(op: str, labels: list[str], n: int = 1) -> dict[str, Any]:
    return {"op": op, "n": n, "labels": labels}


def _both_have_either(rng: random.Random) -> dict[str, Any]:
    return {"form": "both", "preds": [[_atom("has", _labels(rng, 2))]]}


def _one_has_other_has(rng: random.Random) -> dict[str, Any]:
    a, b = _labels(rng, 2)
    return {"form": "one_other", "preds": [[_atom("has", [a])], [_atom("has", [b])]]}


def _both_lack(rng: random.Random) -> dict[str, Any]:
    return {"form": "both", "preds": [[_atom("lacks", _labels(rng, 1))]]}


def _both_only(rng: random.Random) -> dict[str, Any]:
    return {"form": "both", "preds": [[_atom("only", _labels(rng, 3))]]}


def _both_at_least(rng: random.Random) -> dict[str, Any]:
    return {"form": "both", "preds": [[_atom("at_least", _labels(rng, 1), rng.choice([2, 3]))]]}


def _one_has_not_other_has(rng: random.Random) -> dict[str, Any]:
    a, b = _labels(rng, 2)
    return {"form": "one_other", "preds": [[_atom("has", [a]), _atom("lacks", [b])], [_atom("has", [b])]]}


_FAMILIES = [_both_have_either, _one_has_other_has, _both_lack, _both_only, _both_at_least, _one_has_not_other_has]

GENERATORS = {"s-niah": generate_sniah, "oolong": generate_oolong, "pairs": generate_pairs}
