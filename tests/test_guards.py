"""Guards: config validation, the reserve-then-settle ledger, tokens, runtime, depth, API faults."""

from __future__ import annotations

import math
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from rlm import (
    ConfigError,
    CostLimitError,
    GuardConfig,
    RecursionDepthError,
    RuntimeLimitError,
    SubcallError,
    TokenLimitError,
    context_head,
    run_task,
    semantic_subcall,
)
from rlm.errors import GuardError, RLMError
from rlm.guards import Ledger, current_run
from rlm.loopback import Fault, LoopbackServer, Reply

FREE = dict(price_input_per_mtok=0, price_output_per_mtok=0)


def one_call(ctx: Any) -> str:
    return semantic_subcall("Summarize.", context_head(ctx, 200))


def call_until_halted(ctx: Any) -> int:
    n = 0
    while True:
        semantic_subcall("Summarize.", context_head(ctx, 200))
        n += 1


# -- config -----------------------------------------------------------------------

def test_config_defaults_match_the_spec() -> None:
    c = GuardConfig()
    assert (c.max_cost, c.max_tokens_per_subcall, c.max_runtime_seconds, c.model, c.max_depth) == (
        0.50, 4000, 60.0, "gpt-4o-mini", 1)
    assert c.max_output_tokens > 0 and c.temperature == 0.0


def test_config_reads_env_and_explicit_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MAX_COST", "0.2")
    monkeypatch.setenv("RLM_MAX_RUNTIME", "7")
    monkeypatch.setenv("RLM_MODEL", "gpt-4o")
    c = GuardConfig()
    assert (c.max_cost, c.max_runtime_seconds, c.model) == (0.2, 7.0, "gpt-4o")
    assert GuardConfig(max_cost=0.9, max_runtime_seconds=3, model="gpt-4o-mini").max_cost == 0.9


def test_a_resolved_config_holds_numbers_and_survives_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    c = GuardConfig()
    assert isinstance(c.max_cost, float) and isinstance(c.max_runtime_seconds, float)
    monkeypatch.setenv("RLM_MAX_COST", "0.3")  # a copy keeps the resolved values: the environment is read once
    assert dataclasses.replace(c, max_workers=2).max_cost == 0.5 and GuardConfig().max_cost == 0.3
    assert "api_key" not in repr(GuardConfig(api_key="sk-secret-value-123"))


def test_dotenv_fills_only_what_the_environment_leaves_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from rlm._config import load_dotenv_file

    (tmp_path / ".env").write_text("RLM_MAX_COST=0.11\nRLM_MAX_RUNTIME=9\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLM_MAX_RUNTIME", "5")
    monkeypatch.delenv("RLM_MAX_COST", raising=False)
    assert load_dotenv_file() == str(tmp_path / ".env")
    c = GuardConfig()
    assert (c.max_cost, c.max_runtime_seconds) == (0.11, 5.0)  # explicit > environment > .env > default
    assert GuardConfig(max_cost=0.7).max_cost == 0.7


@pytest.mark.parametrize("url", ["http://[::1/v1", "127.0.0.1:8080/v1", "ftp://host/v1", "http://host:99999/v1",
                                 "http:///v1"])
def test_a_malformed_base_url_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL") as refused:
        GuardConfig()
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="base_url"):
        GuardConfig(base_url="http://user:hunter2@[::1/v1")
    with pytest.raises(ConfigError) as hidden:
        GuardConfig(base_url="ftp://user:hunter2@host/v1")
    assert "hunter2" not in str(hidden.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_cost": -1}, r"max_cost must be a number above 0 \(got -1\)"),
        ({"max_cost": 0}, "max_cost must be a number above 0"),
        ({"max_cost": math.nan}, "max_cost must be a number above 0"),
        ({"max_cost": math.inf}, "max_cost"),
        ({"max_cost": "abc"}, r"got 'abc'"),
        ({"max_runtime_seconds": 0}, "max_runtime_seconds"),
        ({"max_tokens_per_subcall": 0}, "max_tokens_per_subcall must be a whole number above 0"),
        ({"max_tokens_per_subcall": 1.5}, "whole number"),
        ({"max_output_tokens": -5}, "max_output_tokens"),
        ({"max_depth": 0}, "max_depth"),
        ({"temperature": 3}, "temperature must be between 0 and 2"),
        ({"model": "my-local-llama"}, "No price known for model 'my-local-llama'.*RLM_PRICE_INPUT"),
        ({"model": "my-local-llama", "price_input_per_mtok": 1}, "both the input and the output price"),
        ({"price_input_per_mtok": -1, "price_output_per_mtok": 1}, "price_input_per_mtok must be a number of 0 or more"),
    ],
)
def test_bad_config_values_are_refused_with_a_clear_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GuardConfig(**kwargs)


