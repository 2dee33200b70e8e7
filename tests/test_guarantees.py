"""The guarantees on the paths a new user takes: scoped runs, one admission boundary, waiting admission,
patterns that cannot outrun the clock, streamed calls that stop the server's work, the SDK's retry rules,
the model the server serves, one trace event per trip, and errors that carry their facts."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from rlm import (
    ConfigError,
    CostLimitError,
    GuardConfig,
    RuntimeLimitError,
    SubcallError,
    context_head,
    context_search,
    init_guards,
    open_context,
    parallel_map,
    run_task,
    semantic_subcall,
)
from rlm._attempt import AttemptReport, Usage
from rlm._retry import MAX_RETRY_AFTER, parse_retry_after, retry_delay, should_retry
from rlm.guards import Run, current_run
from rlm.loopback import Fault, LoopbackServer, Reply
from tests.support import ROOT

PRICED = dict(price_input_per_mtok=0, price_output_per_mtok=1.0)  # $1e-6 per output token, prompts free


def ask(ctx: Any) -> str:
    return semantic_subcall("Summarize.", context_head(ctx, 50))


# -- 1. run state is scoped ----------------------------------------------------------------

def test_a_bare_subcall_leaves_no_run_that_breaks_later_runs_or_reads(llm: LoopbackServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MAX_RUNTIME", "0.5")
    assert semantic_subcall("Summarize.", "a paragraph") == "ok"
    assert current_run() is None
    assert run_task(ask, "some text")["status"] == "completed"  # not "a nested run at depth 1"
    time.sleep(0.6)  # past the default run's limit: reading outside any run is not a late run
    assert context_search("an ERROR here", "ERROR")[0].start == 3


def test_subcalls_from_a_tasks_own_threads_stay_inside_its_run(llm: LoopbackServer) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    llm.responder = lambda body: Reply("ok", prompt_tokens=10, completion_tokens=60, latency=0.01)
    budget = 5 * 100e-6  # five worst cases of a 100-token cap at $1 per 1M output tokens

    def with_threads(ctx: Any) -> str:
        def keep_asking() -> None:
            with contextlib.suppress(Exception):
                while True:
                    semantic_subcall("q", "c")

        with ThreadPoolExecutor(4) as pool:  # what a task written without parallel_map reaches for
            for _ in range(4):
                pool.submit(keep_asking)
        threading.Thread(target=keep_asking, daemon=True).start()
        return "done"

    result = run_task(with_threads, "x", GuardConfig(max_cost=budget, max_output_tokens=100, **PRICED))
    s = result["budget_summary"]
    asked = len(llm.chat_requests)
    assert s["total_calls"] == asked > 0  # every request the threads sent was billed to the run
    assert s["total_cost_usd"] <= budget and "cost" in s["guard_trips"]
    time.sleep(0.2)
    assert len(llm.chat_requests) == asked  # a thread that outlived the run sends nothing more


def test_a_thread_left_over_from_an_ended_run_is_refused_not_given_a_fresh_run(llm: LoopbackServer) -> None:
    import threading

    go, outcome = threading.Event(), []

    def late() -> None:
        go.wait(5)
        try:
            semantic_subcall("q", "c")
            outcome.append("sent")
        except RuntimeLimitError as exc:
            outcome.append(str(exc))

    def start_and_return(ctx: Any) -> str:
        threading.Thread(target=late, daemon=True).start()
        return "returned"

    assert run_task(start_and_return, "x")["status"] == "completed"
    go.set()
    for _ in range(100):
        if outcome:
            break
        time.sleep(0.02)
    assert outcome and "has ended" in outcome[0] and "parallel_map" in outcome[0]
    assert llm.chat_requests == []


def test_a_with_block_installs_the_run_and_removes_it(llm: LoopbackServer) -> None:
    with init_guards(GuardConfig(max_cost=0.1)) as run:
        semantic_subcall("q", "c")
        assert current_run() is run
    assert current_run() is None and run.closed
    assert run.budget_summary()["total_calls"] == 1


# -- 2. one admission and one settlement point -------------------------------------------------

def test_every_attempt_is_admitted_and_settled_exactly_once() -> None:
    run = Run(GuardConfig(model="gpt-4o-mini", max_cost=1.0))
    admission = run.admit(100)
    assert run.budget.ledger.reserved == admission.reserved == run.budget.worst_case(100)
    done = AttemptReport(sent=True, complete=True, text="x", usage=Usage(10, 2))
    bill = run.settle(admission, done)
    assert bill.basis == "usage" and run.budget.ledger.reserved == 0 and run.budget.ledger.spent == bill.cost
    with pytest.raises(RuntimeError, match="settled twice"):
        run.settle(admission, done)
    run.close()


@pytest.mark.parametrize(
    ("report", "basis"),
    [(AttemptReport(sent=False, complete=False), "released"),
     (AttemptReport(sent=True, complete=False, status_code=500), "released"),
     (AttemptReport(sent=True, complete=True, text="hello"), "bound"),
     (AttemptReport(sent=True, complete=False, text="hel"), "kept"),
     (AttemptReport(sent=True, complete=False, abandoned=True), "kept")],
)
def test_settlement_bills_from_what_the_transport_reported(report: AttemptReport, basis: str) -> None:
    run = Run(GuardConfig(model="gpt-4o-mini", max_cost=1.0))
    admission = run.admit(100)
    bill = run.settle(admission, report)
    assert bill.basis == basis
    expected = {"released": Decimal(0), "kept": admission.reserved,
                "bound": run.budget.pricing.cost(100, len("hello") + 4)}[basis]  # type: ignore[union-attr]
    assert bill.cost == expected == run.budget.ledger.spent
    assert run.budget.ledger.spent <= admission.reserved
    run.close()


def test_api_settings_can_be_passed_in_code_and_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(default="from code") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-0123456789")
        config = GuardConfig(base_url=server.base_url, api_key="sk-from-code-0123456789")
        assert run_task(ask, "text", config)["result"] == "from code"
        assert server.chat_requests[0].headers["authorization"] == "Bearer sk-from-code-0123456789"
        assert "sk-from-code" not in repr(config) and "api_key" not in config.public_dict()


def _imports() -> dict[str, set[str]]:
    """Each rlm module's imports of other rlm modules (anywhere in the file, TYPE_CHECKING included)."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in (ROOT / "rlm").glob("*.py"):
        name = path.stem
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "rlm":
                    found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
                elif parts[0] == "tasks":
                    found.add("<tasks>")
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("rlm.")}
                found |= {"<tasks>" for a in node.names if a.name.split(".")[0] == "tasks"}
        graph[name] = found - {name}
    return graph


