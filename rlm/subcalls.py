"""Semantic subcalls: one instruction plus one bounded chunk, sent to the model at depth 1.

Each call goes through the official ``openai`` SDK under the current run's
guards (see :mod:`rlm.guards`), at temperature 0 by default, and is recorded
with the chunk's span so every answer can be traced to the text it read.
The typed variants read the model's free text into JSON, a bool or one of a
set of choices, in Python, tolerantly; they fall back to ``default``.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rlm.cache import CachedAnswer, ResponseCache, cache_key
from rlm.client import api_target, call_model, worst_case_cost
from rlm.context_access import Chunk, Context
from rlm.errors import ConfigError, ContextAccessError, GuardError, SubcallParseError
from rlm.guards import Run, SubcallRecord, check_request_tokens, current_run, init_guards, subcall_scope

__all__ = [
    "SYSTEM_PROMPT",
    "semantic_subcall",
    "semantic_subcall_json",
    "semantic_subcall_bool",
    "semantic_subcall_choice",
    "parallel_map",
    "parse_json",
    "parse_bool",
    "parse_choice",
]

SYSTEM_PROMPT = (
    "You read one excerpt of a larger document and follow one instruction about it. "
    "Use only the excerpt. Answer briefly and exactly in the form asked."
)
_JSON_SUFFIX = "\nRespond with a single JSON value only, no prose."
_BOOL_SUFFIX = "\nAnswer with exactly one word: yes or no."
_DRY_RUN_TEXT = "[dry-run: no model call was made]"

T = TypeVar("T")
R = TypeVar("R")


def _run() -> Run:
    """The current run; a script that calls a subcall outside run_task gets default guards."""
    return current_run() or init_guards()


def _messages(prompt: str, chunk: str, suffix: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"{prompt}{suffix}\n\nExcerpt:\n<<<\n{chunk}\n>>>"},
    ]


def _ask(kind: str, prompt: str, chunk: object, *, suffix: str = "", json_mode: bool = False,
         dry_answer: str = _DRY_RUN_TEXT) -> str:
    """Send one subcall (or replay it from the cache, or account for it in a dry run) and record it."""
    if isinstance(chunk, Context):
        raise ContextAccessError(
            "A whole context was passed to a subcall (rule 1: never load the context into a prompt). "
            "Pass a bounded chunk from context_slice / context_chunks / context_search."
        )
    run = _run()
    with subcall_scope(run):
        run.check_deadline()
        text = chunk if isinstance(chunk, str) else str(chunk)
        messages = _messages(str(prompt), text, suffix)
        try:
            counted = check_request_tokens(run, messages, json_mode)
            if run.config.dry_run:
                answer, fields = dry_answer, _dry_run(run, counted)
            else:
                answer, fields = _live(run, messages, counted, json_mode)
        except GuardError as exc:
            run.guard_tripped(exc)
            raise
        span = (chunk.start, chunk.end) if isinstance(chunk, Chunk) else (None, None)
        run.record_subcall(SubcallRecord(
            kind=kind, instruction=str(prompt), chunk_start=span[0], chunk_end=span[1],
            chunk_sha256=hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest(),
            model=str(run.config.model), answer=answer, counted_tokens=counted, **fields,
        ))
        return answer


def _cache(run: Run) -> ResponseCache | None:
    """The run's response cache, when it is on and the call is deterministic enough to replay."""
    cfg = run.config
    if not cfg.cache or (cfg.temperature > 0 and not cfg.cache_nonzero_temperature):
        return None
    with run._lock:
        if run._cache is None:
            run._cache = ResponseCache(cfg.cache_path)
        return run._cache if run._cache.enabled else None


def _live(run: Run, messages: list[dict[str, str]], counted: int, json_mode: bool) -> tuple[str, dict[str, Any]]:
    """The answer and its record fields, from the cache or from one model call."""
    cache = _cache(run)
    key = ""
    if cache is not None:
        cfg = run.config
        key = cache_key(base_url=api_target()[1], model=str(cfg.model), messages=messages,
                        temperature=cfg.temperature, max_output_tokens=cfg.max_output_tokens, json_mode=json_mode)
        hit = cache.get(key)
        if hit is not None:
            with run._lock:
                run.counters.cache_saved += hit.cost
            return hit.answer, {"input_tokens": hit.input_tokens, "output_tokens": hit.output_tokens,
                                "cached": True, "usage_reported": False}
        run.count(cache_misses=1)
    reply = call_model(run, messages, counted=counted, json_mode=json_mode)
    if cache is not None:
        cache.put(key, str(run.config.model),
                  CachedAnswer(reply.content, reply.input_tokens, reply.output_tokens, reply.cost))
    return reply.content, {
        "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens, "cost_usd": float(reply.cost),
        "reserved_usd": float(reply.reserved), "latency_seconds": round(reply.latency_seconds, 6),
        "retries": reply.retries, "usage_reported": reply.usage_reported,
    }


def _dry_run(run: Run, counted: int) -> dict[str, Any]:
    """Account for the call a real run would make: its worst-case cost, no HTTP."""
    worst = worst_case_cost(run, counted)
    with run._lock:
        run.counters.dry_run_worst_case += worst
    return {"reserved_usd": float(worst), "dry_run": True, "usage_reported": False}


