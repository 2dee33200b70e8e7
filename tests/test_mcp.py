"""`rlm mcp`: the real server in a subprocess, driven by the official MCP client over stdio, with the loopback
model server behind run_task. One server serves most tests of this module; the session-budget and the
disconnect tests start their own, since they spend the session or end it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

pytest.importorskip("mcp", reason='the MCP tests need pip install "rlm[mcp]" (requirements-dev.txt has it)')
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from rlm.loopback import LoopbackServer, Reply
from rlm.trace import read_runs
from tests.support import ROOT, Cli

KEY = "sk-test-MCPSERVERKEY-0123456789abcdef"  # the servers' API key: no result, trace or log may show it
CAP = 3000  # the servers here run with --max-result-chars 3000, so the bounds are reached with small files
TOOLS = {"list_tasks", "describe", "search", "read", "check_task", "run_task", "budget"}

TASKS = '''\
import os

from rlm.context_access import context_line, context_search
from rlm.runtime import publish
from rlm.subcalls import semantic_subcall


def label_errors(context, limit: int = 3):
    """Label the first ERROR lines, one subcall each."""
    labels = publish("labels", [])
    for m in context_search(context, "ERROR", max_hits=limit):
        labels.append(semantic_subcall("Label this log line in one word.", context_line(context, m.start)))
    return {"labels": labels, "count": len(labels)}


def leak(context):
    """Fails with the API key in its message."""
    raise ValueError("the key is " + os.environ.get("OPENAI_API_KEY", ""))


def big(context, n: int = 2000):
    """A result far over any cap."""
    return {"items": ["item %d" % i for i in range(n)]}
'''


@dataclass
class Called:
    text: str
    is_error: bool
    at: float = 0.0  # when the result came (time.monotonic)

    @property
    def data(self) -> dict[str, Any]:
        assert not self.is_error, self.text
        return json.loads(self.text)  # type: ignore[no-any-return]


class Mcp:
    """A client session with the real server over stdio, driven from plain tests through an anyio portal."""

    def __init__(self, portal: BlockingPortal, session: ClientSession) -> None:
        self.portal = portal
        self.session = session

    async def _call(self, tool: str, args: dict[str, Any]) -> Called:
        result = await self.session.call_tool(tool, args)
        texts = [c.text for c in result.content if c.type == "text"]
        assert len(texts) == 1
        return Called(texts[0], bool(result.is_error))

    def call(self, tool: str, **args: Any) -> Called:
        return self.portal.call(self._call, tool, args)

    def together(self, *calls: tuple[str, dict[str, Any]]) -> list[Called]:
        """The calls sent at once, on one session; their results in the order given, each with when it came."""
        async def run() -> list[Called]:
            results: list[Called | None] = [None] * len(calls)

            async def one(i: int, tool: str, args: dict[str, Any]) -> None:
                results[i] = await self._call(tool, args)
                results[i].at = time.monotonic()  # type: ignore[union-attr]

            async with anyio.create_task_group() as group:
                for i, (tool, args) in enumerate(calls):
                    group.start_soon(one, i, tool, args)
            return [r for r in results if r is not None]

        return self.portal.call(run)

    def resource(self, uri: str) -> str:
        async def read() -> str:
            result = await self.session.read_resource(uri)
            return "".join(getattr(c, "text", "") for c in result.contents)

        return self.portal.call(read)

    def tool_names(self) -> set[str]:
        async def names() -> set[str]:
            return {t.name for t in (await self.session.list_tools()).tools}

        return self.portal.call(names)


def server_env(llm: LoopbackServer, cache: Path, **extra: str) -> dict[str, str]:
    """What the server process sees: this tree importable, the loopback model, flat prices, a private cache."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(cache)),
            "PYTHONPATH": str(ROOT), "RLM_CACHE_DIR": str(cache), "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": KEY, "RLM_PRICE_INPUT": "0.15", "RLM_PRICE_OUTPUT": "0.6",
            "RLM_TOKEN_COUNTING": "bytes", **extra}