def test_imports_point_down_the_layers_with_no_cycle() -> None:
    graph = _imports()
    assert not graph["guards"] & {"context_access", "_transport", "subcalls", "runtime", "cli"}
    assert not graph["context_access"] & {"guards", "subcalls", "runtime", "cli"}
    assert not graph["_transport"] & {"guards", "subcalls", "runtime"}
    assert all("cli" not in deps for name, deps in graph.items() if name not in ("cli", "__main__"))
    library = {n: d for n, d in graph.items() if n not in ("__init__", "cli", "__main__")}
    assert all("<tasks>" not in deps for deps in library.values())

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join((*stack, node))}"
        for dep in library.get(node, ()):
            visit(dep, (*stack, node))

    for module in library:
        visit(module, ())


# -- 3. admission waits instead of wasting the budget ------------------------------------------

def calls_bought(server: LoopbackServer, workers: int) -> int:
    """Calls one budget buys when every worker calls until the budget halts it."""
    server.responder = lambda body: Reply("answer", prompt_tokens=10, completion_tokens=50)
    config = GuardConfig(max_cost=40 * 100e-6, max_output_tokens=100, max_workers=workers, **PRICED)

    def worker(i: int) -> None:
        while True:
            semantic_subcall("q", "c")

    result = run_task(lambda ctx: parallel_map(worker, range(workers)), "x", config)
    assert result["status"] == "partial" and "CostLimitError" in result["error"]
    assert result["budget_summary"]["total_cost_usd"] <= 40 * 100e-6
    return int(result["budget_summary"]["total_calls"])


def test_eight_workers_buy_as_many_calls_as_one(llm: LoopbackServer) -> None:
    one, eight = calls_bought(llm, 1), calls_bought(llm, 8)
    # Each call reserves 100 us$ and settles at 50: a budget of 40 reservations buys 79 calls.
    assert one == 79
    assert eight >= 0.9 * one


