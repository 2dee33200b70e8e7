"""Each benchmark runs at a tiny size, so none of them can rot (the full sizes are run by hand).

They run in this process through their ``main(argv)``: an interpreter start with the SDK's import costs
about 2 s of CPU each, more than the tiny runs themselves.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def bench(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Run ``benchmarks/<script>`` with these arguments; its printed output. The environment it sets is undone."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings, as when run by path
    saved = dict(os.environ)

    def run(script: str, *args: str) -> str:
        spec = importlib.util.spec_from_file_location(f"benchmark_{Path(script).stem}", BENCHMARKS / script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        capsys.readouterr()
        assert module.main(list(args)) == 0
        return capsys.readouterr().out

    yield run
    os.environ.clear()
    os.environ.update(saved)


def test_context_search_benchmark(bench: Callable[..., str], tmp_path: Path) -> None:
    out = bench("context_search.py", "--size", "2M", "--dir", str(tmp_path), "--repeat", "1")
    assert "| literal" in out and "| alternation" in out and "| case-insensitive" in out
    assert "first hit of a common pattern" in out and "RssAnon" in out
    assert len(list(tmp_path.glob("synthetic-*.log"))) == 1  # generated once, reused next time
    bench("context_search.py", "--size", "2M", "--dir", str(tmp_path), "--repeat", "1")


def test_subcall_overhead_benchmark(bench: Callable[..., str]) -> None:
    out = bench("subcall_overhead.py", "--calls", "5", "--warmup", "1")
    assert "raw openai" in out and "semantic_subcall" in out and "ratio" in out


@pytest.mark.parametrize("latency", ["0.02"])
def test_parallel_benchmark(bench: Callable[..., str], latency: str) -> None:
    out = bench("parallel.py", "--calls", "8", "--workers", "4", "--latency", latency)
    assert "replay from warm cache" in out and "0 requests" in out


def test_guarantees_benchmark(bench: Callable[..., str]) -> None:
    out = bench("guarantees.py", "--quick")
    assert "catastrophic" in out and "stuck in C" in out and "abandoned call" in out
    assert "MISS" not in out


def test_report_render_benchmark(bench: Callable[..., str]) -> None:
    out = bench("report_render.py", "--subcalls", "300", "--repeat", "1")
    assert "| report file size" in out and "| report build (Python)" in out and "MISSED" not in out
    assert "| in-browser render" in out  # measured, or "skipped: chromium not found"


def test_longcontext_benchmark(bench: Callable[..., str], tmp_path: Path) -> None:
    # 2^12 fits the oracle's (shrunk) window and 2^13 does not, so the whole-context baseline is refused once.
    out = bench("longcontext.py", "--min-exp", "12", "--max-exp", "13", "--window", "6000", "--no-plot",
                "--dir", str(tmp_path))
    for name in ("s-niah", "oolong", "pairs"):
        for exp in (12, 13):
            assert re.search(rf"^\| {name} +\| 2\^{exp} ", out, re.MULTILINE)
    assert out.count("| 1.000      |") == 6  # our task scores exactly 1.0 on every row
    assert "0 req $0" in out and "(1x400)" in out and "(10x400)" in out
    assert "self-check passed: every task scored 1.0 at every size" in out
    assert len(list(tmp_path.glob("*.manifest.json"))) == 6 and (tmp_path / "longcontext.json").exists()


def test_example_tasks_benchmark(bench: Callable[..., str], tmp_path: Path) -> None:
    out = bench("example_tasks.py", "--size", "300K", "--files", "3", "--file-size", "20K", "--dir", str(tmp_path))
    for label in ("| log ", "| 3 files "):
        assert out.count(label) == 2  # both tasks, dry run and live
    assert "x grep (" in out and re.search(r"\| \d+ / \d+ ", out)


def test_remote_scan_benchmark(bench: Callable[..., str], tmp_path: Path, s3_server: str) -> None:
    pytest.importorskip("s3fs", reason='the remote benchmark needs pip install "rlm[remote]"')
    out = bench("remote_scan.py", "--size", "2M", "--files", "3", "--dir", str(tmp_path), "--endpoint", s3_server)
    assert "| s3:// (moto, 127.0.0.1)" in out and "wall-time ratio s3/local" in out
    assert re.search(r"bytes fetched [\d,]+ for [\d,]+ object bytes \(1\.0\d\dx", out), out


def test_mcp_exploration_benchmark(bench: Callable[..., str], tmp_path: Path) -> None:
    pytest.importorskip("mcp", reason='the MCP benchmark needs pip install "rlm[mcp]"')
    out = bench("mcp_exploration.py", "--size", "256K", "--dir", str(tmp_path))
    assert "| describe(log)" in out and "| run_task(log, 'find_errors_in_log')" in out
    assert "total the agent received" in out and "`grep ERROR`" in out and ": met." in out
