"""Semantic subcalls: one instruction plus one bounded chunk, sent to the model at depth 1.

Each call goes through the official ``openai`` SDK under the current run's
guards (see :mod:`rlm.guards`), at temperature 0 by default, and is recorded
with the chunk's span so every answer can be traced to the text it read. The
typed variants read the model's free text into JSON, a bool or one of a set
of choices, in Python, tolerantly; they fall back to ``default``.

Outside any run (a script that calls a subcall directly), each call runs
under a fresh run with default guards that is closed when the call returns;
``with init_guards(config):`` puts many calls under one budget.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from rlm._answers import normalize_choice, parse_bool, parse_choice, parse_json
from rlm._attempt import AttemptReport
from rlm._retry import retry_delay, should_retry
from rlm._transport import EMPTY_STREAM
from rlm.cache import CachedAnswer, ResponseCache, cache_key
from rlm.context_access import Chunk, Context
from rlm.errors import ConfigError, ContextAccessError, GuardError, SubcallError, SubcallParseError
from rlm.guards import GuardConfig, RemainingBudget, Run, Settlement, SubcallRecord, run_of_this_thread, subcall_scope
from rlm.tokens import count_request_tokens
from rlm.trace import redact

__all__ = [
    "SYSTEM_PROMPT",
    "semantic_subcall",
    "semantic_subcall_json",
    "semantic_subcall_bool",
    "semantic_subcall_choice",
    "parallel_map",
    "remaining_budget",
    "fell_back",
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
Messages = tuple[tuple[str, str], ...]


def _messages(prompt: str, chunk: str, suffix: str) -> Messages:
    return (
        ("system", SYSTEM_PROMPT),
        ("user", f"{prompt}{suffix}\n\nExcerpt:\n<<<\n{chunk}\n>>>"),
    )


def _ask(kind: str, prompt: str, chunk: object, *, suffix: str = "", json_mode: bool = False,
         dry_answer: str = _DRY_RUN_TEXT) -> str:
    """Send one subcall (or replay it from the cache, or account for it in a dry run) and record it."""
    if isinstance(chunk, Context):
        raise ContextAccessError(
            "A whole context was passed to a subcall (rule 1: never load the context into a prompt). "
            "Pass a bounded chunk from context_slice / context_chunks / context_search."
        )
    run = run_of_this_thread()
    if run is None:  # a script outside any run: fresh default guards for this one call
        with Run(GuardConfig(), task="subcall") as fresh:
            return _ask_in(fresh, kind, prompt, chunk, suffix, json_mode, dry_answer)
    return _ask_in(run, kind, prompt, chunk, suffix, json_mode, dry_answer)


def _ask_in(run: Run, kind: str, prompt: str, chunk: object, suffix: str, json_mode: bool, dry_answer: str) -> str:
    with subcall_scope(run):
        if run.halted is not None:
            raise run.halted
        run.check_deadline()
        if run.model is None and (run.budget.pricing is None or not run.config.dry_run):
            _resolve_model(run)  # a dry run asks only when it needs the model's price
        text = chunk if isinstance(chunk, str) else str(chunk)
        messages = _messages(str(prompt), text, suffix)
        counted = count_request_tokens(run.model, messages, json_mode=json_mode).tokens
        run.check_tokens(counted)
        request_id: str | None = None
        if run.config.dry_run:
            admission = run.admit(counted)
            answer = dry_answer
            fields: dict[str, Any] = {"reserved_usd": float(admission.reserved), "dry_run": True}
        else:
            answer, fields, request_id = _live(run, messages, counted, json_mode)
        span = (chunk.start, chunk.end) if isinstance(chunk, Chunk) else (None, None)
        run.record_subcall(SubcallRecord(
            kind=kind, instruction=str(prompt), chunk_start=span[0], chunk_end=span[1],
            chunk_sha256=hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest(),
            model=run.model, answer=answer, counted_tokens=counted, request_id=request_id,
            file=chunk.file if isinstance(chunk, Chunk) else None, **fields,
        ))
        return answer


def _resolve_model(run: Run) -> None:
    """The server's model: remembered by the cache from an earlier run (a replay asks nothing), else asked."""
    cache = _cache(run)
    base_url = run.config.base_url
    remembered = cache.served_model(base_url) if cache is not None and base_url is not None else None
    model = run.resolve_model(remembered)
    if cache is not None and base_url is not None and remembered is None:
        cache.remember_model(base_url, model)


def _cache(run: Run) -> ResponseCache | None:
    """The run's response cache, when it is on and the call is deterministic enough to replay."""
    cfg = run.config
    if not cfg.cache or (cfg.temperature > 0 and not cfg.cache_nonzero_temperature):
        return None
    cache = run.resource(ResponseCache, lambda: ResponseCache(cfg.cache_path))
    return cache if cache.enabled else None