def test_a_cost_halt_is_one_trace_event_however_many_workers_saw_it(llm: LoopbackServer, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    config = GuardConfig(max_cost=10 * 100e-6, max_output_tokens=100, max_workers=8, trace_path=str(trace), **PRICED)
    llm.responder = lambda body: Reply("answer", prompt_tokens=10, completion_tokens=100)
    run_task(lambda ctx: parallel_map(lambda i: [semantic_subcall("q", "c") for _ in range(5)], range(8)), "x",
             config)
    trips = [e for e in map(json.loads, trace.read_text().splitlines()) if e["event"] == "guard_trip"]
    assert [t["limit"] for t in trips] == ["cost"]


# -- 4. no pattern outruns the clock -----------------------------------------------------------

@pytest.mark.parametrize("mapped", [False, True])
def test_a_catastrophic_pattern_stops_at_the_runtime_limit(mapped: bool, tmp_path: Path) -> None:
    text = ("a" * 3000 + "b\n") * 20
    source: Any = text
    if mapped:
        source = tmp_path / "as.txt"
        source.write_text(text)
    started = time.monotonic()
    result = run_task(lambda ctx: context_search(ctx, r"(a|aa)+$", max_hits=10), source,
                      GuardConfig(max_runtime_seconds=0.5))
    assert result["status"] == "partial" and "RuntimeLimitError" in result["error"]
    assert time.monotonic() - started < 0.5 + 0.5


def test_an_alternation_finds_its_first_hit_before_scanning_for_an_absent_literal(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"x ERROR early\n" + b"INFO fine\n" * 1_000_000)
    with open_context(path) as ctx:
        hit = context_search(ctx, "ERROR|NOSUCHTHING", max_hits=1)
        access = ctx.accesses[-1]
    assert hit[0].start == 2
    assert access.end == 7  # the scan stopped at the hit; the absent literal was looked for in one window only


# -- 5. a hard stop for code that cannot be interrupted -------------------------------------------

def test_run_py_ends_a_task_stuck_in_c_by_the_limit_plus_two_seconds(
        llm: LoopbackServer, tmp_path: Path, stuck_task: str, child_env: Callable[..., dict[str, str]]) -> None:
    trace = tmp_path / "t.jsonl"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(ROOT / "examples" / "server.log"), "--task",
                           stuck_task, "--timeout", "0.5", "--no-cache", "--trace", str(trace)],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    run_started = events[0]["ts"]
    assert proc.returncode == 3, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "partial" and "killed" in result["error"]
    assert result["result"] == {"seen": ["ok"]}  # published up to its last subcall
    assert result["budget_summary"]["total_calls"] == 2 and result["budget_summary"]["total_cost_usd"] > 0
    assert events[-1]["event"] == "run_end" and events[-2]["event"] == "guard_trip"
    assert events[-1]["ts"] - run_started < 0.5 + 2.0
    assert elapsed < 0.5 + 2.0 + 4.0  # plus the interpreter's start and imports: 2-3 s on a busy 2-core machine


def test_a_task_whose_module_starts_a_thread_is_still_killed_at_the_limit_with_the_real_elapsed_time(
        llm: LoopbackServer, tmp_path: Path, cli: Callable[..., Any]) -> None:
    """A thread started on import (as many libraries do) once made the command run the task in-process,
    with no hard stop; and the summary of a killed run said the elapsed time of its last checkpoint."""
    task = tmp_path / "threaded.py"
    task.write_text(
        "import re, threading, time\n"
        "from rlm.context_access import context_head\n"
        "from rlm.runtime import publish\n"
        "from rlm.subcalls import semantic_subcall\n\n"
        "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n\n"
        "def stuck(context):\n"
        "    seen = publish('seen', [])\n"
        "    seen.append(semantic_subcall('First.', context_head(context, 100)))\n"
        "    semantic_subcall('Second.', context_head(context, 50))\n"
        "    re.match(r'(a+)+$', 'a' * 64 + 'b')  # C code that holds the GIL\n")
    trace = tmp_path / "t.jsonl"
    ran = cli(str(ROOT / "examples" / "server.log"), "--task", f"{task}:stuck", "--timeout", "1", "--no-cache",
              "--trace", str(trace))
    ended = time.time()
    run_start = json.loads(trace.read_text().splitlines()[0])
    assert ran.code == 3 and "killed" in ran.result["error"] and ran.result["result"] == {"seen": ["ok"]}
    elapsed = ran.result["budget_summary"]["elapsed_seconds"]
    assert 1.0 + 1.0 <= elapsed < 1.0 + 1.0 + 1.0  # killed at the limit plus the grace period
    assert abs(elapsed - (ended - run_start["ts"])) < 0.5  # the run's real time up to the kill


