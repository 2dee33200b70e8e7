"""claude.md is loaded by Claude Code on every OS, and its task template runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlm.cli import main
from rlm.loopback import LoopbackServer
from tests.support import ROOT

POLICY = (ROOT / "claude.md").read_text(encoding="utf-8")


def test_claude_code_loads_the_lowercase_policy_through_dot_claude() -> None:
    assert (ROOT / ".claude" / "CLAUDE.md").read_text().strip() == "@../claude.md"
    names = [p.name for p in ROOT.iterdir()]
    assert "claude.md" in names and "CLAUDE.md" not in names  # no case-only twin at the root


def test_policy_states_the_rules_and_how_to_run() -> None:
    for needle in ("Never load the context into a prompt", "context_access", "Bound every iteration",
                   "Build the final answer in Python", "--dry-run", "path/to/my_task.py:", "Budgets halt",
                   "depth 1"):
        assert needle in POLICY, needle


def test_the_policy_task_template_runs(llm: LoopbackServer, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = [b for b in re.findall(r"```python\n(.*?)```", POLICY, re.S) if "def find_timeouts" in b][0]
    task = tmp_path / "timeouts.py"
    task.write_text(code)
    log = tmp_path / "app.log"
    log.write_text("ok\nupstream timed out after 30s\nok\nread timeout on db\nfine\n")
    llm.responder = lambda body: "retryable"
    for extra in (["--dry-run"], []):
        assert main([str(log), "--task", f"{task}:find_timeouts", *extra]) == 0
        out = capsys.readouterr().out
    result = json.loads(out)["result"]
    assert result["count"] == 2 and result["retryable"] == 2
    assert [t["line"] for t in result["timeouts"]] == [2, 4]