@pytest.mark.parametrize(("env", "value"), [("RLM_MAX_COST", "cheap"), ("RLM_MAX_RUNTIME", "-3"), ("RLM_MAX_COST", "nan")])
def test_bad_env_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=f"{env} \\(from the environment\\)"):
        GuardConfig()


def test_price_override_allows_unknown_models_including_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_PRICE_INPUT", "0")
    monkeypatch.setenv("RLM_PRICE_OUTPUT", "0")
    c = GuardConfig(model="llama3.1:8b")
    assert c.pricing().cost(10_000, 10_000) == 0


def test_genai_prices_know_openai_models() -> None:
    pricing = GuardConfig(model="gpt-4o-mini").pricing()
    assert pricing.cost(1_000_000, 0) == Decimal("0.15")
    assert "genai-prices" in pricing.source


# -- ledger ------------------------------------------------------------------------

def test_ledger_reserve_settle_keep_release() -> None:
    ledger = Ledger(Decimal("1.00"))
    ledger.reserve(Decimal("0.60"))
    with pytest.raises(CostLimitError, match="only \\$0.400000"):
        ledger.reserve(Decimal("0.41"))
    ledger.settle(Decimal("0.60"), Decimal("0.10"))
    assert ledger.spent == Decimal("0.10") and ledger.reserved == 0
    ledger.reserve(Decimal("0.30"))
    ledger.keep(Decimal("0.30"))
    ledger.reserve(Decimal("0.30"))
    ledger.release(Decimal("0.30"))
    assert (ledger.spent, ledger.kept, ledger.remaining()) == (Decimal("0.40"), Decimal("0.30"), Decimal("0.60"))


def test_child_ledger_cannot_outspend_its_parent() -> None:
    parent = Ledger(Decimal("1.00"))
    parent.reserve(Decimal("0.90"))
    child = Ledger(Decimal("5.00"), parent)
    with pytest.raises(CostLimitError):
        child.reserve(Decimal("0.20"))
    child.reserve(Decimal("0.10"))
    child.settle(Decimal("0.10"), Decimal("0.05"))
    assert parent.spent == Decimal("0.05") and parent.reserved == Decimal("0.90")


# -- cost against the server ----------------------------------------------------------

def test_no_request_is_sent_when_the_worst_case_does_not_fit(llm: LoopbackServer) -> None:
    result = run_task(one_call, "text", GuardConfig(max_cost=0.000001))
    assert result["status"] == "partial" and "CostLimitError" in result["error"]
    assert llm.chat_requests == []
    assert result["budget_summary"]["total_cost_usd"] == 0


def test_cost_settles_at_reported_usage(llm: LoopbackServer) -> None:
    llm.script(Reply("answer", prompt_tokens=1000, completion_tokens=100))
    result = run_task(one_call, "text", GuardConfig())
    s = result["budget_summary"]
    assert result["result"] == "answer"
    assert s["total_cost_usd"] == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)
    assert (s["input_tokens"], s["output_tokens"], s["total_calls"]) == (1000, 100, 1)
    assert s["reserved_in_flight_usd"] == 0


def test_spend_never_exceeds_the_budget_and_the_paid_answer_is_kept(llm: LoopbackServer) -> None:
    result = run_task(call_until_halted, "some text " * 20, GuardConfig(max_cost=0.002))
    s = result["budget_summary"]
    assert result["status"] == "partial" and s["guard_trips"] == ["cost"]
    assert 0 < s["total_cost_usd"] <= 0.002
    assert s["total_calls"] == len(llm.chat_requests)  # every call that was sent was counted


def test_a_complete_answer_without_usage_is_billed_at_its_upper_bound(llm: LoopbackServer) -> None:
    """llama.cpp streams no usage: the prompt's bound plus the text received, not the whole output cap."""
    llm.script(Reply("x", usage=False))
    result = run_task(one_call, "text", GuardConfig())
    s = result["budget_summary"]
    assert s["usage_missing"] == 1 and s["kept_reservations_usd"] == 0
    pricing = GuardConfig(model="gpt-4o-mini").pricing()
    counted = s["input_tokens"]
    assert s["output_tokens"] == 1 + 4  # one byte of text, plus room for unseen end-of-turn tokens
    assert s["total_cost_usd"] == pytest.approx(float(pricing.cost(counted, 5)))
    assert s["total_cost_usd"] < float(pricing.cost(counted, 1024))


def test_output_cap_is_always_sent(llm: LoopbackServer) -> None:
    run_task(one_call, "text", GuardConfig(max_output_tokens=77))
    body = llm.chat_requests[0].body
    assert body["max_completion_tokens"] == 77
    assert body["max_tokens"] == 77  # not api.openai.com: Ollama and friends read only this
    assert body["temperature"] == 0