def test_a_confirm_above_preview_of_a_stuck_task_ends_by_the_limit_with_the_json_result(
        llm: LoopbackServer, stuck_task: str, cli: Callable[..., Any]) -> None:
    started = time.monotonic()
    ran = cli(str(ROOT / "examples" / "server.log"), "--task", stuck_task, "--timeout", "1", "--no-cache",
              "--confirm-above", "0.0001")
    assert time.monotonic() - started < 1.0 + 1.0 + 1.5  # plus the child's start on a busy machine
    assert ran.code == 3 and ran.result["status"] == "partial"
    assert "preview" in ran.result["error"] and "killed" in ran.result["error"]
    assert llm.chat_requests == []  # the task itself never ran


def test_what_a_task_started_ends_with_the_run_so_a_pipeline_is_not_held_open(
        tmp_path: Path, child_env: Callable[..., dict[str, str]]) -> None:
    task = tmp_path / "spawner.py"
    task.write_text("import subprocess\n\n"
                    "def spawn(context):\n"
                    "    subprocess.Popen(['sleep', '60'])  # inherits stdout, and would hold the pipe a minute\n"
                    "    return 'started'\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), str(ROOT / "examples" / "server.log"), "--task",
                           f"{task}:spawn", "--dry-run", "--compact"], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=30)  # waits for the pipes to close
    assert proc.returncode == 0 and json.loads(proc.stdout)["result"] == "started", proc.stderr
    assert time.monotonic() - started < 6.0  # the interpreter, the fork server and the run, not 60 s


# -- 6. an abandoned call stops the server's work --------------------------------------------------

def test_a_call_abandoned_at_the_deadline_stops_the_generation(llm: LoopbackServer) -> None:
    llm.token_interval = 0.01
    llm.script(Reply("word " * 2000))  # 2,500 tokens: 25 s of generation
    result = run_task(ask, "text", GuardConfig(max_runtime_seconds=0.8, max_output_tokens=4000,
                                               max_tokens_per_subcall=8000))
    ended = time.monotonic()
    assert result["status"] == "partial" and "RuntimeLimitError" in result["error"]
    deadline = 0.3
    while time.monotonic() - ended < 2 and (not llm.generations or not llm.generations[-1].client_gone):
        time.sleep(0.02)
    generation = llm.generations[-1]
    assert generation.stream and generation.client_gone
    assert generation.ended - ended < deadline  # the server stopped within moments of the client leaving
    assert generation.tokens_generated < 200 < generation.tokens_planned
    summary = result["budget_summary"]
    assert summary["kept_reservations_usd"] > 0 and summary["reserved_in_flight_usd"] == 0


def test_a_stream_without_usage_is_billed_at_its_bound_and_one_cut_mid_answer_keeps_its_reservation(
        llm: LoopbackServer) -> None:
    llm.usage = False
    llm.script(Fault("cut", tokens=2), Reply("fine"))
    result = run_task(ask, "text", GuardConfig(model="gpt-4o-mini"))
    s = result["budget_summary"]
    assert result["result"] == "fine" and s["retries"] == 1 and s["usage_missing"] == 1
    assert s["kept_reservations_usd"] > 0  # the broken attempt
    assert s["total_cost_usd"] == pytest.approx(s["kept_reservations_usd"] + float(
        GuardConfig(model="gpt-4o-mini").pricing().cost(s["input_tokens"], len("fine") + 4)))


def test_a_server_that_refuses_stream_options_or_ignores_stream_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with LoopbackServer(refuse_stream_options=True, default="a") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = run_task(lambda c: [ask(c), ask(c)], "text")
        assert result["result"] == ["a", "a"]
        bodies = [r.body for r in server.chat_requests]
        assert "stream_options" in bodies[0] and all("stream_options" not in b for b in bodies[1:])
        assert len(bodies) == 3 and result["budget_summary"]["usage_missing"] == 2
    with LoopbackServer(streaming=False, default="whole") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = run_task(ask, "text")
        assert result["result"] == "whole" and result["budget_summary"]["usage_missing"] == 0


