"""The task checker finds what the corpus of bad tasks expects, nothing in the clean ones, and has a CLI."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from rlm.check import (
    RULES,
    CheckError,
    Finding,
    check_path,
    check_source,
    format_findings,
    main,
)
from rlm.errors import RLMError
from tests.support import ROOT

CORPUS = ROOT / "tests" / "check_corpus"
EXPECT = re.compile(r"#\s*expect:\s*([\w\s,]+?)\s*$")
FILES = sorted(CORPUS.glob("*.py"))


def expected(path: Path) -> set[tuple[int, str]]:
    """``(line, rule)`` for every ``# expect: rule1, hazard`` comment in a corpus file."""
    out = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = EXPECT.search(line)
        if m:
            out |= {(number, rule.strip()) for rule in m.group(1).split(",")}
    return out


def found(path: Path) -> set[tuple[int, str]]:
    return {(f.line, f.rule) for f in check_path(str(path))}


def python_blocks(markdown: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", markdown, re.DOTALL)]


def section(markdown: str, title: str) -> str:
    """The text under the heading containing ``title``, up to the next heading of the same or a higher level."""
    lines = markdown.splitlines(keepends=True)
    fenced = False
    start, level = None, 0
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) ", line)
        if heading and start is None and title in line:
            start, level = i + 1, len(heading.group(1))
        elif heading and start is not None and len(heading.group(1)) <= level:
            return "".join(lines[start:i])
    assert start is not None, f"no heading with {title!r}"
    return "".join(lines[start:])


# -- the corpus ------------------------------------------------------------------------

def test_the_corpus_has_enough_bad_and_clean_tasks() -> None:
    bad = [p for p in FILES if expected(p)]
    clean = [p for p in FILES if not expected(p)]
    assert len(bad) >= 30 and len(clean) >= 15, (len(bad), len(clean))
    assert all(p.name.startswith("bad_") for p in bad) and all(p.name.startswith("clean_") for p in clean)
    rules = Counter(rule for p in bad for _, rule in expected(p))
    assert set(rules) == set(RULES) and min(rules.values()) >= 5, rules


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_file_reports_exactly_what_it_expects(path: Path) -> None:
    want, got = expected(path), found(path)
    assert {rule for _, rule in want} <= set(RULES), f"{path.name} expects an unknown rule"
    assert not want - got, f"{path.name}: missed {sorted(want - got)}"
    assert not got - want, f"{path.name}: unexpected {sorted(got - want)}:\n" + format_findings(
        f for f in check_path(str(path)) if (f.line, f.rule) in got - want)


def test_precision_and_recall_per_rule() -> None:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for path in FILES:
        want, got = expected(path), found(path)
        for _, rule in want & got:
            tp[rule] += 1
        for _, rule in got - want:
            fp[rule] += 1
        for _, rule in want - got:
            fn[rule] += 1
    rows = [f"{'rule':<8} {'expected':>8} {'found':>6} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}"]
    for rule in (*RULES, "all"):
        t, p, n = ((sum(c.values()) for c in (tp, fp, fn)) if rule == "all" else (tp[rule], fp[rule], fn[rule]))
        precision = t / (t + p) if t + p else 1.0
        recall = t / (t + n) if t + n else 1.0
        rows.append(f"{rule:<8} {t + n:>8} {t + p:>6} {t:>4} {p:>4} {n:>4} {precision:>9.2f} {recall:>7.2f}")
    clean = [p for p in FILES if not expected(p)]
    rows.append(f"{len(FILES) - len(clean)} bad files, {len(clean)} clean files "
                f"({sum(not found(p) for p in clean)} reported clean)")
    print("\n" + "\n".join(rows))
    assert not fp and not fn, (dict(fp), dict(fn))


# -- what must stay clean ------------------------------------------------------------------

def test_the_example_tasks_are_clean() -> None:
    assert check_path(str(ROOT / "tasks" / "example_task.py")) == []
    for name in ("analyze_document", "find_errors_in_log"):
        assert check_path(f"{ROOT / 'tasks' / 'example_task.py'}:{name}") == []


def test_the_claude_md_task_template_is_clean() -> None:
    policy = (ROOT / "claude.md").read_text(encoding="utf-8")
    template = [b for b in python_blocks(policy) if "def find_timeouts" in b]
    assert len(template) == 1
    assert check_source(template[0], "claude.md template") == []


