"""The /rlm-task command and claude.md: every run.py command they give names real paths and parses."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from rlm.check import check_source
from rlm.cli import UsageError, _parser
from rlm.guards import GuardConfig
from rlm.runtime import run_task
from tests.support import ROOT

COMMAND = ROOT / ".claude" / "commands" / "rlm-task.md"
POLICY = ROOT / "claude.md"
DOCS = {"rlm-task.md": COMMAND.read_text(encoding="utf-8"), "claude.md": POLICY.read_text(encoding="utf-8")}

# Placeholders the documents define, and what stands in for each when a command is parsed. The command file
# defines FILE, QUESTION, <name> and <fn> ("Placeholders below: ..."); claude.md uses <name> for a new task
# module, server.log for the user's log and path/to/my_task.py for a task kept outside tasks/.
PLACEHOLDERS = {
    "FILE": "examples/server.log",
    "QUESTION": "What failed?",
    "<name>": "rlm_task_demo",
    "<fn>": "answer_question",
    "server.log": "examples/server.log",
    "path/to/my_task.py": "tasks/example_task.py",
}


def run_py_commands() -> list[tuple[str, str]]:
    """``(document, command)`` for every ``python run.py ...`` in a bash block or an inline code span."""
    found = []
    for name, text in DOCS.items():
        for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("python run.py"):
                    found.append((name, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        found += [(name, span) for span in re.findall(r"`(python run\.py[^`]*)`", prose)]
    return found


COMMANDS = run_py_commands()


def argv_of(command: str, *, substitute: bool = False) -> list[str]:
    argv = shlex.split(command)[2:]  # drop "python run.py"
    if substitute:
        for placeholder, value in PLACEHOLDERS.items():
            argv = [arg.replace(placeholder, value) for arg in argv]
    return argv


def options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The positional arguments, and each option with its value ('' for a switch)."""
    takes_value = {opt: action.nargs != 0 for action in _parser()._actions for opt in action.option_strings}
    positional: list[str] = []
    opts: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg.startswith("--"):
            flag, _, inline = arg.partition("=")
            value_follows = takes_value.get(flag, False) and not inline
            opts[flag] = next(args) if value_follows else inline
        else:
            positional.append(arg)
    return positional, opts


def placeholder_in(path: str) -> str | None:
    return next((p for p in PLACEHOLDERS if p in path), None)


def assert_path(path: str, command: str) -> None:
    placeholder = placeholder_in(path)
    if placeholder is None:
        assert (ROOT / path).exists(), f"{path} does not exist (in {command!r})"
    else:  # what comes before the placeholder must be real: tasks/<name>.py needs tasks/
        real = Path(path.split(placeholder)[0] or ".")
        directory = real if path.split(placeholder)[0].endswith("/") or real == Path(".") else real.parent
        assert (ROOT / directory).is_dir(), f"{directory} does not exist (in {command!r})"


def functions_in(source: str) -> set[str]:
    return {n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def task_names() -> set[str]:
    """Tasks in tasks/ and functions the documents' own Python blocks define (written to tasks/ when used)."""
    names: set[str] = set()
    for path in (ROOT / "tasks").glob("*.py"):
        names |= {n for n in functions_in(path.read_text(encoding="utf-8")) if not n.startswith("_")}
    for text in DOCS.values():
        for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
            with contextlib.suppress(SyntaxError):
                names |= functions_in(block)
    return names


def test_the_documents_give_run_py_commands_to_check() -> None:
    used = {name for name, _ in COMMANDS}
    assert used == set(DOCS)
    steps = [c for name, c in COMMANDS if name == "rlm-task.md"]
    assert any("--check" in c for c in steps)
    assert any("--dry-run" in c and "--param" in c for c in steps)
    assert any("--cost 0.10 --timeout 120 --trace run.jsonl" in c for c in steps)


def test_the_command_file_is_a_claude_code_slash_command() -> None:
    text = DOCS["rlm-task.md"]
    front = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert front, "YAML front matter first"
    fields = dict(line.split(": ", 1) for line in front.group(1).splitlines())
    assert set(fields) >= {"description", "argument-hint"} and fields["description"].strip()
    assert "$ARGUMENTS" in text and "budget_summary.dry_run" in text
    for placeholder in ("FILE", "QUESTION", "<name>", "<fn>"):
        assert f"`{placeholder}`" in text or f"**{placeholder}**" in text, f"{placeholder} is not defined"


def test_claude_md_points_to_the_command_and_the_checker() -> None:
    policy = DOCS["claude.md"]
    assert "/rlm-task" in policy and ".claude/commands/rlm-task.md" in policy
    assert "python -m rlm.check" in policy and "python run.py --check" in policy


@pytest.mark.parametrize(("document", "command"), COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_command_flags_parse_with_the_real_parser(document: str, command: str) -> None:
    argv = argv_of(command, substitute=True)
    try:
        _parser().parse_args(argv)
    except UsageError as exc:
        pytest.fail(f"run.py refuses {command!r}: {exc}")


def test_the_command_skeleton_is_clean_and_runs_under_a_dry_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    [skeleton] = re.findall(r"```python\n(.*?)```", DOCS["rlm-task.md"], re.DOTALL)
    assert check_source(skeleton, "rlm-task.md skeleton") == []
    namespace: dict[str, object] = {}
    exec(compile(skeleton, "rlm-task.md skeleton", "exec"), namespace)  # noqa: S102 - the documented task is the point
    task = namespace["answer_question"]
    assert callable(task)

    def answer(context: object) -> object:
        return task(context, question="Why did the database fail?")

    trace = tmp_path / "run.jsonl"
    log = "ok\nERROR database connection refused\nok\nERROR timeout talking to cache\n"
    result = run_task(answer, log, GuardConfig(dry_run=True, trace_path=str(trace)))
    assert result["status"] == "completed", result["error"]
    assert result["result"]["question"] == "Why did the database fail?"
    assert result["result"]["lines_matched"] == 2  # two terms on each error line, one read per line
    assert result["budget_summary"]["dry_run"]["subcalls"] == 2

    # The report step's trace one-liner reads this run's subcalls.
    [snippet] = re.findall(r'python -c "(.*?)"\n', DOCS["rlm-task.md"])
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(snippet, {"json": json})  # noqa: S102 - the documented one-liner is the point
    rows = out.getvalue().splitlines()
    assert len(rows) == 2 and all(re.match(r"\d+ \d+ ", row) for row in rows)