def test_every_request_asks_to_stream_with_usage(llm: LoopbackServer) -> None:
    run_task(ask, "text")
    body = llm.chat_requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


# -- 7. retries follow the SDK's rules ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, None), ({"retry-after": "3"}, 3.0), ({"retry-after": "1.5"}, 1.5), ({"retry-after-ms": "250"}, 0.25),
     ({"retry-after-ms": "250", "retry-after": "9"}, 0.25), ({"retry-after": "soon"}, None),
     ({"retry-after-ms": "nan"}, "nan"), ({"retry-after": "inf"}, math.inf),
     ({"retry-after": "1e999"}, MAX_RETRY_AFTER + 1), ({"retry-after": "-4"}, -4.0),
     ({"Retry-After": "2"}, 2.0), ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "past")],
)
def test_retry_after_is_parsed_as_the_sdk_parses_it(headers: dict[str, str], expected: Any) -> None:
    value = parse_retry_after(headers)
    if expected == "nan":
        assert value is not None and math.isnan(value)
    elif expected == "past":
        assert value is not None and value < 0
    else:
        assert value == expected


@pytest.mark.parametrize(
    ("headers", "delay_between"),
    [({"retry-after": "3"}, (3.0, 3.0)), ({"retry-after": "soon"}, (0.375, 0.5)), ({"retry-after-ms": "nan"}, (0.375, 0.5)),
     ({"retry-after": "-1"}, (0.375, 0.5)), ({"retry-after": "0"}, (0.375, 0.5)), ({"retry-after": "inf"}, (0.375, 0.5)),
     ({"retry-after": "120"}, (120.0, 120.0)), ({"retry-after": "121"}, (0.375, 0.5))],
)
def test_unusable_retry_after_falls_back_to_backoff(headers: dict[str, str], delay_between: tuple[float, float]) -> None:
    for jitter in (0.0, 0.999):
        assert delay_between[0] <= retry_delay(headers, 0, lambda j=jitter: j) <= delay_between[1]