def test_output_cap_breach_is_recorded(llm: LoopbackServer) -> None:
    llm.script(Reply("long", completion_tokens=500))
    s = run_task(one_call, "text", GuardConfig(max_output_tokens=100))["budget_summary"]
    assert s["output_cap_breaches"] == 1 and s["overrun_usd"] > 0


def test_concurrent_runs_in_threads_have_separate_budgets(llm: LoopbackServer) -> None:
    results: list[dict[str, Any]] = []

    def go(cost: float) -> None:
        results.append(run_task(call_until_halted, "text " * 10, GuardConfig(max_cost=cost)))

    threads = [threading.Thread(target=go, args=(c,)) for c in (0.0008, 0.0016)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    budgets = sorted((r["budget_summary"]["cost_budget_usd"], r["budget_summary"]["total_cost_usd"]) for r in results)
    assert budgets[0][1] <= 0.0008 and budgets[1][1] <= 0.0016
    assert budgets[1][1] > 0.0008  # the bigger run was not capped by the smaller one
    assert current_run() is None  # nothing leaked into this thread


# -- tokens ----------------------------------------------------------------------

def test_token_limit_refuses_before_sending(llm: LoopbackServer) -> None:
    result = run_task(lambda c: semantic_subcall("x", context_head(c, 10_000)), "word " * 2000,
                      GuardConfig(max_tokens_per_subcall=500))
    assert result["status"] == "error" and "TokenLimitError" in result["error"] and "--tokens" in result["error"]
    assert llm.chat_requests == []


def test_byte_counting_is_reported_and_bounds_the_real_count(llm: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm.tokens import _encoding

    monkeypatch.setenv("RLM_TOKEN_COUNTING", "bytes")
    _encoding.cache_clear()
    try:
        text = "naïve café — 😀 " * 30
        llm.responder = lambda body: Reply("ok")
        s = run_task(lambda c: semantic_subcall("x", context_head(c, 1000)), text, GuardConfig())["budget_summary"]
        assert s["token_counting"].startswith("utf8-bytes")
    finally:
        _encoding.cache_clear()


def test_request_token_bound_covers_every_message() -> None:
    from rlm.tokens import count_request_tokens

    msgs = [("system", "abc"), ("user", "é" * 10)]
    n = count_request_tokens("unknown-model", msgs).tokens
    assert n >= len("abc") + 20 + len("system") + len("user")


# -- runtime -----------------------------------------------------------------------

@pytest.mark.parametrize("fault", [Fault("hang", seconds=10), Fault("trickle", interval=0.4)])
def test_deadline_holds_against_hangs_and_trickles(llm: LoopbackServer, fault: Fault) -> None:
    llm.script(fault)
    start = time.monotonic()
    result = run_task(one_call, "text", GuardConfig(max_runtime_seconds=0.5))
    elapsed = time.monotonic() - start
    assert result["status"] == "partial" and "RuntimeLimitError" in result["error"]
    assert elapsed < 0.5 + 0.25
    assert result["budget_summary"]["kept_reservations_usd"] > 0  # sent, maybe billed


def test_retry_after_past_the_deadline_stops_at_once(llm: LoopbackServer) -> None:
    llm.script(Fault.rate_limit(retry_after=30))
    start = time.monotonic()
    result = run_task(one_call, "text", GuardConfig(max_runtime_seconds=5))
    assert time.monotonic() - start < 1.0
    assert result["status"] == "partial" and "waiting 30.0s" in result["error"]


def test_retry_after_ms_is_honoured_and_retries_are_not_billed_twice(llm: LoopbackServer) -> None:
    llm.script(Fault.rate_limit(retry_after_ms=300), Reply("fine", prompt_tokens=100, completion_tokens=10))
    result = run_task(one_call, "text", GuardConfig())
    reqs = llm.chat_requests
    assert result["result"] == "fine"
    assert reqs[1].started - reqs[0].started >= 0.3
    s = result["budget_summary"]
    assert (s["http_attempts"], s["retries"], s["total_calls"]) == (2, 1, 1)
    assert s["total_cost_usd"] == pytest.approx(100 * 0.15e-6 + 10 * 0.6e-6)


@pytest.mark.parametrize("fault", [Fault.server_error(500), Fault.server_error(503), Fault("status", status=408),
                                   Fault("status", status=409), Fault("drop"), Fault("malformed")])
def test_transient_faults_are_retried(llm: LoopbackServer, fault: Fault) -> None:
    llm.script(fault, "recovered")
    result = run_task(one_call, "text", GuardConfig())
    assert result["status"] == "completed" and result["result"] == "recovered"
    assert result["budget_summary"]["retries"] == 1


def test_broken_attempts_keep_their_reservation_error_statuses_do_not(llm: LoopbackServer) -> None:
    llm.script(Fault("malformed"), Reply("x", prompt_tokens=1, completion_tokens=1))
    kept = run_task(one_call, "text", GuardConfig())["budget_summary"]
    assert kept["kept_reservations_usd"] > 0
    llm.script(Fault.server_error(), Reply("x", prompt_tokens=1, completion_tokens=1))
    released = run_task(one_call, "text", GuardConfig())["budget_summary"]
    assert released["kept_reservations_usd"] == 0


def test_persistent_failure_gives_up_with_a_clear_error(llm: LoopbackServer) -> None:
    llm.script(*[Fault.server_error()] * 3)
    result = run_task(one_call, "text", GuardConfig(max_retries=2))
    assert result["status"] == "error"
    assert "failed 3 times in a row" in result["error"] and "HTTP 500" in result["error"]


def test_401_is_not_retried_and_never_shows_the_key(llm: LoopbackServer, api_key: str) -> None:
    llm.script(Fault.unauthorized())
    result = run_task(one_call, "text", GuardConfig())
    assert result["status"] == "error" and "OPENAI_API_KEY" in result["error"]
    assert len(llm.chat_requests) == 1
    assert api_key not in str(result)


def test_unknown_model_at_the_server_says_what_to_check(llm: LoopbackServer) -> None:
    llm.script(Fault("status", status=404, message="model not found"))
    result = run_task(one_call, "text", GuardConfig())
    assert "RLM_MODEL" in result["error"]


def test_no_api_configured_says_which_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_task(one_call, "text", GuardConfig())
    assert result["status"] == "error"
    assert "OPENAI_API_KEY" in result["error"] and "OPENAI_BASE_URL" in result["error"]


# -- depth -----------------------------------------------------------------------

def test_subcall_inside_a_subcall_is_refused(llm: LoopbackServer) -> None:
    class Sneaky:
        def __str__(self) -> str:
            return semantic_subcall("inner", "chunk")

    result = run_task(lambda c: semantic_subcall("outer", Sneaky()), "text", GuardConfig())  # type: ignore[arg-type]
    assert result["status"] == "error" and "RecursionDepthError" in result["error"]
    assert llm.chat_requests == []


def test_nested_run_is_refused_at_default_depth(llm: LoopbackServer) -> None:
    def parent(ctx: Any) -> Any:
        return run_task(one_call, "inner", GuardConfig())

    result = run_task(parent, "outer", GuardConfig())
    assert result["status"] == "error" and "RecursionDepthError" in result["error"]


def test_nested_run_cannot_enlarge_the_parent_budget_or_deadline(llm: LoopbackServer) -> None:
    seen: dict[str, Any] = {}

    def parent(ctx: Any) -> Any:
        semantic_subcall("first", "chunk")
        child = run_task(call_until_halted, "inner", GuardConfig(max_cost=100, max_runtime_seconds=600, max_depth=2))
        seen["child"] = child
        return child["status"]

    result = run_task(parent, "outer", GuardConfig(max_cost=0.001, max_runtime_seconds=5, max_depth=2))
    assert seen["child"]["status"] == "partial" and "CostLimitError" in seen["child"]["error"]
    assert result["budget_summary"]["total_cost_usd"] <= 0.001
    assert result["budget_summary"]["total_cost_usd"] >= seen["child"]["budget_summary"]["total_cost_usd"]


def test_guard_errors_share_one_base() -> None:
    for cls in (CostLimitError, TokenLimitError, RecursionDepthError, RuntimeLimitError):
        assert issubclass(cls, GuardError) and issubclass(cls, RLMError)
    assert not issubclass(SubcallError, GuardError)


def test_tiktoken_counts_are_used_when_its_encoding_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline the BPE files cannot load; a tiny byte-level encoding stands in to show the path is taken."""
    import tiktoken

    from rlm.tokens import _encoding, count_request_tokens

    byte_level = tiktoken.Encoding(name="test-bytes", pat_str=r"\S+|\s+",
                                   mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={})
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda model: byte_level)
    _encoding.cache_clear()
    try:
        count = count_request_tokens("gpt-4o-mini", [("user", "héllo")])
        assert count.method == "tiktoken:test-bytes"
        assert count.tokens == len("héllo".encode()) + len("user") + 4 + 3
    finally:
        _encoding.cache_clear()


def test_an_answer_cut_mid_stream_every_time_says_the_connection_broke(llm: LoopbackServer) -> None:
    llm.script(*[Fault("cut", tokens=1)] * 2)
    result = run_task(one_call, "text", GuardConfig(max_retries=1))
    assert result["status"] == "error" and "failed 2 times in a row" in result["error"]
    assert "connection broke mid-answer" in result["error"] and "RemoteProtocolError(" not in result["error"]