# -- the four subcalls ---------------------------------------------------------

def semantic_subcall(prompt: str, chunk: str) -> str:
    """Ask the model one thing about one chunk; return its answer text."""
    return _ask("text", prompt, chunk)


def semantic_subcall_json(prompt: str, chunk: str, default: Any = None) -> Any:
    """Ask for JSON and parse it (code fences and surrounding prose are tolerated).

    Returns ``default`` when the answer holds no JSON; with no default, raises
    :class:`SubcallParseError`. JSON mode is requested where the server supports it.
    """
    dry = json.dumps(default) if default is not None else "{}"
    answer = _ask("json", prompt, chunk, suffix=_JSON_SUFFIX, json_mode=True, dry_answer=dry)
    ok, value = parse_json(answer)
    if ok:
        return value
    if default is not None:
        return copy.deepcopy(default)
    raise SubcallParseError(
        f"The model's answer was not JSON: {_excerpt(answer)}. Pass default=... to fall back instead of failing."
    )


def semantic_subcall_bool(prompt: str, chunk: str, default: bool = False) -> bool:
    """Ask a yes/no question; "Yes.", "no, because…", "TRUE" all read. Anything else is ``default``."""
    answer = _ask("bool", prompt, chunk, suffix=_BOOL_SUFFIX, dry_answer="yes" if default else "no")
    value = parse_bool(answer)
    return default if value is None else value


def semantic_subcall_choice(prompt: str, chunk: str, choices: Sequence[str], default: str | None = None) -> str:
    """Ask the model to pick one of ``choices``; return exactly one of them.

    Case, punctuation and quotes are ignored; a choice the answer negates
    ("not critical, it's a warning") or only lists among others is not picked.
    An ambiguous answer returns ``default``, or raises SubcallParseError without one.
    """
    options = _validate_choices(choices, default)
    suffix = "\nAnswer with exactly one of: " + ", ".join(options) + "."
    answer = _ask("choice", prompt, chunk, suffix=suffix, dry_answer=default if default is not None else options[0])
    picked = parse_choice(answer, options)
    if picked is not None:
        return picked
    if default is not None:
        return default
    raise SubcallParseError(
        f"The model's answer {_excerpt(answer)} names none, or more than one, of {options}. "
        "Pass default=... to fall back instead of failing."
    )


def _validate_choices(choices: Sequence[str], default: str | None) -> list[str]:
    if isinstance(choices, str) or not choices or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ConfigError("choices must be a non-empty list of non-empty strings, e.g. ['critical', 'warning'].")
    options = list(choices)
    keys = [_norm(c) for c in options]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"choices {options} differ only in case or punctuation; make them distinct.")
    if default is not None and default not in options:
        raise ConfigError(f"default {default!r} must be one of the choices {options}.")
    return options


def _excerpt(text: str, n: int = 120) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


# -- reading answers -----------------------------------------------------------

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


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def parse_choice(answer: str, choices: Sequence[str]) -> str | None:
    """The one choice an answer names without negating it, or ``None``."""
    whole = _norm(answer)
    keys = {_norm(c): c for c in choices}
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


# -- many subcalls at once ----------------------------------------------------

def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    max_workers: int | None = 8,
    *,
    return_exceptions: bool = False,
) -> list[R]:
    """Run ``fn`` (any function that makes subcalls) over ``items`` concurrently; results in input order.

    All calls share the run's guards: reservations are atomic, so together
    they can never overspend. When a guard trips, no new item starts, items in
    flight finish (or stop at the deadline), and the guard error is raised;
    publish results from ``fn`` as they arrive to keep them (see README). The
    run's ``max_workers`` (``--workers``) caps ``max_workers``. Any
    other exception in one item does not stop its neighbours; the first is
    raised at the end, or, with ``return_exceptions=True``, put in its slot.
    """
    run = _run()
    work = list(items)
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or max_workers < 1):
        raise ConfigError(f"max_workers must be a whole number of 1 or more (got {max_workers!r}).")
    # The run's max_workers (--workers) caps every map; None asks for exactly that cap.
    workers = run.config.max_workers if max_workers is None else min(max_workers, run.config.max_workers)
    if not work:
        return []
    parent = contextvars.copy_context()  # each item sees the caller's run, in its own copy
    results: list[Any] = [None] * len(work)
    errors: list[tuple[int, BaseException]] = []
    halted: list[GuardError] = []

    def one(index: int) -> None:
        if halted:
            return  # a guard tripped: start nothing new
        try:
            results[index] = parent.copy().run(fn, work[index])
        except GuardError as exc:
            halted.append(exc)
        except Exception as exc:
            if return_exceptions:
                results[index] = exc
            else:
                errors.append((index, exc))

    with ThreadPoolExecutor(max_workers=min(workers, len(work)), thread_name_prefix="rlm-map") as pool:
        list(pool.map(one, range(len(work))))
    if halted:
        raise halted[0]
    if errors:
        raise min(errors, key=lambda pair: pair[0])[1]
    return results