def test_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay({}, n, lambda: 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


@pytest.mark.parametrize(
    ("status", "headers", "retry"),
    [(429, {}, True), (500, {}, True), (503, {}, True), (408, {}, True), (409, {}, True), (400, {}, False),
     (401, {}, False), (404, {}, False), (500, {"x-should-retry": "false"}, False),
     (400, {"x-should-retry": "true"}, True), (429, {"retry-after": "121"}, False), (None, {}, True)],
)
def test_which_failures_are_retried(status: int | None, headers: dict[str, str], retry: bool) -> None:
    assert should_retry(status, headers) is retry


@pytest.mark.parametrize("fault", [Fault.rate_limit(retry_after="soon"), Fault.rate_limit(retry_after_ms="nan"),
                                   Fault.rate_limit(retry_after=-3)])
def test_a_malformed_retry_after_is_a_routine_retry(llm: LoopbackServer, fault: Fault) -> None:
    llm.script(fault, Reply("after the retry"))
    result = run_task(ask, "text")
    assert result["result"] == "after the retry" and result["budget_summary"]["retries"] == 1


def test_x_should_retry_false_is_obeyed(llm: LoopbackServer) -> None:
    llm.script(Fault("status", status=503, headers=(("x-should-retry", "false"),)), Reply("never"))
    result = run_task(ask, "text")
    assert result["status"] == "error" and "SubcallError" in result["error"]
    assert len(llm.chat_requests) == 1


# -- 8. the model is the one the server serves -------------------------------------------------------

def test_an_unset_model_is_the_servers_only_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_PRICE_INPUT", "0")
    monkeypatch.setenv("RLM_PRICE_OUTPUT", "0")
    with LoopbackServer(models=["llama3.1:8b"]) as server:
        result = run_task(ask, "text", GuardConfig(base_url=server.base_url))
        assert result["status"] == "completed"
        assert result["budget_summary"]["model"] == "llama3.1:8b"
        assert server.chat_requests[0].body["model"] == "llama3.1:8b"


def test_several_served_models_are_listed_and_none_is_guessed() -> None:
    with LoopbackServer(models=["qwen2.5", "llama3.1"]) as server:
        result = run_task(ask, "text", GuardConfig(base_url=server.base_url, **PRICED))
        assert result["status"] == "error" and "serves 2 models (qwen2.5, llama3.1)" in result["error"]
        assert server.chat_requests == []


def test_a_served_model_with_no_known_price_needs_explicit_prices() -> None:
    with LoopbackServer(models=["mystery-7b"]) as server:
        result = run_task(ask, "text", GuardConfig(base_url=server.base_url))
        assert "No price known for model 'mystery-7b'" in result["error"] and "RLM_PRICE_INPUT" in result["error"]


def test_openai_without_a_model_means_gpt_4o_mini_and_no_lookup() -> None:
    assert GuardConfig().model == "gpt-4o-mini"


def test_an_unknown_model_names_what_the_server_serves(llm: LoopbackServer) -> None:
    llm.script(Fault("status", status=404, message="model 'gtp-4' not found"))
    llm.models = ["gpt-4o-mini", "llama3.1"]
    result = run_task(ask, "text", GuardConfig(model="gpt-4o"))
    assert "no model 'gpt-4o' (404)" in result["error"] and "gpt-4o-mini, llama3.1" in result["error"]


# -- errors carry their facts -----------------------------------------------------------------------

def test_errors_carry_their_facts_and_their_cause(llm: LoopbackServer) -> None:
    with pytest.raises(CostLimitError) as cost, init_guards(GuardConfig(max_cost=1e-9)):
        semantic_subcall("q", "c")
    assert cost.value.budget_usd == 1e-9 and cost.value.needed_usd > 1e-9
    assert cost.value.remaining_usd == pytest.approx(1e-9)
    llm.script(Fault.unauthorized())
    with pytest.raises(SubcallError) as auth:
        semantic_subcall("q", "c")
    assert auth.value.status_code == 401 and auth.value.retryable is False
    assert auth.value.request_id and auth.value.request_id.startswith("req_loopback")
    assert isinstance(auth.value.__cause__, openai.AuthenticationError)
    with pytest.raises(RuntimeLimitError) as late, init_guards(GuardConfig(max_runtime_seconds=0.01)):
        time.sleep(0.02)
        context_search("text", "t")
    assert late.value.limit_seconds == 0.01
    with pytest.raises(ConfigError, match="api_key must be a string"):
        GuardConfig(api_key=123)  # type: ignore[arg-type]


def test_a_stream_that_ends_without_a_finish_reason_is_not_an_answer(llm: LoopbackServer) -> None:
    """llama.cpp's server answers a request it cannot serve with an empty stream and [DONE]: not an answer."""
    llm.script(Reply("", finish_reason=None), Reply("the real answer"))
    result = run_task(ask, "text", GuardConfig(cache=True))
    s = result["budget_summary"]
    assert result["result"] == "the real answer" and s["retries"] == 1 and s["kept_reservations_usd"] > 0
    llm.responder = lambda body: Reply("", finish_reason=None)
    failed = run_task(ask, "other text", GuardConfig(max_retries=1))
    assert failed["status"] == "error" and "no answer and no finish reason" in failed["error"]
    assert "context window" in failed["error"]


# -- secrets -----------------------------------------------------------------------------------

def test_credentials_in_the_base_url_appear_nowhere(llm: LoopbackServer, tmp_path: Path) -> None:
    from rlm.report import render_report

    url = llm.base_url.replace("http://", "http://admin:hunter2-secret@")
    llm.script(Fault("status", status=400))
    trace = tmp_path / "t.jsonl"
    config = GuardConfig(base_url=url, api_key="key-given-in-code-0123", model="gpt-4o-mini", max_retries=0,
                         trace_path=str(trace))
    result = run_task(lambda ctx: semantic_subcall("q", context_head(ctx, 10)), "some text", config)
    assert result["status"] == "error" and result["error"]
    render_report(trace, tmp_path / "r.html")
    shown = json.dumps(result) + trace.read_text() + (tmp_path / "r.html").read_text()
    for secret in ("hunter2-secret", "key-given-in-code-0123"):
        assert secret not in shown
    assert "admin:" not in shown


def test_a_key_the_model_echoes_is_not_stored_in_the_cache(llm: LoopbackServer, tmp_path: Path) -> None:
    key = "sk-test-SECRETKEY-0123456789abcdef"  # the llm fixture's OPENAI_API_KEY
    llm.responder = lambda body: Reply(f"The document contains the key {key}.")
    config = GuardConfig(cache=True, cache_path=str(tmp_path / "c.sqlite3"))
    run_task(lambda ctx: semantic_subcall("Any keys?", context_head(ctx, 10)), "some text", config)
    stored = (tmp_path / "c.sqlite3").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("c.sqlite3-*"))
    assert key.encode() not in stored and b"SECRETKEY" not in stored