def _live(run: Run, messages: Messages, counted: int, json_mode: bool) -> tuple[str, dict[str, Any], str | None]:
    """The answer, its record fields and request id: from the cache, or from one model call."""
    cache = _cache(run)
    key = ""
    if cache is not None:
        key = _key(run, messages, json_mode)
        hit = cache.get(key)
        if hit is not None:
            run.budget.count_cache(hit=True, saved=hit.cost)
            return hit.answer, {"input_tokens": hit.input_tokens, "output_tokens": hit.output_tokens,
                                "cached": True}, None
        run.budget.count_cache(hit=False)
    if run.confirm_model():  # the model remembered from the cache is no longer the server's: ask the new one
        if cache is not None and run.config.base_url is not None:
            cache.remember_model(run.config.base_url, str(run.model))
        counted = count_request_tokens(run.model, messages, json_mode=json_mode).tokens
        run.check_tokens(counted)
        key = _key(run, messages, json_mode) if cache is not None else ""
    reply = _call_model(run, messages, counted, json_mode)
    bill = reply.settlement
    if cache is not None and reply.text.strip():  # an empty answer is almost always a glitch: ask again next time
        # A key the model echoed from the document is not kept on disk (stdout, trace and report redact it too).
        stored = redact(reply.text, run.config.secrets())
        cache.put(key, str(run.model), CachedAnswer(stored, bill.input_tokens, bill.output_tokens, bill.cost))
    return reply.text, {
        "input_tokens": bill.input_tokens, "output_tokens": bill.output_tokens, "cost_usd": float(bill.cost),
        "reserved_usd": float(reply.reserved), "latency_seconds": round(reply.latency, 6),
        "retries": reply.retries, "usage_reported": bill.usage_reported,
    }, reply.request_id


def _key(run: Run, messages: Messages, json_mode: bool) -> str:
    cfg = run.config
    return cache_key(base_url=cfg.base_url, model=str(run.model),
                     messages=[{"role": r, "content": c} for r, c in messages], temperature=cfg.temperature,
                     max_output_tokens=cfg.max_output_tokens, json_mode=json_mode)


@dataclass(frozen=True, slots=True)
class _Reply:
    text: str
    settlement: Settlement
    reserved: float
    retries: int
    latency: float
    request_id: str | None


def _call_model(run: Run, messages: Messages, counted: int, json_mode: bool) -> _Reply:
    """One subcall's HTTP attempts: each admitted and settled by the run, retried by the SDK's rules."""
    cfg, endpoint = run.config, run.endpoint
    transport = endpoint.transport()
    started = time.monotonic()
    retries = 0
    while True:
        request = endpoint.request(messages, temperature=cfg.temperature, max_output_tokens=cfg.max_output_tokens,
                                   json_mode=json_mode)
        admission = run.admit(counted)
        report = transport.send(request, run.remaining_seconds(), abandon=run.stop_event)
        settlement = run.settle(admission, report)
        if report.ok:
            return _Reply(report.text, settlement, float(admission.reserved), retries,
                          time.monotonic() - started, report.request_id)
        if report.abandoned:
            if run.halted is not None:
                raise run.halted  # stopped (Ctrl-C, SIGTERM) while the call was in flight
            raise run.runtime_error()
        # A server that refuses an option gets the request again without it, for this and later calls.
        if endpoint.learn_refusal(request, report.status_code, report.problem):
            continue
        # A refused connection to this machine means nothing listens there: retrying cannot help.
        refused_here = not report.sent and endpoint.is_local
        retryable = should_retry(report.status_code, report.headers) and not refused_here
        if not retryable or retries >= cfg.max_retries:
            run.count(failed_calls=1)
            raise SubcallError(_failure_message(run, report, retries, retryable),
                               status_code=report.status_code, request_id=report.request_id,
                               retryable=retryable) from report.error
        run.wait_before_retry(retry_delay(report.headers, retries), report.problem)
        retries += 1
        run.count(retries=1)


def _failure_message(run: Run, report: AttemptReport, retries: int, retryable: bool) -> str:
    status = report.status_code
    if not report.sent and run.endpoint.is_local:
        return (f"Nothing answers at {run.endpoint.where} (connection refused): start the model server, or check "
                "OPENAI_BASE_URL's host and port.")
    if retryable:
        times = "once" if retries == 0 else f"{retries + 1} times in a row"
        if report.problem == EMPTY_STREAM:
            return (f"The model API failed {times} (last: {report.problem}). A local server does this when "
                    "a request is larger than its context window: send smaller chunks (--tokens) or lower "
                    "--output-tokens, or give the server a larger context.")
        return f"The model API failed {times} (last: {report.problem}). Try again later, or raise max_retries."
    if status == 401:
        return "The model API refused the credentials (401 Unauthorized). Check OPENAI_API_KEY."
    if status == 403:
        return f"The model API denied access (403): {report.problem}. Check the key's permissions."
    if status == 404:
        served = run.endpoint.served_models_hint(timeout=min(max(run.remaining_seconds(), 0.1), 3.0))
        return (f"The model API has no model {run.model!r} (404).{served} "
                "Check --model / RLM_MODEL and OPENAI_BASE_URL.")
    return f"The model API rejected the request ({report.problem or f'HTTP {status}'})."