@contextlib.contextmanager
def serve(args: list[str], *, env: dict[str, str], cwd: Path, errlog: Path) -> Iterator[Mcp]:
    """``python -m rlm mcp ARGS`` in ``cwd``, connected; its stderr goes to ``errlog``."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "rlm", "mcp", *args], env=env, cwd=str(cwd))

    @contextlib.asynccontextmanager
    async def session() -> AsyncIterator[ClientSession]:
        with open(errlog, "a", encoding="utf-8") as err:
            async with stdio_client(params, errlog=err) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                yield s

    with start_blocking_portal() as portal, portal.wrap_async_context_manager(session()) as s:
        yield Mcp(portal, s)


@dataclass
class Served:
    mcp: Mcp
    root: Path
    outside: Path
    traces: Path
    llm: LoopbackServer
    errlog: Path


def write_log(path: Path, lines: int, *, every: int = 50) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, lines + 1):
            level = "ERROR database refused" if i % every == 0 else "INFO request ok"
            f.write(f"2026-01-01 10:{i // 60 % 60:02d}:{i % 60:02d} {level} id={i}\n")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("mcp")
    root, outside, traces = base / "root", base / "outside", base / "traces"
    root.mkdir()
    outside.mkdir()
    write_log(root / "app.log", 2000)
    (root / "wide.log").write_text("x" * 5000 + " NEEDLE " + "y" * 5000 + "\nshort NEEDLE line\n", encoding="utf-8")
    (root / "many").mkdir()
    for i in range(60):
        (root / "many" / f"part-{i:02d}.log").write_text(f"file {i} ERROR once\n", encoding="utf-8")
    (root / "tasks_here.py").write_text(TASKS, encoding="utf-8")
    (outside / "secret.log").write_text("SECRET ERROR outside the roots\n", encoding="utf-8")
    (outside / "evil.py").write_text(TASKS, encoding="utf-8")
    (root / "link.log").symlink_to(outside / "secret.log")
    (root / "linkdir").symlink_to(outside)
    (root / "mixed").mkdir()
    (root / "mixed" / "fine.log").write_text("fine ERROR\n", encoding="utf-8")
    (root / "mixed" / "sneaky.log").symlink_to(outside / "secret.log")
    errlog = base / "stderr.txt"
    with LoopbackServer() as llm:
        llm.responder = lambda body: Reply("db", latency=0.05)
        env = server_env(llm, base / "cache")
        args = ["--root", str(root), "--cost", "0.5", "--timeout", "20", "--max-result-chars", str(CAP),
                "--trace-dir", str(traces)]
        with serve(args, env=env, cwd=root, errlog=errlog) as mcp:
            yield Served(mcp, root, outside, traces, llm, errlog)
    log = errlog.read_text(encoding="utf-8")
    assert "Traceback" not in log and KEY not in log, log


def test_the_seven_tools_are_served_under_their_contract_names(served: Served) -> None:
    assert served.mcp.tool_names() == TOOLS


def test_describe_gives_size_unit_files_and_lines(served: Served) -> None:
    one = served.mcp.call("describe", path="app.log").data
    assert one["size"] == (served.root / "app.log").stat().st_size and one["unit"] == "bytes"
    assert one["files"] == 1 and one["lines"] == 2000 and one["lines_exact"] is True
    assert one["first_lines"][0].endswith("INFO request ok id=1")
    folder = served.mcp.call("describe", path="many").data
    assert folder["files"] == 60 and folder["lines_exact"] is False and 54 <= folder["lines"] <= 66
    assert len(folder["file_list"]) == 20 and "40 more files" in folder["file_list_cut"]


def test_search_gives_file_line_span_and_the_lines_text(served: Served) -> None:
    found = served.mcp.call("search", path="app.log", pattern=r"ERROR \w+", max_hits=3).data
    assert [h["line"] for h in found["hits"]] == [50, 100, 150]
    first = found["hits"][0]
    assert first["text"] == "2026-01-01 10:00:50 ERROR database refused id=50"
    raw = (served.root / "app.log").read_bytes()
    assert raw[first["span"][0]:first["span"][1]] == b"ERROR database"
    assert found["more"] is True and found["next_start"] == found["hits"][-1]["span"][1]


def test_a_search_goes_on_from_next_start_and_within_a_range(served: Served) -> None:
    first = served.mcp.call("search", path="app.log", pattern="ERROR", max_hits=2).data
    then = served.mcp.call("search", path="app.log", pattern="ERROR", max_hits=2, start=first["next_start"]).data
    assert [h["line"] for h in then["hits"]] == [150, 200]
    span = first["hits"][1]["span"]
    within = served.mcp.call("search", path="app.log", pattern="ERROR", max_hits=5, start=0, end=span[1]).data
    assert within["count"] == 2 and "more" not in within


def test_a_search_cut_at_the_cap_goes_on_from_the_last_hit_shown(served: Served) -> None:
    cut = served.mcp.call("search", path="app.log", pattern="ERROR|INFO", max_hits=200).data
    assert cut["cut"] is True and cut["more"] is True and 0 < cut["count"] == len(cut["hits"]) < 200
    assert cut["next_start"] == cut["hits"][-1]["span"][1]
    then = served.mcp.call("search", path="app.log", pattern="ERROR|INFO", max_hits=1, start=cut["next_start"]).data
    assert then["hits"][0]["line"] == cut["hits"][-1]["line"] + 1


def test_a_long_line_is_cut_with_the_match_in_view(served: Served) -> None:
    hits = served.mcp.call("search", path="wide.log", pattern="NEEDLE").data["hits"]
    assert "NEEDLE" in hits[0]["text"] and len(hits[0]["text"]) <= 245
    assert hits[1] == {"line": 2, "span": [10015, 10021], "text": "short NEEDLE line", "file": "wide.log"}


def test_read_returns_a_span_and_a_cut_read_says_where_to_read_on(served: Served) -> None:
    raw = (served.root / "app.log").read_bytes()
    small = served.mcp.call("read", path="app.log", start=100, end=160).data
    assert small["text"] == raw[100:160].decode() and "cut" not in small
    whole = served.mcp.call("read", path="app.log")
    data = whole.data
    assert len(whole.text) <= CAP and data["cut"] is True and data["start"] == 0
    assert data["text"] == raw[:data["end"]].decode() and data["next_start"] == data["end"]
    on = served.mcp.call("read", path="app.log", start=data["next_start"], end=data["next_start"] + 10).data
    assert on["text"] == raw[data["end"]:data["end"] + 10].decode()


@pytest.mark.parametrize(("tool", "args"), [
    ("search", {"path": "app.log", "pattern": "ERROR|INFO", "max_hits": 200}),
    ("search", {"path": "wide.log", "pattern": "[xy]", "max_hits": 200}),
    ("read", {"path": "app.log", "start": 0, "end": 10**9}),
    ("read", {"path": "wide.log", "start": 0}),
    ("describe", {"path": "many"}),
    ("list_tasks", {}),
    ("run_task", {"path": "app.log", "task": "tasks_here.py:big"}),
])
def test_every_result_stays_under_the_cap_and_says_how_to_see_the_rest(
        served: Served, tool: str, args: dict[str, Any]) -> None:
    called = served.mcp.call(tool, **args)
    assert not called.is_error, called.text
    assert len(called.text) <= CAP
    data = json.loads(called.text)
    if tool != "list_tasks":
        notes = " ".join(str(data.get(k, "")) for k in ("cut_note", "result_cut", "file_list_cut", "more_note"))
        assert any(word in notes for word in ("start=", "narrower", "sub-folder", "rlm://runs/")), data


@pytest.mark.parametrize("path", [
    "../outside/secret.log",  # `..`
    "{outside}/secret.log",  # an absolute path elsewhere
    "link.log",  # a symlink under the root to a file outside
    "linkdir/secret.log",  # through a symlinked folder
    "linkdir",
    "many/../../outside/secret.log",
])
@pytest.mark.parametrize("tool", ["describe", "search", "read", "run_task"])
def test_nothing_outside_the_roots_is_read(served: Served, path: str, tool: str) -> None:
    path = path.format(outside=served.outside)
    args: dict[str, Any] = {"path": path}
    if tool == "search":
        args["pattern"] = "ERROR"
    if tool == "run_task":
        args["task"] = "find_errors_in_log"
    called = served.mcp.call(tool, **args)
    assert called.is_error and "outside the server's roots" in called.text, called.text
    assert "SECRET" not in called.text and "\n" not in called.text


@pytest.mark.parametrize("tool", ["describe", "search", "read", "run_task"])
def test_a_link_in_a_folder_that_leads_out_of_the_roots_is_left_out(served: Served, tool: str) -> None:
    args: dict[str, Any] = {"search": {"pattern": "ERROR"}, "run_task": {"task": "find_errors_in_log"}}
    called = served.mcp.call(tool, path="mixed", **args.get(tool, {}))
    assert not called.is_error and "SECRET" not in called.text, called.text
    if tool == "describe":
        assert called.data["files"] == 1 and "sneaky.log" in called.data["skipped"][0]


@pytest.mark.parametrize(("tool", "args"), [
    ("check_task", {"file": "{outside}/evil.py"}),
    ("check_task", {"file": "linkdir/evil.py:leak"}),
    ("run_task", {"path": "app.log", "task": "{outside}/evil.py:label_errors"}),
    ("run_task", {"path": "app.log", "task": "../outside/evil.py:label_errors"}),
])
def test_task_files_must_lie_under_a_root(served: Served, tool: str, args: dict[str, Any]) -> None:
    args = {k: v.format(outside=served.outside) for k, v in args.items()}
    called = served.mcp.call(tool, **args)
    assert called.is_error and "outside the server's roots" in called.text


@pytest.mark.parametrize(("tool", "args", "says"), [
    ("search", {"path": "app.log", "pattern": "("}, "Invalid search pattern"),
    ("search", {"path": "app.log", "pattern": "x", "max_hits": 0}, "max_hits must be a whole number between 1"),
    ("search", {"path": "app.log", "pattern": "x", "max_hits": 201}, "between 1 and 200"),
    ("search", {"path": "app.log", "pattern": "x", "max_hits": "lots"}, "max_hits"),
    ("search", {"path": "app.log"}, "pattern"),
    ("read", {"path": "app.log", "start": -1}, "start must be a whole number 0 or more"),
    ("read", {"path": "app.log", "start": 10, "end": 5}, "end must be"),
    ("read", {"path": "no-such.log"}, "No such file"),
    ("run_task", {"path": "app.log", "task": "no_such_task"}, "Unknown task"),
    ("run_task", {"path": "app.log", "task": "tasks_here.py:label_errors", "params": {"limit": "x"}},
     "must be int"),
    ("run_task", {"path": "app.log", "cost": -1}, "cost must be a number above 0"),
    ("run_task", {"path": "app.log", "timeout": 0}, "timeout must be a number above 0"),
])
def test_a_bad_call_is_a_one_line_tool_error(served: Served, tool: str, args: dict[str, Any], says: str) -> None:
    called = served.mcp.call(tool, **args)
    assert called.is_error and says in called.text, called.text
    assert "\n" not in called.text and "Traceback" not in called.text


def test_list_tasks_names_the_built_in_tasks_with_their_parameters(served: Served) -> None:
    tasks = {t["name"]: t for t in served.mcp.call("list_tasks").data["tasks"]}
    assert {"analyze_document", "find_errors_in_log", "find_answer"} <= set(tasks)
    assert "question" in tasks["find_answer"]["parameters"] and tasks["find_answer"]["source"] == "built-in"


def test_check_task_reports_a_task_that_breaks_a_rule(served: Served) -> None:
    (served.root / "breaks.py").write_text(
        "from rlm.subcalls import semantic_subcall\n\n"
        "def whole(context):\n"
        "    return {'a': semantic_subcall('Summarize.', f'{context}')}\n", encoding="utf-8")
    checked = served.mcp.call("check_task", file="breaks.py").data
    assert checked["clean"] is False and checked["findings"][0]["rule"] == "rule1"
    assert served.mcp.call("check_task", file="tasks_here.py:label_errors").data["clean"] is True


def test_run_task_returns_the_result_its_budget_summary_and_a_run_whose_trace_and_report_are_resources(
        served: Served) -> None:
    ran = served.mcp.call("run_task", path="app.log", task="tasks_here.py:label_errors", params={"limit": 2},
                          cost=0.05, timeout=10).data
    assert ran["status"] == "completed" and ran["result"] == {"labels": ["db", "db"], "count": 2}
    summary = ran["budget_summary"]
    assert summary["cost_budget_usd"] == 0.05 and summary["total_calls"] + summary["cache"]["hits"] == 2
    assert summary["runtime_limit_seconds"] == 10
    trace = served.mcp.resource(ran["resources"]["trace"])
    events = [json.loads(line) for line in trace.splitlines()]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"
    assert {e["run_id"] for e in events} == {ran["run_id"]}  # the trace's own run id
    assert (served.traces / f"{ran['run_id']}.jsonl").is_file()
    report = served.mcp.resource(ran["resources"]["report"])
    assert report.startswith("<!DOCTYPE html>") and "label_errors" in report


def test_the_server_writes_nothing_under_its_roots(served: Served) -> None:
    ran = served.mcp.call("run_task", path="many", task="tasks_here.py:big", params={"n": 3}).data
    assert ran["status"] == "completed" and served.mcp.resource(ran["resources"]["report"])
    written = [p for p in served.root.rglob("*") if p.name == "__pycache__" or p.suffix in (".pyc", ".jsonl", ".html")]
    assert written == [] and (served.traces / f"{ran['run_id']}.html").is_file()


def test_a_dry_run_spends_nothing_and_reports_the_worst_case(served: Served) -> None:
    before = served.mcp.call("budget").data["spent_usd"]
    ran = served.mcp.call("run_task", path="app.log", task="tasks_here.py:label_errors", dry_run=True).data
    assert ran["budget_summary"]["total_cost_usd"] == 0 and ran["budget_summary"]["dry_run"]["subcalls"] == 3
    assert served.mcp.call("budget").data["spent_usd"] == before


def test_the_api_key_never_reaches_a_result(served: Served) -> None:
    ran = served.mcp.call("run_task", path="app.log", task="tasks_here.py:leak")
    assert ran.data["status"] == "error" and "the key is" in ran.data["error"]
    assert KEY not in ran.text and KEY not in served.mcp.resource(ran.data["resources"]["trace"])


def test_an_unknown_run_is_not_a_resource(served: Served) -> None:
    from mcp.shared.exceptions import MCPError

    for uri in ("rlm://runs/0123456789ab/trace", "rlm://runs/..%2F..%2Fetc/trace"):
        with pytest.raises(MCPError) as raised:
            served.mcp.resource(uri)
        assert "\n" not in str(raised.value)


def test_tool_calls_are_served_concurrently(served: Served) -> None:
    served.llm.responder = lambda body: Reply("db", latency=1.0)
    try:
        results = served.mcp.together(
            ("run_task", {"path": "many", "task": "tasks_here.py:label_errors", "params": {"limit": 2},
                          "cost": 0.01}),
            *[("search", {"path": "app.log", "pattern": f"id={i}\\b", "max_hits": 1}) for i in (7, 77, 777)],
            ("read", {"path": "app.log", "start": 0, "end": 10}),
            ("describe", {"path": "many"}),
            ("budget", {}),
        )
    finally:
        served.llm.responder = lambda body: Reply("db", latency=0.05)
    assert all(not r.is_error for r in results), [r.text for r in results if r.is_error]
    assert [r.data["hits"][0]["line"] for r in results[1:4]] == [7, 77, 777]
    assert results[4].data["text"] == "2026-01-01" and results[5].data["files"] == 60
    assert results[0].data["result"]["count"] == 2
    # The run's model calls take a second each: every other call was answered while it was in flight.
    assert max(r.at for r in results[1:]) < results[0].at - 1.0


def test_the_session_budget_bounds_every_run_together(tmp_path: Path) -> None:
    budget = 0.05
    with LoopbackServer() as llm:
        # At $50 per million tokens a call costs about $0.006, and $0.027 at worst (its reservation).
        llm.responder = lambda body: Reply("db", latency=0.1)
        env = server_env(llm, tmp_path / "cache", RLM_PRICE_INPUT="50", RLM_PRICE_OUTPUT="50")
        write_log(tmp_path / "app.log", 500)
        (tmp_path / "tasks_here.py").write_text(TASKS, encoding="utf-8")
        args = ["--cost", str(budget), "--output-tokens", "20", "--no-cache", "--trace-dir", str(tmp_path / "traces")]
        with serve(args, env=env, cwd=tmp_path, errlog=tmp_path / "stderr.txt") as mcp:
            run = {"path": "app.log", "task": "tasks_here.py:label_errors"}
            # Each run reserves all the session has left: of two sent at once, one runs, the other is refused.
            both = mcp.together(("run_task", run), ("run_task", run))
            (refused,) = [r for r in both if r.is_error]
            (first,) = [r.data for r in both if not r.is_error]
            assert "session budget" in refused.text and "reserved by runs in flight" in refused.text
            assert first["status"] == "completed" and first["budget_summary"]["cost_budget_usd"] == budget
            costs = [first["budget_summary"]["total_cost_usd"]]
            statuses = []
            for _ in range(4):  # then one run after another until the session is spent
                called = mcp.call("run_task", **run)
                if called.is_error:
                    assert "session budget" in called.text, called.text
                    statuses.append("refused")
                    break
                summary = called.data["budget_summary"]
                assert summary["cost_budget_usd"] == pytest.approx(budget - sum(costs))  # what the session had left
                costs.append(summary["total_cost_usd"])
                statuses.append(called.data["status"])
                if statuses[-1] == "partial":
                    assert summary["guard_trips"] == ["cost"]
                    break
            session = mcp.call("budget").data
    assert statuses[-1] in ("partial", "refused")
    assert session["spent_usd"] == pytest.approx(sum(costs)) and session["spent_usd"] <= budget
    assert session["reserved_usd"] == 0 and session["runs_in_flight"] == 0
    recorded = [r.end["budget_summary"]["total_cost_usd"] for f in (tmp_path / "traces").glob("*.jsonl")
                for r in read_runs(f) if r.end is not None]
    assert sum(recorded) == pytest.approx(sum(costs))


def test_a_client_that_disconnects_mid_run_stops_the_run_and_its_spend_is_kept_and_traced(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    with LoopbackServer() as llm:
        llm.script(Reply("db"), Reply("slow", latency=15.0))
        env = server_env(llm, tmp_path / "cache")
        write_log(tmp_path / "app.log", 200)
        (tmp_path / "tasks_here.py").write_text(TASKS, encoding="utf-8")
        args = ["--cost", "0.2", "--no-cache", "--trace-dir", str(traces), "--timeout", "30"]
        with serve(args, env=env, cwd=tmp_path, errlog=tmp_path / "stderr.txt") as mcp:

            async def start_and_leave() -> None:
                with anyio.move_on_after(20):
                    async with anyio.create_task_group() as group:
                        group.start_soon(mcp.session.call_tool, "run_task",
                                         {"path": "app.log", "task": "tasks_here.py:label_errors"})
                        while len(llm.chat_requests) < 2:  # the second call is in flight, for 15 s
                            await anyio.sleep(0.02)
                        await anyio.sleep(0.2)
                        group.cancel_scope.cancel()

            mcp.portal.call(start_and_leave)
            left = time.monotonic()
        gone = time.monotonic() - left  # leaving closes the server's stdin, and waits for it to exit
        requests = len(llm.chat_requests)
    assert gone < 4 and requests == 2
    (run,) = [r for f in traces.glob("*.jsonl") for r in read_runs(f)]
    assert run.end is not None and run.end["status"] == "partial" and "client cancelled the call or went away" in run.end["error"]
    summary = run.end["budget_summary"]
    assert "interrupt" in summary["guard_trips"] and summary["total_calls"] == 1
    assert summary["kept_reservations_usd"] > 0 and summary["total_cost_usd"] > summary["kept_reservations_usd"]
    assert run.end["result"] == {"labels": ["db"]}


def test_a_search_stops_at_the_timeout_and_says_how_to_narrow_it(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(("a" * 40 + "\n") * 20000, encoding="utf-8")
    with LoopbackServer() as llm, serve(["--timeout", "1"], env=server_env(llm, tmp_path / "cache"), cwd=tmp_path,
                                        errlog=tmp_path / "stderr.txt") as mcp:
        started = time.monotonic()
        # A backreference and a lookahead: only the backtracking engine runs it, for far longer than a second.
        called = mcp.call("search", path="a.log", pattern=r"(a|aa)+\1(?=c)d")
        took = time.monotonic() - started
    assert called.is_error and "1s limit (--timeout)" in called.text and "start/end" in called.text
    assert took < 10  # stopped by the limit: unbounded, this pattern would run for hours


def test_importing_rlm_or_its_command_line_does_not_import_the_mcp_sdk() -> None:
    code = "import sys, rlm, rlm.cli; print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rlm_mcp_without_the_sdk_says_in_one_line_how_to_install_it(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` now raises ImportError, as when it is absent
    ran = cli("mcp")
    assert ran.code == 2 and ran.stderr.strip().count("\n") == 0
    assert 'pip install "rlm[mcp]"' in ran.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--root", "no-such-folder"], "--root no-such-folder is not a directory"),
    (["--cost", "-1"], "--cost must be a number above 0"),
    (["--max-result-chars", "10"], "at least 1000"),
    (["--bogus"], "unrecognized arguments"),
])
def test_rlm_mcp_refuses_bad_flags_in_one_line(cli: Cli, tmp_path: Path, args: list[str], says: str) -> None:
    ran = cli("mcp", *args, cwd=tmp_path)
    assert ran.code == 2 and says in ran.stderr and ran.stderr.strip().count("\n") == 0


def test_the_project_mcp_json_starts_this_server_with_flags_it_accepts() -> None:
    from rlm.mcp_server import _parser

    server = json.loads((ROOT / ".mcp.json").read_text(encoding="utf-8"))["mcpServers"]["rlm"]
    assert server["type"] == "stdio" and server["command"] == "python" and server["args"][:2] == ["run.py", "mcp"]
    _parser().parse_args(server["args"][2:])


def test_the_docs_and_the_claude_policy_name_every_tool() -> None:
    from rlm.mcp_server import TOOL_NAMES

    assert set(TOOL_NAMES) == TOOLS
    docs = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8")
    policy = (ROOT / "claude.md").read_text(encoding="utf-8")
    command = (ROOT / ".claude" / "commands" / "rlm-task.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in docs for name in TOOLS) and "claude mcp add" in docs
    assert all(f"mcp__rlm__{name}" in policy for name in TOOLS - {"list_tasks"})
    assert all(f"mcp__rlm__{name}" in command for name in ("describe", "search", "read", "check_task", "run_task"))


def test_rlm_mcp_help_names_the_tools_and_the_options(cli: Cli) -> None:
    ran = cli("mcp", "--help")
    shown = " ".join(ran.stdout.split())  # argparse wraps the description
    assert ran.code == 0 and "list_tasks, describe, search, read, check_task, run_task, budget" in shown
    assert all(flag in ran.stdout for flag in ("--root", "--cost", "--timeout", "--max-result-chars"))
