"""Every Python example and every command in the README runs as written (the docs/ pages: test_docs.py)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm.guards import current_run
from rlm.loopback import LoopbackServer
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def run_blocks(name: str, code: list[str]) -> tuple[dict[str, object], str]:
    """Every block in order, in one interpreter and one context, as a user pastes them: nothing a block
    does may leave state behind that breaks the next (a run left installed did, once)."""
    namespace: dict[str, object] = {"__name__": name}
    out = io.StringIO()
    for i, block in enumerate(code):
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block, f"{name} block {i}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{name} python block {i} failed: {type(exc).__name__}: {exc}\n{block}")
        assert current_run() is None, f"{name} block {i} left a run installed"
    return namespace, out.getvalue()


def test_readme_python_examples_run_against_the_loopback_server(llm: LoopbackServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    llm.responder = lambda body: '{"sentiment": "neutral", "confidence": 0.5}' if "response_format" in body else "warning"
    code = blocks("python")
    assert len(code) >= 6
    namespace, out = run_blocks("README", code)
    assert "completed" in out
    assert namespace["result"]["status"] == "completed"  # type: ignore[index]


# Shell lines of a ```bash block that the tests do not run: setting up a fresh machine, which .ci/run does
# itself (a fresh venv, the requirements, the test command), and copying the settings template.
SETUP = (("python3", "-m", "venv"), (".",), ("pip", "install"), ("python", "-m", "pip"), ("python", "-m", "pytest"),
         ("cp", ".env.example", ".env"))
# Commands that serve until stopped (`rlm mcp`, the loopback server): a test would wait on them forever.
SERVERS = {"mcp", "rlm.mcp", "rlm.loopback"}
# The loopback server stands in for the model API, so a page's own API settings are not applied.
API_SETTINGS = ("OPENAI_API_KEY", "OPENAI_BASE_URL")


def command_line(args: list[str]) -> Callable[[pytest.MonkeyPatch], int] | None:
    """The in-process call for one rlm command line (``rlm``, ``python run.py``, ``python -m rlm[.x]``), or None."""
    from rlm.check import main as check_main
    from rlm.cli import main
    from rlm.report import main as report_main

    mains = {("rlm",): main, ("python", "run.py"): main, ("python", "-m", "rlm"): main,
             ("python", "-m", "rlm.check"): check_main, ("python", "-m", "rlm.report"): report_main}
    for prefix, entry in mains.items():
        if tuple(args[:len(prefix)]) == prefix:
            rest = args[len(prefix):]
            return lambda monkeypatch: entry(rest)
    return None


def shell_commands(text: str) -> list[tuple[Callable[[pytest.MonkeyPatch], int], int, str]]:
    """Each rlm command of the ```bash blocks of ``text``, in order, with the exit code it is documented to give.

    A line may end with a comment saying ``exits N``; otherwise it must exit 0. ``export NAME=VALUE`` lines
    apply their settings to the commands after them. Any other command fails here, so that nothing a page
    tells the reader to type goes unrun.
    """
    commands: list[tuple[Callable[[pytest.MonkeyPatch], int], int, str]] = []
    for block in blocks("bash", text):
        for raw in block.splitlines():
            line, _, comment = raw.partition(" #")
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            said = re.search(r"exits (\d+)", comment)
            expected = int(said.group(1)) if said else 0
            for segment in line.split(" && "):
                args = shlex.split(segment)
                assert not set(args) & SERVERS, f"a server waits for its client; show it in a ```text block: {segment}"
                run = command_line(args)
                if run is not None:
                    commands.append((run, expected, segment))
                elif args[0] == "export":
                    settings = dict(a.split("=", 1) for a in args[1:] if not a.startswith(API_SETTINGS))

                    def export(monkeypatch: pytest.MonkeyPatch, settings: dict[str, str] = settings) -> int:
                        for name, value in settings.items():
                            monkeypatch.setenv(name, value)
                        return 0

                    commands.append((export, 0, segment))
                else:
                    assert any(tuple(args[:len(p)]) == p for p in SETUP), f"a shell line no test runs: {segment}"
    return commands


def test_the_quick_start_opens_with_install_and_test_commands() -> None:
    first, second = blocks("bash")[:2]
    assert "pip install -r requirements.txt" in first and "run.py" in first and "--dry-run" in first
    # The test command installs what the optional pieces' tests need (.ci/run installs the same file).
    assert second.strip() == "pip install -r requirements-dev.txt && python -m pytest -q"


def test_readme_commands_run_in_order(llm: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Each command of the README, through the same main() run.py calls, in a scratch directory that sees the
    repository's files (examples/, tasks/), exiting as documented."""
    commands = shell_commands(README)
    assert len(commands) >= 3
    for entry in os.listdir(ROOT):
        if not entry.startswith("."):
            (tmp_path / entry).symlink_to(ROOT / entry)
    monkeypatch.chdir(tmp_path)
    llm.responder = lambda body: '{"sentiment": "neutral", "confidence": 0.5}' if "response_format" in body else "warning"
    for run, expected, line in commands:
        code = run(monkeypatch)
        out, err = capsys.readouterr()
        assert code == expected, f"README: {line}\nexit {code}\n{err}"
        if "--list-tasks" in line:
            assert "find_errors_in_log" in out
        elif expected == 0 and not line.startswith("export"):
            assert '"status": "completed"' in out, line


def test_the_documented_trace_schema_matches_the_events_written(llm: LoopbackServer, tmp_path: Path) -> None:
    import json

    from rlm import GuardConfig, context_search, run_task, semantic_subcall

    page = (ROOT / "docs" / "reports-and-resuming.md").read_text(encoding="utf-8")
    section = page.split("## The audit trail")[1].split("\n## ")[0]
    documented = {}
    for name, fields in re.findall(r"^\| `(\w+)` \| (.*) \|$", section, re.M):
        if name != "event":  # the header row
            # Top-level fields only: what is in parentheses describes them (or their nested keys).
            documented[name] = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", fields)))
    trace = tmp_path / "t.jsonl"

    def task(ctx):  # type: ignore[no-untyped-def]
        semantic_subcall("q", context_search(ctx, "x")[0].text)
        raise ValueError("boom")

    run_task(task, "x", GuardConfig(trace_path=str(trace)))
    run_task(lambda c: semantic_subcall("q", "c"), "x", GuardConfig(trace_path=str(trace), max_cost=1e-9))
    common = {"event", "run_id", "seq", "ts"}
    seen: dict[str, set[str]] = {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        seen.setdefault(event["event"], set()).update(set(event) - common)
    assert set(seen) == set(documented)
    for name, fields in seen.items():
        assert fields == documented[name], name
