"""The command line, in-process through main(argv) against the loopback server; a subprocess only where
the process itself is the point (a terminal, a killed run, the installed entry points)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlm.cli import main
from rlm.loopback import LoopbackServer, Reply
from tests.support import ROOT, Cli

RUN = str(ROOT / "run.py")
LOG = str(ROOT / "examples" / "server.log")
DOC = str(ROOT / "examples" / "document.txt")


JUDGED = '{"severity": "critical", "summary": "It broke."}'


def test_completed_exit_0(llm: LoopbackServer, cli: Cli) -> None:
    llm.responder = lambda body: JUDGED
    ran = cli(LOG, "--task", "find_errors_in_log")
    assert ran.code == 0, ran.stderr
    result = ran.result
    assert result["status"] == "completed"
    assert [f["first_line"]["line"] for f in result["result"]["findings"]] == [15, 32, 68, 81]
    assert result["result"]["by_severity"] == {"critical": 4}
    assert ran.stderr == ""  # not a terminal: nothing extra


def test_a_model_that_ignores_the_format_is_reported_not_silently_defaulted(llm: LoopbackServer, cli: Cli) -> None:
    llm.responder = lambda body: "warning"
    ran = cli(LOG, "--task", "find_errors_in_log")
    assert ran.code == 0 and ran.result["result"]["metadata"]["classified"] == 0
    assert ran.result["budget_summary"]["answers_defaulted"] == 4
    assert "4 model answer(s) did not read as the task asked" in ran.stderr and "--report" in ran.stderr


def test_default_task_analyzes_the_document(llm: LoopbackServer, cli: Cli) -> None:
    llm.responder = lambda body: (
        '{"claims": [{"claim": "Throughput rose 11%.", "confidence": "high"}]}'
        if "response_format" in body else "Remote work helped.")
    analysis = cli(DOC).result["result"]["analysis"]
    assert analysis["title"] == "Remote Work and Team Productivity: A Twelve-Month Study"
    assert analysis["key_points"][0]["claim"] == "Throughput rose 11%."
    assert analysis["conclusion"] == "Remote work helped."


def test_partial_after_cost_limit_exit_3(llm: LoopbackServer, cli: Cli) -> None:
    # Every call bills close to its worst case, so a budget of two worst cases buys two of the four.
    llm.responder = lambda body: Reply(JUDGED, prompt_tokens=1500, completion_tokens=1000)
    ran = cli(LOG, "--task", "find_errors_in_log", "--cost", "0.002", "--workers", "1")
    assert ran.code == 3
    result = ran.result
    assert result["status"] == "partial" and "CostLimitError" in result["error"]
    findings = result["result"]["findings"]
    assert len(findings) == 4 and sum(f["severity"] is not None for f in findings) == 2  # counts kept for all
    assert result["budget_summary"]["total_cost_usd"] <= 0.002
    assert "partial" in ran.stderr


def test_partial_after_runtime_limit_exit_3(llm: LoopbackServer, cli: Cli) -> None:
    llm.responder = lambda body: JUDGED
    llm.latency = 0.15  # four calls one at a time need 0.6 s
    ran = cli(LOG, "--task", "find_errors_in_log", "--timeout", "0.5", "--workers", "1")
    assert ran.code == 3 and "RuntimeLimitError" in ran.result["error"]
    findings = ran.result["result"]["findings"]
    assert len(findings) == 4 and 1 <= sum(f["severity"] is not None for f in findings) <= 3


def test_a_failing_task_names_its_file_and_line_and_debug_shows_the_traceback(llm: LoopbackServer, cli: Cli,
                                                                              tmp_path: Path) -> None:
    task = tmp_path / "bad_task.py"
    task.write_text("def explode(context):\n    return 1 / 0\n")
    ran = cli(LOG, "--task", f"{task}:explode")
    assert ran.code == 1
    assert ran.result["error"] == f"ZeroDivisionError: division by zero (at {task}:2 in explode)"
    assert "traceback" not in ran.result and len(ran.stderr.strip().splitlines()) == 1
    debug = cli(LOG, "--task", f"{task}:explode", "--debug", traceback=True)
    assert "Traceback (most recent call last)" not in debug.stdout
    assert 'bad_task.py", line 2, in explode' in debug.stderr and "return 1 / 0" in debug.stderr


def test_rlm_debug_in_the_environment_also_shows_the_traceback(llm: LoopbackServer, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    task = tmp_path / "bad.py"
    task.write_text("def explode(context):\n    raise KeyError('boom')\n")
    monkeypatch.setenv("RLM_DEBUG", "1")
    assert main([LOG, "--task", f"{task}:explode"]) == 1
    assert "raise KeyError('boom')" in capsys.readouterr().err


def test_path_function_tasks_can_import_a_module_beside_them(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "helpers_for_task.py").write_text("PATTERN = 'ERROR'\n")
    task = tmp_path / "my_task.py"
    task.write_text(
        "from rlm.context_access import context_search\n"
        "from helpers_for_task import PATTERN\n"
        "def count_errors(context):\n"
        "    return {'errors': len(context_search(context, PATTERN, max_hits=50))}\n"
    )
    assert cli(LOG, "--task", f"{task}:count_errors").result["result"] == {"errors": 3}
    missing = cli(LOG, "--task", f"{task}:missing")
    assert missing.code == 2 and "has no function 'missing' (it defines: count_errors)" in missing.stderr


def test_tasks_of_the_current_directory_are_found_by_name(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "_shared.py").write_text("WORD = 'ERROR'\n")
    (tmp_path / "tasks" / "mine.py").write_text(
        "from rlm.context_access import context_search\nfrom ._shared import WORD\n\n"
        "def count_word(context, word: str = WORD, limit: int = 50):\n"
        "    '''Count a word.'''\n"
        "    return len(context_search(context, word, max_hits=limit))\n")
    assert cli(LOG, "--task", "count_word", cwd=tmp_path).result["result"] == 3
    assert cli(LOG, "--task", "count_word", "--param", "word=INFO", "--param", "limit=2",
               cwd=tmp_path).result["result"] == 2
    listing = cli("--list-tasks", cwd=tmp_path).stdout
    assert "count_word(word: str = 'ERROR', limit: int = 50)  [tasks/mine.py]\n    Count a word." in listing
    assert "find_errors_in_log()" in listing


def test_the_example_tasks_are_built_in_from_any_directory_and_listed_once_in_the_project(
        llm: LoopbackServer, cli: Cli, tmp_path: Path, child_env: Callable[..., dict[str, str]]) -> None:
    ran = cli(LOG, "--task", "find_errors_in_log", "--dry-run", cwd=tmp_path)
    assert ran.code == 0 and ran.result["result"]["count"] == 4
    in_project = cli("--list-tasks").stdout  # the project's tasks/example_task.py is the built-in file itself
    assert in_project.count("find_errors_in_log()") == 1 and "[tasks/example_task.py]" not in in_project
    env = child_env()
    env.pop("PYTHONPATH", None)  # a clone run in place, from elsewhere: python path/to/run.py
    proc = subprocess.run([sys.executable, RUN, LOG, "--task", "analyze_document", "--dry-run", "--compact"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["analysis"]["title"]


def test_a_task_of_the_current_directory_wins_over_a_built_in_one_of_the_same_name(
        llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "triage.py").write_text(
        "from rlm.tasks import builtin_task\n\n"
        "def find_errors_in_log(context):\n"
        "    '''Mine: the built-in's count, doubled.'''\n"
        "    return 2 * builtin_task('find_errors_in_log')(context)['count']\n")
    assert cli(LOG, "--task", "find_errors_in_log", "--dry-run", cwd=tmp_path).result["result"] == 8
    assert "find_errors_in_log()  [tasks/triage.py]\n    Mine" in cli("--list-tasks", cwd=tmp_path).stdout


def test_params_are_json_when_they_parse_and_must_fit_the_signature(llm: LoopbackServer, cli: Cli,
                                                                     tmp_path: Path) -> None:
    task = tmp_path / "echo.py"
    task.write_text("def echo(context, question: str, n: int = 1, tags=None):\n    return [question, n, tags]\n")
    ran = cli(LOG, "--task", f"{task}:echo", "--param", "question=Who signed?", "--param", "n=3",
              "--param", 'tags=["a", 1]')
    assert ran.result["result"] == ["Who signed?", 3, ["a", 1]]
    assert cli(LOG, "--task", f"{task}:echo", "--param", "question=42").result["result"][0] == "42"  # a str, as typed
    wrong = cli(LOG, "--task", f"{task}:echo", "--param", "question=x", "--param", "n=abc")
    assert wrong.code == 2 and "Parameter n of task echo must be int (got 'abc')" in wrong.stderr
    missing = cli(LOG, "--task", f"{task}:echo")
    assert missing.code == 2 and "takes the context and then (question: str, n: int = 1, tags=None)" in missing.stderr
    unknown = cli(LOG, "--task", f"{task}:echo", "--param", "question=x", "--param", "colour=red")
    assert unknown.code == 2 and "colour" in unknown.stderr
    bad = cli(LOG, "--task", f"{task}:echo", "--param", "no-equals-sign")
    assert bad.code == 2 and "--param takes NAME=VALUE" in bad.stderr


def test_dry_run_needs_no_key_and_reports_worst_case(llm: LoopbackServer, cli: Cli,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    ran = cli(LOG, "--task", "find_errors_in_log", "--dry-run")
    assert ran.code == 0, ran.stderr
    dry = ran.result["budget_summary"]["dry_run"]
    assert dry["subcalls"] == 4 and 0 < dry["worst_case_cost_usd"] < 0.5 and dry["fits_budget"]
    assert llm.requests == [] and ran.stderr == ""


def test_a_dry_run_that_does_not_fit_warns_on_stderr(llm: LoopbackServer, cli: Cli) -> None:
    ran = cli(LOG, "--task", "find_errors_in_log", "--dry-run", "--cost", "0.001")
    assert ran.code == 0 and ran.result["budget_summary"]["dry_run"]["fits_budget"] is False
    assert "warning: the dry run's worst case" in ran.stderr and "more than the $0.001 budget" in ran.stderr


def test_no_key_and_no_base_url_fails_at_the_first_subcall_saying_what_to_set(cli: Cli) -> None:
    ran = cli(LOG)
    assert ran.code == 1 and ran.result["status"] == "error"
    assert ran.result["budget_summary"]["http_attempts"] == 0
    assert "OPENAI_API_KEY" in ran.stderr and "OPENAI_BASE_URL" in ran.stderr and "--dry-run" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1 and " (at " not in ran.stderr  # a setting, not a line of code


def test_a_task_that_makes_no_subcalls_runs_with_no_key(cli: Cli, tmp_path: Path) -> None:
    task = tmp_path / "count.py"
    task.write_text("from rlm.context_access import context_search\n\n"
                    "def count(context):\n    return len(context_search(context, 'ERROR', max_hits=100))\n")
    ran = cli(LOG, "--task", f"{task}:count")
    assert ran.code == 0 and ran.result["status"] == "completed" and ran.result["result"] > 0, ran.stderr


def test_the_env_example_placeholder_key_is_refused_before_any_request(llm: LoopbackServer, cli: Cli,
                                                                       tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    ran = cli(LOG, cwd=tmp_path, OPENAI_API_KEY="sk-your-key-here")
    assert ran.code == 1 and "placeholder from .env.example" in ran.stderr
    assert llm.requests == []


def test_stdin(llm: LoopbackServer, cli: Cli) -> None:
    ran = cli("-", "--task", "find_errors_in_log", "--dry-run", stdin="ok\nERROR one\nok\n")
    assert [f["first_line"] for f in ran.result["result"]["findings"]] == [{"file": "<stdin>", "line": 2}]


def test_list_tasks_shows_parameters_and_summaries(cli: Cli) -> None:
    out = cli("--list-tasks").stdout
    assert "find_errors_in_log()\n    Every problem in a log" in out
    assert "analyze_document()" in out


def test_compact_prints_one_line(llm: LoopbackServer, cli: Cli) -> None:
    assert len(cli(LOG, "--dry-run", "--compact").stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.log"], "No such file: missing.log"),
        ([LOG, "--cost", "-1"], "--cost must be a number above 0"),
        ([LOG, "--cost", "lots"], "--cost must be a number above 0 (got 'lots')"),
        ([LOG, "--timeout", "0"], "--timeout must be a number above 0"),
        ([LOG, "--tokens", "1.5"], "--tokens must be a whole number above 0"),
        ([LOG, "--task", "nope"], "Unknown task 'nope'. Known tasks: analyze_document,"),
        ([LOG, "--task", "x.py"], "Name the function too: --task x.py:FUNCTION"),
        ([LOG, "--model", "my-local-model"], "No price known for model 'my-local-model'"),
        ([LOG, "--bogus"], "unrecognized arguments"),
        ([LOG, "--trace", "/nonexistent-dir/t.jsonl"], "Cannot write the trace to /nonexistent-dir/t.jsonl"),
        ([LOG, "--model", ""], "model must be a non-empty model name"),
        ([], "FILE argument is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(llm: LoopbackServer, cli: Cli, args: list[str], message: str) -> None:
    ran = cli(*args, "--dry-run") if args and args[0] != LOG or not args else cli(*args)
    assert ran.code == 2, ran.stderr
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1 and ran.stdout == ""


def test_special_files_are_refused_without_blocking(cli: Cli, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    ran = cli(str(fifo), "--dry-run")  # opening a FIFO with no writer would block forever
    assert ran.code == 2 and "is a FIFO, not a regular file" in ran.stderr
    assert cli("/dev/null", "--dry-run").code == 2


def test_bad_env_value_is_exit_2(llm: LoopbackServer, cli: Cli) -> None:
    ran = cli(LOG, RLM_MAX_COST="cheap")
    assert ran.code == 2 and "RLM_MAX_COST (from the environment) must be a number above 0" in ran.stderr


def test_binary_file_is_refused_unless_allowed(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x7fELF\x00\x01\x02 ERROR inside\n")
    ran = cli(str(blob), "--dry-run")
    assert ran.code == 2 and "looks binary" in ran.stderr and "--allow-binary" in ran.stderr
    assert cli(str(blob), "--dry-run", "--allow-binary", "--task", "find_errors_in_log").code == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "secret.log"
    f.write_text("x")
    f.chmod(0)
    ran = cli(str(f), "--dry-run")
    assert ran.code == 2 and "Cannot read" in ran.stderr


def test_empty_file_is_fine(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    ran = cli(str(empty), "--task", "find_errors_in_log", "--dry-run")
    assert ran.result["status"] == "completed" and ran.result["result"]["count"] == 0
    assert "is empty" in ran.stderr


def test_compressed_logs_are_named_and_can_be_piped_in(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("12:00 ERROR disk full\n")
    packed = tmp_path / "app.log.1.gz"
    packed.write_bytes(gzip.compress(b"11:00 ERROR fan failed\n"))
    ran = cli(str(packed), "--dry-run")
    assert ran.code == 2 and "is gzip-compressed" in ran.stderr and f"zcat {packed} |" in ran.stderr
    ran = cli(str(tmp_path), "--task", "find_errors_in_log", "--dry-run")
    assert ran.code == 0 and "left out 1 file(s)" in ran.stderr and "app.log.1.gz" in ran.stderr
    assert ran.result["result"]["count"] == 1
    ran = cli("-", "--task", "find_errors_in_log", "--dry-run", stdin=gzip.decompress(packed.read_bytes()).decode())
    assert ran.code == 0 and "fan failed" in ran.result["result"]["findings"][0]["signature"]


def test_flags_beat_env_which_beats_dotenv(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RLM_MAX_COST=0.11\nRLM_MAX_RUNTIME=9\n")
    s = cli(LOG, "--dry-run", cwd=tmp_path, RLM_MAX_RUNTIME="8").result["budget_summary"]
    assert (s["cost_budget_usd"], s["runtime_limit_seconds"]) == (0.11, 8.0)
    s = cli(LOG, "--dry-run", "--cost", "0.2", cwd=tmp_path).result["budget_summary"]
    assert s["cost_budget_usd"] == 0.2


def test_dotenv_supplies_the_api(llm: LoopbackServer, cli: Cli, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    (tmp_path / ".env").write_text(f"OPENAI_BASE_URL={llm.base_url}\nOPENAI_API_KEY={api_key}\n")
    ran = cli(LOG, "--task", "find_errors_in_log", cwd=tmp_path)
    assert ran.code == 0, ran.stderr
    assert len(llm.chat_requests) == 4


def test_paths_in_dotenv_expand_home_and_variables(llm: LoopbackServer, cli: Cli, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RLM_CACHE_DIR")
    (tmp_path / ".env").write_text("RLM_CACHE_DIR=~/.cache/rlm-test\n")
    assert cli(LOG, "--task", "find_errors_in_log", cwd=tmp_path).code == 0
    assert (tmp_path / "home" / ".cache" / "rlm-test" / "responses.sqlite3").exists()
    assert not (tmp_path / "~").exists()
    monkeypatch.setenv("SOMEWHERE", str(tmp_path / "elsewhere"))
    (tmp_path / ".env").write_text("RLM_CACHE_DIR=$SOMEWHERE/cache\n")
    monkeypatch.delenv("RLM_CACHE_DIR")
    assert cli(LOG, "--task", "find_errors_in_log", cwd=tmp_path).code == 0
    assert (tmp_path / "elsewhere" / "cache" / "responses.sqlite3").exists()


def test_trace_parses_and_never_contains_the_key(llm: LoopbackServer, cli: Cli, tmp_path: Path, api_key: str) -> None:
    trace = tmp_path / "run.jsonl"
    assert cli(LOG, "--task", "find_errors_in_log", "--trace", str(trace)).code == 0
    text = trace.read_text()
    assert api_key not in text
    events = [json.loads(line) for line in text.splitlines()]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"
    assert sum(e["event"] == "subcall" for e in events) == 4


def test_a_closed_pipe_ends_the_run_quietly(child_env: Callable[..., dict[str, str]]) -> None:
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([sys.executable, RUN, LOG, "--task", "find_errors_in_log", "--dry-run"], cwd=ROOT,
                          env=child_env(), stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write)
    assert proc.stderr == "" and proc.returncode == 0  # the run completed; the reader just stopped reading


def test_killed_run_leaves_a_valid_trace_and_no_orphan(llm: LoopbackServer, tmp_path: Path,
                                                        child_env: Callable[..., dict[str, str]]) -> None:
    llm.latency = 0.3
    trace = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, RUN, LOG, "--task", "find_errors_in_log", "--trace", str(trace),
                             "--workers", "1"], cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if trace.exists() and '"subcall"' in trace.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    requests = len(llm.chat_requests)
    time.sleep(0.8)  # a child left running would go on asking the server
    assert len(llm.chat_requests) <= requests + 1
    events = [json.loads(line) for line in trace.read_text().splitlines()]  # every line is complete JSON
    assert events[0]["event"] == "run_start" and "run_end" not in [e["event"] for e in events]


def test_progress_line_on_a_terminal(llm: LoopbackServer) -> None:
    master, slave = pty.openpty()
    seen = bytearray()

    def read() -> None:  # as the terminal would, while the run writes
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 4096):
                seen.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    with os.fdopen(slave, "w", encoding="utf-8") as terminal:
        captured, sys.stderr = sys.stderr, terminal
        try:
            code = main([LOG, "--task", "find_errors_in_log"])
        finally:
            sys.stderr = captured
    reader.join(5)
    os.close(master)
    assert code == 0
    assert b"[rlm] calls 4" in seen and b"/ $0.50" in seen
    counts = [int(part.split()[0]) for part in seen.decode().split("[rlm] calls ")[1:]]
    assert counts == sorted(counts)  # the count only goes up


BAD_TASK = "def leak(context):\n    return len(context[0:100])\n"


def test_check_flag_and_subcommand_exit_by_findings(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_TASK)
    builtin = str(ROOT / "tasks" / "example_task.py")
    assert cli("--check", builtin).code == 0
    ran = cli("--check", f"{bad}:leak")
    assert ran.code == 1 and "rule2" in ran.stdout
    assert cli("check", str(bad)).code == 1
    (tmp_path / "broken.py").write_text("def (:\n")
    assert cli("check", str(tmp_path / "broken.py")).code == 2


def test_a_task_is_checked_before_it_runs_and_strict_refuses(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_TASK)
    ran = cli(LOG, "--task", f"{bad}:leak", "--dry-run")
    assert "warning: " in ran.stderr and "bad.py:2: rule2" in ran.stderr  # warned, then it ran
    strict = cli(LOG, "--task", f"{bad}:leak", "--dry-run", "--strict")
    assert strict.code == 2 and strict.stdout == "" and "found by the checker" in strict.stderr
    assert cli(LOG, "--task", "find_errors_in_log", "--dry-run", "--strict").code == 0


def test_report_flag_and_subcommand_write_an_html_report(llm: LoopbackServer, cli: Cli, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    html = tmp_path / "run.html"
    ran = cli(LOG, "--task", "find_errors_in_log", "--report", str(html))
    assert ran.code == 0 and html.stat().st_size > 1000 and "report: " in ran.stderr
    assert list(scratch.iterdir()) == []  # its scratch trace is gone
    trace = tmp_path / "t.jsonl"
    assert cli(LOG, "--task", "find_errors_in_log", "--trace", str(trace)).code == 0
    assert cli("report", str(trace), "-o", str(tmp_path / "again.html")).code == 0
    assert "<html" in (tmp_path / "again.html").read_text()[:500].lower()


def test_several_files_or_a_directory_are_one_context(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log.1").write_text("ok\nERROR disk full on /var\n")
    (logs / "app.log").write_text("ok\nok\nERROR disk full on /tmp\n")
    task = tmp_path / "where.py"
    task.write_text("from rlm.context_access import context_search\n"
                    "def where(context):\n"
                    "    return [[m.file, m.line] for m in context_search(context, 'ERROR', max_hits=10)]\n")
    by_dir = cli(str(logs), "--task", f"{task}:where").result["result"]
    assert [(Path(f).name, line) for f, line in by_dir] == [("app.log.1", 2), ("app.log", 3)]  # oldest first
    by_list = cli(str(logs / "app.log.1"), str(logs / "app.log"), "--task", f"{task}:where").result["result"]
    assert [Path(f).name for f, _ in by_list] == ["app.log.1", "app.log"]
    (tmp_path / "empty").mkdir()
    empty = cli(str(tmp_path / "empty"), "--dry-run")
    assert empty.code == 2 and "empty directory" in empty.stderr
    assert cli("-", str(logs), "--dry-run").code == 2


def test_a_halted_run_resumes_paying_only_for_what_is_new(llm: LoopbackServer, cli: Cli, tmp_path: Path) -> None:
    llm.responder = lambda body: Reply(JUDGED, prompt_tokens=1500, completion_tokens=1000)
    trace = tmp_path / "t.jsonl"
    halted = cli(LOG, "--task", "find_errors_in_log", "--cost", "0.002", "--workers", "1", "--trace", str(trace))
    assert halted.code == 3
    paid = halted.result["budget_summary"]["total_calls"]
    assert paid == 2 and len(llm.chat_requests) == 2
    resumed = cli(LOG, "--task", "find_errors_in_log", "--cost", "0.01", "--workers", "1", "--resume", str(trace))
    assert resumed.code == 0 and "resuming run" in resumed.stderr
    cache = resumed.result["budget_summary"]["cache"]
    assert (cache["replayed_calls"], cache["new_calls"]) == (2, 2)  # the two answered calls cost nothing again
    assert len(llm.chat_requests) == 4
    assert resumed.result["budget_summary"]["total_cost_usd"] == pytest.approx(
        halted.result["budget_summary"]["total_cost_usd"], rel=0.2)  # two new calls, priced like the first two
    assert all(f["severity"] == "critical" for f in resumed.result["result"]["findings"])


def test_resume_refuses_a_changed_task_or_input_and_a_rerun_warns(llm: LoopbackServer, cli: Cli,
                                                                  tmp_path: Path) -> None:
    llm.responder = lambda body: Reply(JUDGED, prompt_tokens=1500, completion_tokens=1000)
    log = tmp_path / "app.log"
    log.write_text((ROOT / "examples" / "server.log").read_text())
    task = tmp_path / "mine.py"
    task.write_text("from rlm.tasks import builtin_task\n\n_base = builtin_task('find_errors_in_log')\n\n"
                    "def triage(context):\n    return _base(context)\n")
    trace = tmp_path / "t.jsonl"
    assert cli(str(log), "--task", f"{task}:triage", "--cost", "0.002", "--workers", "1", "--trace",
               str(trace)).code == 3
    task.write_text(task.read_text() + "\n# edited\n")
    changed = cli(str(log), "--task", f"{task}:triage", "--resume", str(trace))
    assert changed.code == 2 and "the task's source changed" in changed.stderr
    rerun = cli(str(log), "--task", f"{task}:triage", "--trace", str(trace), "--cost", "0.01")
    assert rerun.code == 0 and "warning: the task's source changed since run" in rerun.stderr
    assert cli(str(log), "--task", f"{task}:triage", "--resume", str(tmp_path / "none.jsonl")).code == 2


def test_confirm_above_asks_on_a_terminal_and_refuses_elsewhere(llm: LoopbackServer, cli: Cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    refused = cli(LOG, "--task", "find_errors_in_log", "--confirm-above", "0.0001")
    assert refused.code == 2 and "Not on a terminal" in refused.stderr and llm.chat_requests == []
    assert cli(LOG, "--task", "find_errors_in_log", "--confirm-above", "1").code == 0  # under it: no question

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    declined = cli(LOG, "--task", "find_errors_in_log", "--confirm-above", "0.0001")
    assert declined.code == 2 and "Run it? [y/N]" in declined.stderr and "Not confirmed" in declined.stderr
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert cli(LOG, "--task", "find_errors_in_log", "--confirm-above", "0.0001").code == 0


def test_the_generic_tasks_take_their_parameters_on_the_command_line(llm: LoopbackServer, cli: Cli,
                                                                     tmp_path: Path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("café naïve — résumé.\n" * 200 + "The vault code is 4417.\n" + "filler line\n" * 200)
    llm.responder = lambda body: '{"answer": "4417", "quote": "The vault code is 4417."}'
    ran = cli(str(doc), "--task", "find_answer", "--param", "question=What is the vault code?")
    assert ran.code == 0, ran.stderr
    out = ran.result["result"]
    assert out["answer"] == "4417"
    start, end = out["span"]
    assert doc.read_bytes()[start:end] == b"The vault code is 4417."  # a byte span, exact after accents


def test_a_servers_model_without_a_price_is_refused_before_any_work(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(models=["tiny"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        ran = cli(LOG, "--task", "find_errors_in_log")
        assert ran.code == 2 and "No price known for model 'tiny'" in ran.stderr and server.chat_requests == []
        monkeypatch.setenv("RLM_PRICE_INPUT", "0")
        monkeypatch.setenv("RLM_PRICE_OUTPUT", "0")
        server.reset()
        assert cli(LOG, "--task", "find_errors_in_log").result["budget_summary"]["model"] == "tiny"
        assert len([r for r in server.requests if r.path.endswith("/models")]) == 1  # asked once, before the run
    with LoopbackServer(models=["a", "b"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        ran = cli(LOG, "--task", "find_errors_in_log")
        assert ran.code == 2 and "serves 2 models (a, b)" in ran.stderr
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    down = cli(LOG, "--task", "find_errors_in_log")
    assert down.code == 2 and "did not say which it serves" in down.stderr


def test_a_bug_in_rlm_is_one_line_with_its_own_exit_code(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import rlm.cli
    from rlm._exits import EXIT_INTERNAL

    def broken() -> str:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(rlm.cli, "_list_tasks", broken)  # stands for any bug of ours
    ran = cli("--list-tasks")
    assert ran.code == EXIT_INTERNAL == 70
    assert ran.stderr.startswith("rlm: internal error: ZeroDivisionError") and "report" in ran.stderr


def test_a_missing_package_names_the_command_that_installs_it(tmp_path: Path) -> None:
    # -S: no site-packages, as when run.py is started by a Python outside the project's environment.
    ran = subprocess.run([sys.executable, "-S", str(ROOT / "run.py"), LOG], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert ran.returncode == 2 and ran.stdout == ""
    assert "pip install -r requirements.txt" in ran.stderr and "cannot import" in ran.stderr
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1


def test_task_help_says_it_takes_a_function_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--task FUNCTION" in text and "the name of a task function" in text and "./tasks/*.py" in text


def test_a_trace_on_a_full_disk_is_a_warning_and_the_result_still_prints(llm: LoopbackServer, cli: Cli,
                                                                         small_disk: Any) -> None:
    disk = small_disk(4)
    ran = cli(LOG, "--task", "find_errors_in_log", "--trace", str(disk / "t.jsonl"), "--report",
              str(disk / "r.html"))
    assert ran.code == 0 and ran.result["status"] == "completed"
    assert ran.result["budget_summary"]["total_calls"] == 4
    assert "could not be written" in ran.stderr and "internal error" not in ran.stderr


def test_listing_a_folder_before_the_run_is_bounded_by_the_runtime_limit(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1500):
        (folder / f"f{i}.log").write_bytes(b"x\n")
    ran = cli(str(folder), "--task", "find_errors_in_log", "--dry-run", "--timeout", "0.001")
    assert ran.code == 2 and f"Listing {folder} took longer than the runtime limit of 0.001s" in ran.stderr


def test_every_package_of_rlm_is_shipped() -> None:
    import tomllib

    shipped = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "rlm").rglob("__init__.py")}
    assert on_disk <= shipped, f"add to [tool.setuptools] packages: {sorted(on_disk - shipped)}"


def test_output_to_a_file_and_cut_or_large_results_are_announced(cli: Cli, tmp_path: Path) -> None:
    task = tmp_path / "shapes.py"
    task.write_text("def cut(context):\n    return {'labels': {'a': 1}, 'sample': {'items': [1], 'truncated': True}}\n\n"
                    "def large(context):\n    return 'x' * (5 << 20)\n")
    out = tmp_path / "result.json"
    ran = cli(LOG, "--task", f"{task}:cut", "--dry-run", "-o", str(out))
    assert ran.code == 0 and ran.stdout == "" and f"result: {out}" in ran.stderr
    assert json.loads(out.read_text())["result"]["sample"]["truncated"] is True
    assert "the result is cut at result.sample (truncated: true)" in ran.stderr
    large = cli(LOG, "--task", f"{task}:large", "--dry-run", "--compact")
    assert large.code == 0 and "write it to a file with -o FILE" in large.stderr
    assert len(large.result["result"]) == 5 << 20
