"""Baselines on the same oracle: the whole context in one call, and regex only (no model at all).

Both are tasks for ``rlm.runtime.run_task``, so they are timed and billed the
same way as the generic tasks.

- Whole context: one subcall per question whose excerpt is the entire input
  (what "the base model alone" does). Above the oracle's window the request
  is refused with HTTP 400 ``context_length_exceeded``, as a hosted model
  refuses it; below, the oracle reads every record and answers correctly. It
  models no loss of accuracy with length ("context rot"), so it is an upper
  bound on a real base model below the window.
- Regex only: S-NIAH is solved by matching the needle's template. OOLONG and
  pairs labels cannot be known without a model, so each record gets a seeded
  uniform guess; users and dates are read exactly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from typing import Any

from rlm.context_access import Context, context_finditer, context_search, context_slice
from rlm.subcalls import parallel_map, parse_json, semantic_subcall

from .pool import TREC_LABELS
from .questions import DATE_FORMAT

__all__ = [
    "RECORD_PATTERN",
    "read_whole_context_answer",
    "records_regex",
    "sniah_regex",
    "whole_context",
    "whole_context_prompt",
]

RECORD_PATTERN = r"Date: ([^|\n]+?) \|\| User: (\S+) \|\| Instance: ([^\n]+)"
_MAX_RECORDS = 2_000_000


def whole_context_prompt(benchmark: str, question: str) -> str:
    """The instruction the whole-context baseline sends with the entire input as its excerpt."""
    if benchmark == "s-niah":
        return ("Read the whole document and answer the question.\n"
                f"Question: {question}\n"
                'Reply as {"answer": "<the answer>"}.')
    labels = ", ".join(f"'{label}'" for label in TREC_LABELS)
    shape = ('{"answer": [["<lower id>", "<higher id>"], ...]}' if benchmark == "pairs"
             else '{"answer": <a number, a label, or one of "more common than", "less common than", '
                  '"same frequency as">}')
    return ("The document lists records, one per line: Date || User || Instance, where each instance is a "
            f"question someone asked. Each instance has one of these labels: {labels}, by the kind of answer "
            "its question seeks; the labels are not written in the document.\n"
            f"Question: {question}\n"
            f"Reply as {shape}.")


def whole_context(context: Context, prompts: list[str]) -> dict[str, Any]:
    """The baseline: each prompt in one call whose excerpt is the entire context, in parallel.

    Returns ``answers``: per prompt, the raw answer text, or the error that call met (a refusal for length, ...).
    """
    everything = context_slice(context, 0, len(context))
    replies = parallel_map(lambda prompt: semantic_subcall(prompt, everything), prompts, max_workers=None,
                           return_exceptions=True)
    return {"answers": [{"raw": r} if isinstance(r, str) else {"error": f"{type(r).__name__}: {r}"}
                        for r in replies]}


def read_whole_context_answer(benchmark: str, raw: str) -> Any:
    """The answer in a whole-context reply; pairs are read one by one so a reply cut at the output cap still counts."""
    ok, value = parse_json(raw)
    if ok and isinstance(value, dict) and "answer" in value:
        return value["answer"]
    if benchmark == "pairs":
        return [list(p) for p in re.findall(r'\[\s*"?(\w+)"?\s*,\s*"?(\w+)"?\s*\]', raw)]
    return None


def sniah_regex(context: Context, question: str) -> dict[str, Any]:
    """S-NIAH by the needle's template alone: no model."""
    m = re.search(r"special magic (\w+) for (\S+) mentioned", question)
    if m is None:
        return {"answer": None, "span": None}
    pattern = rf"One of the special magic {m.group(1)}s for {re.escape(m.group(2))} is: (\S+?)\.(?=\s|$)"
    hits = context_search(context, pattern, max_hits=1)
    if not hits:
        return {"answer": None, "span": None}
    return {"answer": hits[0].groups[0], "span": [hits[0].start, hits[0].end]}


def _guess(seed: int, record: str) -> str:
    digest = hashlib.blake2b(f"{seed}\x1f{record}".encode(), digest_size=8).digest()
    return TREC_LABELS[int.from_bytes(digest, "big") % len(TREC_LABELS)]


def records_regex(context: Context, seed: int = 0) -> dict[str, Any]:
    """Every record's user and date by regex, each label a seeded uniform guess (no model can be asked)."""
    users: dict[str, Counter[str]] = {}
    records: list[list[str]] = []
    hits = context_finditer(context, RECORD_PATTERN)
    try:
        for m in hits:
            if len(records) >= _MAX_RECORDS:
                break
            date, user, _instance = m.groups
            label = _guess(seed, str(m.text))
            records.append([str(user), dt.datetime.strptime(str(date).strip(), DATE_FORMAT).date().isoformat(), label])
            users.setdefault(str(user), Counter())[label] += 1
    finally:
        hits.close()  # type: ignore[attr-defined]  # a generator, though annotated Iterator
    return {"records": records, "users": {u: dict(c) for u, c in users.items()}}