def remaining_budget(chunk_size: int = 3000, instruction: str = "") -> RemainingBudget:
    """What is left of the current run: USD, seconds, and how many more subcalls of a chunk of
    ``chunk_size`` bytes (with ``instruction``) fit at their worst case, so a task can shrink its plan
    before a limit stops it. Outside any run: what a fresh default run would allow.
    """
    run = run_of_this_thread()
    if run is None:
        with Run(GuardConfig(), task="remaining_budget"):
            return remaining_budget(chunk_size, instruction)
    messages = _messages(instruction, "x" * max(int(chunk_size), 0), _JSON_SUFFIX)
    # A chunk of n bytes counts at most n tokens, whatever the tokenizer: the byte count is the bound here.
    bound = count_request_tokens(None, messages, json_mode=True).tokens
    return run.remaining(bound)


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
        return fell_back(copy.deepcopy(default))
    raise SubcallParseError(
        f"The model's answer was not JSON: {_excerpt(answer)}. Pass default=... to fall back instead of failing.",
        answer=answer,
    )


def semantic_subcall_bool(prompt: str, chunk: str, default: bool = False) -> bool:
    """Ask a yes/no question; "Yes.", "no, because…", "TRUE" all read. Anything else is ``default``."""
    answer = _ask("bool", prompt, chunk, suffix=_BOOL_SUFFIX, dry_answer="yes" if default else "no")
    value = parse_bool(answer)
    return fell_back(default) if value is None else value


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
        return fell_back(default)
    raise SubcallParseError(
        f"The model's answer {_excerpt(answer)} names none, or more than one, of {options}. "
        "Pass default=... to fall back instead of failing.",
        answer=answer,
    )


def fell_back(default: T) -> T:
    """Count an answer that did not read as the task asked (``answers_defaulted``), and return ``default``.

    The typed subcalls do this themselves; a task that checks an answer further (a value outside its
    vocabulary) calls it so that the run says so instead of dropping the answer in silence.
    """
    run = run_of_this_thread()
    if run is not None:
        run.count(answers_defaulted=1)
    return default


def _validate_choices(choices: Sequence[str], default: str | None) -> list[str]:
    if isinstance(choices, str) or not choices or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ConfigError("choices must be a non-empty list of non-empty strings, e.g. ['critical', 'warning'].")
    options = list(choices)
    keys = [normalize_choice(c) for c in options]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"choices {options} differ only in case or punctuation; make them distinct.")
    if default is not None and default not in options:
        raise ConfigError(f"default {default!r} must be one of the choices {options}.")
    return options


def _excerpt(text: str, n: int = 120) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


# -- many subcalls at once ----------------------------------------------------

def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    max_workers: int | None = None,
    *,
    return_exceptions: bool = False,
) -> list[R]:
    """Run ``fn`` (any function that makes subcalls) over ``items`` concurrently; results in input order.

    All calls share the run's guards. A call whose worst case does not fit
    the budget only because others are in flight waits for them to settle;
    when the budget (or the clock) is truly spent, the run halts: no new item
    starts, items in flight finish or stop at the deadline, and the guard
    error is raised. Publish results from ``fn`` as they arrive to keep them
    (docs/writing-tasks.md). ``max_workers`` defaults to the run's ``max_workers``
    (``--workers``, default 8), which also caps it. Any other exception in
    one item does not stop its neighbours; the first is raised at the end,
    or, with ``return_exceptions=True``, put in its slot.
    """
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or max_workers < 1):
        raise ConfigError(f"max_workers must be a whole number of 1 or more (got {max_workers!r}).")
    run = run_of_this_thread()
    if run is None:  # a script outside any run: one fresh default run for the whole map
        with Run(GuardConfig(), task="parallel_map") as fresh:
            return _map(fresh, fn, list(items), max_workers, return_exceptions)
    return _map(run, fn, list(items), max_workers, return_exceptions)


def _map(run: Run, fn: Callable[[T], R], work: list[T], max_workers: int | None,
         return_exceptions: bool) -> list[R]:
    workers = run.config.max_workers if max_workers is None else min(max_workers, run.config.max_workers)
    if not work:
        return []
    parent = contextvars.copy_context()  # each item sees the caller's run, in its own copy
    results: list[Any] = [None] * len(work)
    errors: list[tuple[int, BaseException]] = []
    halted: list[GuardError] = []

    def one(index: int) -> None:
        if halted or run.halted is not None:
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
    if halted or run.halted is not None:
        raise run.halted if run.halted is not None else halted[0]
    if errors:
        raise min(errors, key=lambda pair: pair[0])[1]
    return results
