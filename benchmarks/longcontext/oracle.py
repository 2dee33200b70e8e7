"""A deterministic stand-in for the model, as a loopback responder: it reads only what it is sent.

``LoopbackServer(responder=Oracle(instance_labels()))`` answers the requests
the generic tasks and the baselines send (the user message is
``"{prompt}{suffix}\\n\\nExcerpt:\\n<<<\\n{chunk}\\n>>>"``, see ``rlm.subcalls``):

- classification: a prompt with a ``Labels: [...]`` line over an excerpt of
  numbered records ``[1] ...``; it answers ``{"labels": {"1": "<label>", ...}}``
  for the records whose question it finds in its side table (question text ->
  hidden label: what a model would know about a question), and omits the rest;
- a question (``Question: ...`` line): the S-NIAH needle asked for, when the
  excerpt holds it, with the exact sentence as the quote; an OOLONG-style
  question or a pairs question, computed from the records in the excerpt.

Like a hosted model it reports usage (``prompt_tokens`` about the request's
bytes / 4, ``completion_tokens`` of its answer), cuts the answer at the
request's ``max_completion_tokens`` / ``max_tokens``, and refuses a request
above its context window with HTTP 400 ``context_length_exceeded``. With
``error_rate > 0`` it makes seeded, repeatable mistakes: a wrong label for a
record, a wrong needle value (the quote stays the excerpt's true sentence).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rlm.loopback import Fault, Reply

from .pool import TREC_LABELS
from .questions import (
    DATE_FORMAT,
    answer_oolong,
    pairs_for,
    parse_oolong_question,
    parse_pairs_question,
)

__all__ = ["DEFAULT_WINDOW_TOKENS", "EXCERPT_MARKER", "Oracle", "estimate_tokens"]

DEFAULT_WINDOW_TOKENS = 272_000
EXCERPT_MARKER = "\n\nExcerpt:\n<<<\n"
_EXCERPT_END = "\n>>>"
_NUMBERED = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
_RECORD = re.compile(r"^Date: (.+?) \|\| User: (\S+) \|\| Instance: (.+)$", re.MULTILINE)
_NEEDLE_QUESTION = re.compile(r"special magic (number|word|uuid) for (\S+) mentioned")


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """About a token per 4 bytes of content, plus the chat framing."""
    size = sum(len(str(m.get("content", "")).encode("utf-8")) for m in messages)
    return math.ceil(size / 4) + 4 * len(messages) + 3


def _unit(seed: int, *parts: str) -> float:
    """A repeatable number in [0, 1) for one decision."""
    digest = hashlib.blake2b("\x1f".join([str(seed), *parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Oracle:
    """The responder. ``instance_labels`` maps a question text to its label (the generator's side table)."""

    def __init__(self, instance_labels: Mapping[str, str] | None = None, *, labels: Sequence[str] = TREC_LABELS,
                 window_tokens: int = DEFAULT_WINDOW_TOKENS, error_rate: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1 (got {error_rate}).")
        self.instance_labels = dict(instance_labels or {})
        self.labels = list(labels)
        self.window_tokens = window_tokens
        self.error_rate = error_rate
        self.seed = seed

    # -- the HTTP side ---------------------------------------------------------------
    def __call__(self, body: dict[str, Any]) -> Reply | Fault:
        messages = body.get("messages") or []
        prompt_tokens = estimate_tokens(messages)
        if prompt_tokens > self.window_tokens:
            return Fault("status", status=400, code="context_length_exceeded",
                         message=f"This model's maximum context length is {self.window_tokens} tokens, "
                                 f"but the request has {prompt_tokens} tokens. Send less text.")
        user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        instruction, excerpt = split_user_message(user)
        text = json.dumps(self.answer(instruction, excerpt), ensure_ascii=False)
        text, completion_tokens = _cut(text, _output_cap(body))
        return Reply(text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    # -- reading -----------------------------------------------------------------------
    def answer(self, instruction: str, excerpt: str | None) -> Any:
        """The answer to one request, as JSON-ready data."""
        excerpt = excerpt or ""
        labels = _prompt_labels(instruction)
        if labels is not None:
            return {"labels": self._classify(excerpt, labels)}
        question = _question(instruction)
        if question is None:
            return {"answer": None}
        needle = _NEEDLE_QUESTION.search(question)
        if needle:
            return self._needle(needle.group(1), needle.group(2), excerpt)
        oolong = parse_oolong_question(question)
        if oolong is not None:
            return {"answer": answer_oolong(oolong, self._records(excerpt), self.labels)}
        cond = parse_pairs_question(question)
        if cond is not None:
            users: dict[str, Counter[str]] = {}
            for user, _date, label in self._records(excerpt):
                if label is not None:
                    users.setdefault(user, Counter())[label] += 1
            return {"answer": sorted([list(p) for p in pairs_for(cond, users)])}
        return {"answer": None}

    def label_of(self, record: str) -> str | None:
        """The label this oracle gives a record (None when its question is unknown); errors are seeded."""
        m = re.search(r"Instance: (.+)$", record.strip())
        true = self.instance_labels.get((m.group(1) if m else record).strip())
        if true is None:
            return None
        if self.error_rate and _unit(self.seed, "label", record.strip()) < self.error_rate:
            others = [label for label in self.labels if label != true]
            return others[int(_unit(self.seed, "wrong", record.strip()) * len(others))]
        return true

    def _classify(self, excerpt: str, allowed: list[str]) -> dict[str, str]:
        out = {}
        for m in _NUMBERED.finditer(excerpt):
            label = self.label_of(m.group(2))
            if label is not None and label in allowed:
                out[m.group(1)] = label
        return out

    def _records(self, excerpt: str) -> list[tuple[str, dt.date, str | None]]:
        out = []
        for m in _RECORD.finditer(excerpt):
            try:
                date = dt.datetime.strptime(m.group(1).strip(), DATE_FORMAT).date()
            except ValueError:
                continue
            out.append((m.group(2), date, self.label_of(m.group(0))))
        return out

    def _needle(self, vtype: str, key: str, excerpt: str) -> dict[str, Any]:
        rx = re.compile(rf"One of the special magic {vtype}s for {re.escape(key)} is: (\S+?)\.(?=\s|$)")
        m = rx.search(excerpt)
        if m is None:
            return {"answer": None, "quote": ""}
        value = m.group(1)
        if self.error_rate and _unit(self.seed, "value", key) < self.error_rate:
            value = _corrupt(value)
        return {"answer": value, "quote": m.group(0)}


def split_user_message(content: str) -> tuple[str, str | None]:
    """(instruction, excerpt) of a subcall's user message; excerpt None when there is none."""
    i = content.find(EXCERPT_MARKER)
    if i < 0:
        return content, None
    excerpt = content[i + len(EXCERPT_MARKER):]
    excerpt = excerpt.removesuffix(_EXCERPT_END)
    return content[:i], excerpt


def _prompt_labels(instruction: str) -> list[str] | None:
    m = re.search(r"^Labels: (\[.*\])$", instruction, re.MULTILINE)
    if not m:
        return None
    try:
        labels = json.loads(m.group(1))
    except ValueError:
        return None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def _question(instruction: str) -> str | None:
    m = re.search(r"^Question: (.+)$", instruction, re.MULTILINE)
    return m.group(1).strip() if m else None


def _corrupt(value: str) -> str:
    if value[-1].isdigit():
        return value[:-1] + str((int(value[-1]) + 1) % 10)
    flipped = value[::-1]
    return flipped if flipped != value else value + "x"


def _output_cap(body: Mapping[str, Any]) -> int | None:
    caps = [v for v in (body.get("max_completion_tokens"), body.get("max_tokens")) if isinstance(v, int) and v > 0]
    return min(caps) if caps else None


def _cut(text: str, cap: int | None) -> tuple[str, int]:
    """The answer as the model would send it under an output cap of ``cap`` tokens (4 bytes each)."""
    data = text.encode("utf-8")
    tokens = max(1, math.ceil(len(data) / 4))
    if cap is None or tokens <= cap:
        return text, tokens
    return data[: cap * 4].decode("utf-8", errors="ignore"), cap