# -- a server that ignores the output cap ---------------------------------------------------------

@pytest.mark.parametrize("usage", [True, False])
def test_a_stream_past_the_output_cap_is_cut_and_billed_at_what_arrived(llm: LoopbackServer, usage: bool) -> None:
    from rlm._budget import MAX_BYTES_PER_TOKEN

    flood = "word " * 25_000  # 125,000 bytes, far past a 64-token cap
    # completion_tokens set: the loopback ignores the cap (and reports that count when it reports usage)
    llm.responder = lambda body: Reply(flood, completion_tokens=25_000, usage=usage, token_interval=0.0001)
    config = GuardConfig(max_output_tokens=64, price_input_per_mtok=0, price_output_per_mtok=1.0)
    result = run_task(lambda ctx: semantic_subcall("q", context_head(ctx, 10)), "some text", config)
    s = result["budget_summary"]
    assert result["status"] == "completed" and s["output_cap_breaches"] == 1
    received = len(result["result"].encode())
    assert 64 * MAX_BYTES_PER_TOKEN < received < 64 * MAX_BYTES_PER_TOKEN + 200  # reading stopped at the bound
    assert s["output_tokens"] >= received  # bytes bound the tokens: never less than what arrived
    assert s["overrun_usd"] > 0 and s["total_cost_usd"] >= received * 1e-6
    for _ in range(50):  # the server saw the client leave and stopped generating
        if llm.generations and llm.generations[-1].client_gone:
            break
        time.sleep(0.02)
    assert llm.generations[-1].tokens_generated < 25_000 / 2


# -- a log truncated while it is read ------------------------------------------------------------

def test_a_log_truncated_while_it_is_read_is_named_and_what_was_published_is_kept(
        llm: LoopbackServer, cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(f"2026-01-01 10:00:{i % 60:02d} INFO line {i}\n" for i in range(4000)))  # ~150 KB
    task = tmp_path / "shrink.py"
    task.write_text(
        "from rlm.context_access import context_head, context_tail\n"
        "from rlm.runtime import publish\n"
        "from rlm.subcalls import semantic_subcall\n\n"
        "def shrink(context):\n"
        "    seen = publish('seen', [])\n"
        "    seen.append(semantic_subcall('First.', context_head(context, 100)))\n"
        "    semantic_subcall('Second.', context_head(context, 50))  # its checkpoint carries what was published\n"
        f"    open({str(log)!r}, 'r+b').truncate(0)  # logrotate's copytruncate, mid-read\n"
        "    seen.append(str(context_tail(context, 100)))  # mapped pages past the new end of the file\n"
        "    return seen\n")
    ran = cli(str(log), "--task", f"{task}:shrink", "--no-cache")
    assert ran.code == 3 and ran.result["status"] == "partial"
    assert str(log) in ran.result["error"] and "truncated while it was read" in ran.result["error"]
    assert ran.result["result"] == {"seen": ["ok"]}
    assert ran.result["budget_summary"]["total_calls"] == 2


def test_a_refused_connection_to_this_machine_fails_at_once_saying_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GuardConfig(base_url=f"http://127.0.0.1:{port}/v1", model="gpt-4o-mini", api_key="sk-x-0123456789")
    started = time.monotonic()
    result = run_task(lambda ctx: parallel_map(lambda i: semantic_subcall("q", context_head(ctx, 5)), range(8)),
                      "some text", config)
    assert time.monotonic() - started < 3.0  # not 15 s of retries
    assert result["status"] == "error" and "Nothing answers at http://127.0.0.1" in result["error"]
    assert result["budget_summary"]["retries"] == 0 and result["budget_summary"]["total_cost_usd"] == 0
