"""run.py end to end, in a subprocess, against the loopback server."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rlm.loopback import LoopbackServer, Reply
from tests.conftest import ROOT, TEST_KEY

RUN = str(ROOT / "run.py")
LOG = str(ROOT / "examples" / "server.log")
DOC = str(ROOT / "examples" / "document.txt")


def cli(*args: str, stdin: str | None = None, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, RUN, *args], cwd=cwd, env={**os.environ, **env}, input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def output(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(proc.stdout)


def test_completed_exit_0(llm: LoopbackServer) -> None:
    llm.responder = lambda body: "critical" if "How severe" in body["messages"][1]["content"] else "It broke."
    proc = cli(LOG, "--task", "find_errors_in_log")
    assert proc.returncode == 0, proc.stderr
    result = output(proc)
    assert result["status"] == "completed"
    assert [f["line"] for f in result["result"]["findings"]] == [15, 32, 68, 81]
    assert result["result"]["by_severity"] == {"critical": 4}
    assert proc.stderr == ""  # not a terminal: nothing extra


def test_default_task_analyzes_the_document(llm: LoopbackServer) -> None:
    llm.responder = lambda body: (
        '{"claims": [{"claim": "Throughput rose 11%.", "confidence": "high"}]}'
        if "response_format" in body else "Remote work helped.")
    result = output(cli(DOC))
    analysis = result["result"]["analysis"]
    assert analysis["title"] == "Remote Work and Team Productivity: A Twelve-Month Study"
    assert analysis["key_points"] == [{"claim": "Throughput rose 11%.", "confidence": "high", "span": analysis["key_points"][0]["span"]}]
    assert analysis["conclusion"] == "Remote work helped."


def test_partial_after_cost_limit_exit_3(llm: LoopbackServer) -> None:
    llm.responder = lambda body: Reply("warning", prompt_tokens=3000, completion_tokens=900)
    proc = cli(LOG, "--task", "find_errors_in_log", "--cost", "0.004", "--workers", "1")
    assert proc.returncode == 3
    result = output(proc)
    assert result["status"] == "partial" and "CostLimitError" in result["error"]
    assert 1 <= len(result["result"]["findings"]) < 4
    assert result["budget_summary"]["total_cost_usd"] <= 0.004
    assert "partial" in proc.stderr


def test_partial_after_runtime_limit_exit_3(llm: LoopbackServer) -> None:
    llm.latency = 0.4  # one finding (two calls) in about 1 s; the second cannot finish by 1.4 s
    proc = cli(LOG, "--task", "find_errors_in_log", "--timeout", "1.4", "--workers", "1")
    assert proc.returncode == 3
    result = output(proc)
    assert "RuntimeLimitError" in result["error"] and len(result["result"]["findings"]) == 1


def test_error_exit_1(llm: LoopbackServer, tmp_path: Path) -> None:
    task = tmp_path / "bad_task.py"
    task.write_text("def explode(context):\n    raise KeyError('boom')\n")
    proc = cli(LOG, "--task", f"{task}:explode")
    assert proc.returncode == 1 and output(proc)["error"] == "KeyError: 'boom'"


def test_path_function_tasks(llm: LoopbackServer, tmp_path: Path) -> None:
    task = tmp_path / "my_task.py"
    task.write_text(
        "from rlm.context_access import context_search\n"
        "def count_errors(context):\n"
        "    return {'errors': len(context_search(context, 'ERROR', max_hits=50))}\n"
    )
    result = output(cli(LOG, "--task", f"{task}:count_errors"))
    assert result["result"] == {"errors": 3}
    assert cli(LOG, "--task", f"{task}:missing").returncode == 2
    assert "has no function 'missing'" in cli(LOG, "--task", f"{task}:missing").stderr


def test_dry_run_needs_no_key_and_reports_worst_case(llm: LoopbackServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.run([sys.executable, RUN, LOG, "--task", "find_errors_in_log", "--dry-run"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    dry = output(proc)["budget_summary"]["dry_run"]
    assert dry["subcalls"] == 8 and 0 < dry["worst_case_cost_usd"] < 0.5
    assert llm.chat_requests == []


def test_no_key_and_no_base_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = cli(LOG)
    assert proc.returncode == 2
    assert "OPENAI_API_KEY" in proc.stderr and "OPENAI_BASE_URL" in proc.stderr and "--dry-run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_stdin(llm: LoopbackServer) -> None:
    result = output(cli("-", "--task", "find_errors_in_log", "--dry-run", stdin="ok\nERROR one\nok\n"))
    assert [f["line"] for f in result["result"]["findings"]] == [2]


def test_list_tasks() -> None:
    proc = cli("--list-tasks")
    assert proc.returncode == 0
    assert "analyze_document" in proc.stdout and "find_errors_in_log" in proc.stdout and "Error and exception" in proc.stdout


def test_compact_prints_one_line(llm: LoopbackServer) -> None:
    proc = cli(LOG, "--dry-run", "--compact")
    assert len(proc.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.log"], "No such file: missing.log"),
        (["examples"], "is a directory"),
        ([LOG, "--cost", "-1"], "--cost must be a number above 0"),
        ([LOG, "--cost", "lots"], "--cost must be a number above 0 (got 'lots')"),
        ([LOG, "--timeout", "0"], "--timeout must be a number above 0"),
        ([LOG, "--tokens", "1.5"], "--tokens must be a whole number above 0"),
        ([LOG, "--task", "nope"], "Unknown task 'nope'. Known tasks: analyze_document, find_errors_in_log"),
        ([LOG, "--model", "my-local-model"], "No price known for model 'my-local-model'"),
        ([LOG, "--bogus"], "unrecognized arguments"),
        ([LOG, "--trace", "/nonexistent-dir/t.jsonl"], "Cannot write the trace to /nonexistent-dir/t.jsonl"),
        ([LOG, "--model", ""], "model must be a non-empty model name"),
        ([], "FILE argument is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(llm: LoopbackServer, args: list[str], message: str) -> None:
    proc = cli(*args, "--dry-run") if args and args[0] != LOG or not args else cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_bad_env_value_is_exit_2(llm: LoopbackServer) -> None:
    proc = cli(LOG, RLM_MAX_COST="cheap")
    assert proc.returncode == 2 and "RLM_MAX_COST (from the environment) must be a number above 0" in proc.stderr


def test_binary_file_is_refused_unless_allowed(llm: LoopbackServer, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x7fELF\x00\x01\x02 ERROR inside\n")
    proc = cli(str(blob), "--dry-run")
    assert proc.returncode == 2 and "looks binary" in proc.stderr and "--allow-binary" in proc.stderr
    assert cli(str(blob), "--dry-run", "--allow-binary", "--task", "find_errors_in_log").returncode == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    f = tmp_path / "secret.log"
    f.write_text("x")
    f.chmod(0)
    proc = cli(str(f), "--dry-run")
    assert proc.returncode == 2 and "Cannot read" in proc.stderr


def test_empty_file_is_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    result = output(cli(str(empty), "--task", "find_errors_in_log", "--dry-run"))
    assert result["status"] == "completed" and result["result"]["count"] == 0


def test_flags_beat_env_which_beats_dotenv(llm: LoopbackServer, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RLM_MAX_COST=0.11\nRLM_MAX_RUNTIME=9\n")
    proc = cli(LOG, "--dry-run", cwd=tmp_path, RLM_MAX_RUNTIME="8")
    s = output(proc)["budget_summary"]
    assert (s["cost_budget_usd"], s["runtime_limit_seconds"]) == (0.11, 8.0)
    s = output(cli(LOG, "--dry-run", "--cost", "0.2", cwd=tmp_path))["budget_summary"]
    assert s["cost_budget_usd"] == 0.2


def test_dotenv_supplies_the_api(llm: LoopbackServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    (tmp_path / ".env").write_text(f"OPENAI_BASE_URL={llm.base_url}\nOPENAI_API_KEY={TEST_KEY}\n")
    proc = subprocess.run([sys.executable, RUN, LOG, "--task", "find_errors_in_log"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(llm.chat_requests) == 8


def test_trace_parses_and_never_contains_the_key(llm: LoopbackServer, tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    assert cli(LOG, "--task", "find_errors_in_log", "--trace", str(trace)).returncode == 0
    text = trace.read_text()
    assert TEST_KEY not in text
    events = [json.loads(line) for line in text.splitlines()]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"
    assert sum(e["event"] == "subcall" for e in events) == 8


def test_killed_run_leaves_a_valid_trace(llm: LoopbackServer, tmp_path: Path) -> None:
    llm.latency = 0.3
    trace = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, RUN, LOG, "--task", "find_errors_in_log", "--trace", str(trace),
                             "--workers", "1"], cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if trace.exists() and sum(1 for _ in trace.open()) >= 5 and '"subcall"' in trace.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    lines = trace.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is complete JSON
    assert events[0]["event"] == "run_start" and "run_end" not in [e["event"] for e in events]


def test_progress_line_on_a_terminal(llm: LoopbackServer) -> None:
    master, slave = pty.openpty()
    proc = subprocess.run([sys.executable, RUN, LOG, "--task", "find_errors_in_log"], cwd=ROOT, env=dict(os.environ),
                          stdout=subprocess.PIPE, stderr=slave, timeout=60)
    os.close(slave)
    seen = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    os.close(master)
    assert proc.returncode == 0
    assert b"[rlm] calls 8" in seen and b"/ $0.50" in seen