@pytest.mark.parametrize("title", ["Writing tasks", "`rlm.runtime`", "Parallel subcalls"])
def test_the_readme_task_examples_are_clean(title: str) -> None:
    blocks = python_blocks(section((ROOT / "README.md").read_text(encoding="utf-8"), title))
    assert blocks and any(re.search(r"^def \w+\(context", b, re.MULTILINE) for b in blocks)
    for block in blocks:
        assert check_source(block, f"README {title}") == [], block


# -- the checker as a function --------------------------------------------------------------

def test_the_checked_file_is_never_imported_or_run(tmp_path: Path) -> None:
    task = tmp_path / "explodes.py"
    marker = tmp_path / "ran"
    task.write_text(f"import not_a_module_anywhere\nopen({str(marker)!r}, 'w').write('x')\nraise SystemExit(9)\n\n"
                    "def t(context):\n    return {'n': len(context)}\n")
    assert check_path(str(task)) == []
    assert not marker.exists()


def test_a_finding_says_where_which_rule_and_how_to_fix_it() -> None:
    source = "def t(context):\n    return {'x': semantic_subcall(f'Look: {context}', '')}\n"
    [finding] = check_source(source, "t.py")
    assert isinstance(finding, Finding)
    assert (finding.file, finding.line, finding.rule, finding.code) == ("t.py", 2, "rule1", "R1-fstring")
    assert finding.col >= 1 and "context" in finding.message and "context_slice" in finding.fix
    assert format_findings([finding]) == f"t.py:2:{finding.col}: rule1: {finding.message} (fix: {finding.fix})"


def test_function_selection_checks_only_that_task_and_its_helpers(tmp_path: Path) -> None:
    task = tmp_path / "two.py"
    task.write_text(textwrap.dedent("""\
        def _ask(doc):
            return semantic_subcall("x", doc)

        def good(context):
            return {"head": semantic_subcall("x", context_head(context, 100))}

        def bad(context):
            return {"answer": _ask(context)}
        """))
    assert {(f.line, f.rule) for f in check_path(str(task))} == {(2, "rule1")}
    assert check_path(f"{task}:good") == []
    assert [(f.line, f.rule) for f in check_path(f"{task}:bad")] == [(2, "rule1")]
    with pytest.raises(CheckError, match=r"no module-level function 'missing'.*good"):
        check_path(f"{task}:missing")


def test_an_unparseable_or_missing_file_is_a_check_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def task(context:\n    return 1\n")
    with pytest.raises(CheckError, match=r"broken\.py:1:\d+: cannot parse") as info:
        check_path(str(broken))
    assert isinstance(info.value, RLMError) and info.value.path == str(broken)
    with pytest.raises(CheckError, match="No such file"):
        check_path(str(tmp_path / "absent.py"))
    with pytest.raises(CheckError, match="directory"):
        check_path(str(tmp_path))


# -- the command line ----------------------------------------------------------------------

def test_main_exits_0_when_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(CORPUS / "clean_len_of_context.py"), str(ROOT / "tasks" / "example_task.py")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_main_exits_1_with_one_line_per_finding(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "bad_mixed_agent_session.py"
    assert main([str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(expected(path))
    for line in lines:
        assert re.fullmatch(rf"{re.escape(str(path))}:\d+:\d+: (rule[1-4]|hazard): .+ \(fix: .+\)", line), line


def test_main_exits_2_on_a_file_it_cannot_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def t(context) return 1\n")
    assert main([str(broken), str(CORPUS / "bad_r2_slice.py")]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "cannot parse" in err and "Traceback" not in err
    assert "bad_r2_slice.py" in out  # the other file was still checked
    assert main([str(tmp_path / "absent.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlm check: error: No such file") and err.count("\n") == 1
    assert main([]) == 2  # no paths: usage error
    capsys.readouterr()


def test_main_json_lists_the_findings(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "bad_h_re_on_context.py"
    assert main([str(path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {(d["line"], d["rule"]) for d in data} == expected(path)
    assert all(set(d) == {"file", "line", "col", "rule", "message", "fix", "code"} for d in data)
    assert main([str(CORPUS / "clean_early_exit.py"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_main_selects_a_function(capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{ROOT / 'tasks' / 'example_task.py'}:find_errors_in_log"
    assert main([spec]) == 0
    assert main([f"{ROOT / 'tasks' / 'example_task.py'}:no_such_task"]) == 2
    assert "no module-level function 'no_such_task'" in capsys.readouterr().err
