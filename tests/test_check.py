"""The task checker finds what the corpus of bad tasks expects, nothing in the clean ones, and has a CLI."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from rlm._exits import EXIT_COMPLETED, EXIT_FINDINGS, EXIT_INTERNAL, EXIT_USAGE
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

def test_main_says_each_clean_file_is_clean_in_one_line_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    alone, with_helper = CORPUS / "clean_len_of_context.py", CORPUS / "clean_helper_ctx_is_chunk.py"
    assert main([str(alone), f"{with_helper}:excerpt_summaries"]) == EXIT_COMPLETED == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{alone}: clean (4 rules, 1 function checked)",
                                f"{with_helper}:excerpt_summaries: clean (4 rules, 2 functions checked)"]
    assert err == ""


def test_main_says_when_a_clean_file_has_no_task_to_check(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    helpers_only = tmp_path / "helpers.py"
    helpers_only.write_text("def _private(context):\n    return 1\n\ndef two(a, b):\n    return a + b\n")
    assert main([str(helpers_only)]) == EXIT_COMPLETED
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{helpers_only}: clean, but it has no task to check") and "PATH.py:function" in line


def test_main_exits_1_with_one_line_per_finding(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "bad_mixed_agent_session.py"
    assert main([str(path)]) == EXIT_FINDINGS == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(expected(path))
    for line in lines:
        assert re.fullmatch(rf"{re.escape(str(path))}:\d+:\d+: (rule[1-4]|hazard): .+ \(fix: .+\)", line), line


def test_main_exits_2_on_a_file_it_cannot_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def t(context) return 1\n")
    assert main([str(broken), str(CORPUS / "bad_r2_slice.py")]) == EXIT_USAGE == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "cannot parse" in err and "Traceback" not in err
    assert "bad_r2_slice.py" in out  # the other file was still checked
    assert main([str(tmp_path / "absent.py")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("rlm check: error: No such file") and err.count("\n") == 1
    assert main([]) == EXIT_USAGE  # no paths
    assert main(["--no-such-flag", str(CORPUS / "clean_early_exit.py")]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and "--no-such-flag" in err


def test_main_exits_70_with_one_line_on_a_bug_in_the_checker(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm.check._statements import Checker

    def broken(self: Checker, fn: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(Checker, "check_task", broken)
    assert main([str(CORPUS / "clean_early_exit.py"), str(CORPUS / "bad_r2_slice.py")]) == EXIT_INTERNAL == 70
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 2 and "Traceback" not in err  # one line per file, and the second file was tried
    assert err.startswith("rlm check: internal error while checking ") and "KeyError" in err and "report" in err


def test_a_task_too_deeply_nested_to_follow_is_a_check_error_not_a_crash(tmp_path: Path) -> None:
    chain = tmp_path / "chain.py"
    chain.write_text("def t(context):\n    x = " + " + ".join(["'a'"] * 600) + "\n    return {'x': x}\n")
    with pytest.raises(CheckError, match="nested too deeply") as info:
        check_path(str(chain))
    assert isinstance(info.value.__cause__, RecursionError) and info.value.path == str(chain)


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


# -- threads and processes of the task's own -------------------------------------------------

THREAD_STARTS = {  # each starts its thread or process on the line marked "# starts"
    "threading.Thread": "import threading\n\ndef t(context):\n    threading.Thread(target=print).start()  # starts\n",
    "threading.Timer": "from threading import Timer\n\ndef t(context):\n    Timer(1.0, print).start()  # starts\n",
    "ThreadPoolExecutor as P": "from concurrent.futures import ThreadPoolExecutor as P\n\ndef t(context):\n"
                               "    with P(4) as pool:  # starts\n        return {'n': len(list(pool.map(len, [])))}\n",
    "ProcessPoolExecutor": "import concurrent.futures\n\ndef t(context):\n"
                           "    concurrent.futures.ProcessPoolExecutor().shutdown()  # starts\n",
    "multiprocessing alias": "import multiprocessing as mp\n\ndef t(context):\n"
                             "    mp.Process(target=print).start()  # starts\n",
    "multiprocessing.dummy": "from multiprocessing.dummy import Pool\n\ndef t(context):\n    Pool(2).close()  # starts\n",
    "os.fork": "import os\n\ndef t(context):\n    return {'pid': os.fork()}  # starts\n",
    "asyncio.to_thread": "import asyncio\n\nasync def t(context):\n"
                         "    return {'n': await asyncio.to_thread(len, '')}  # starts\n",
    "run_in_executor": "import asyncio\n\nasync def t(context):\n    loop = asyncio.get_running_loop()\n"
                       "    return {'n': await loop.run_in_executor(None, len, '')}  # starts\n",
    "Thread subclass": "import threading\n\nclass W(threading.Thread):\n    pass\n\ndef t(context):\n"
                       "    W().start()  # starts\n",
    "in a helper": "import threading\n\ndef _go(text):\n    threading.Thread(target=print).start()  # starts\n\n"
                   "def t(context):\n    _go('x')\n",
}


@pytest.mark.parametrize("how", THREAD_STARTS)
def test_a_task_starting_its_own_thread_or_process_is_told_to_use_parallel_map(how: str) -> None:
    source = THREAD_STARTS[how]
    [finding] = check_source(source, "t.py")
    line = next(n for n, text in enumerate(source.splitlines(), 1) if text.endswith("# starts"))
    assert (finding.rule, finding.code, finding.line) == ("hazard", "H-threads", line)
    assert "parallel_map" in finding.message and "parallel_map" in finding.fix


def test_locks_cpu_counts_and_parallel_map_start_nothing_of_the_tasks_own() -> None:
    source = textwrap.dedent("""\
        import multiprocessing
        import threading

        from rlm.subcalls import parallel_map, semantic_subcall


        def t(context):
            lock = threading.Lock()
            workers = multiprocessing.cpu_count()
            with lock:
                answers = parallel_map(lambda i: semantic_subcall("Why?", str(i)), range(3), max_workers=workers)
            return {"answers": answers}
        """)
    assert check_source(source, "t.py") == []


def test_the_thread_corpus_names_each_way_in_and_stays_clean_with_parallel_map() -> None:
    bad = sorted(CORPUS.glob("bad_threads_*.py"))
    assert {p.name for p in bad} >= {"bad_threads_direct_import.py", "bad_threads_module_alias.py",
                                     "bad_threads_from_import_as.py"}
    codes = {f.code for p in bad for f in check_path(str(p))}
    assert codes == {"H-threads"}
    assert check_path(str(CORPUS / "clean_threads_parallel_map.py")) == []


def test_python_dash_m_rlm_check_runs_the_command_line(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    monkeypatch.setattr("sys.argv", ["python -m rlm.check", str(CORPUS / "bad_r2_slice.py")])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("rlm.check", run_name="__main__")
    assert info.value.code == EXIT_FINDINGS
    assert "bad_r2_slice.py" in capsys.readouterr().out
