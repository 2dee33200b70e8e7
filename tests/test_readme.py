"""Every Python example and every run.py command in the README runs as written."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
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
    assert len(code) >= 10
    namespace, out = run_blocks("README", code)
    assert "completed" in out
    assert namespace["warm"]["budget_summary"]["total_calls"] == 0  # type: ignore[index]


def test_the_api_reference_examples_run_in_order(llm: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    llm.responder = lambda body: (
        '{"answer": "the connection was refused", "quote": "database connection refused"}'
        if "response_format" in body else "yes" if "yes or no" in body["messages"][1]["content"] else "critical")
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    namespace, out = run_blocks("docs/api.md", blocks("python", api))
    assert namespace["cited"]["span"] is not None  # type: ignore[index]  # the quote was found and cited
    assert "'severity': 'critical'" in out


def test_the_api_reference_names_every_public_function() -> None:
    import rlm

    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in rlm.__all__ if name not in api]
    assert missing == []


def readme_commands() -> list[str]:
    commands = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("python run.py"):
                commands.append(line)
    return commands


def test_the_quick_start_opens_with_install_and_test_commands() -> None:
    first, second = blocks("bash")[:2]
    assert "pip install -r requirements.txt" in first and "run.py" in first and "--dry-run" in first
    assert second.strip() == "python -m pytest -q"


@pytest.mark.parametrize("command", readme_commands())
def test_readme_commands_run(command: str, llm: LoopbackServer, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Each `python run.py ...` line of the README, through the same main() run.py calls."""
    from rlm.cli import main

    monkeypatch.chdir(ROOT)
    args = shlex.split(command)
    assert args[:2] == ["python", "run.py"]
    code = main(args[2:])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert '"status": "completed"' in out


def test_readme_trace_schema_matches_the_events_written(llm: LoopbackServer, tmp_path: Path) -> None:
    import json

    from rlm import GuardConfig, context_search, run_task, semantic_subcall

    section = README.split("## The audit trail")[1].split("\n## ")[0]
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
