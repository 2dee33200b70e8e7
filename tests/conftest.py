"""Shared fixtures: a real loopback OpenAI-compatible server and a clean environment."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from rlm.cli import main
from rlm.loopback import LoopbackServer
from tests.support import ROOT, Cli, Ran

# Property tests draw the same examples on every run and keep no example database: a failure in CI reproduces
# on a laptop. HYPOTHESIS_PROFILE=explore searches afresh, and further.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def api_key() -> str:
    """The API key the ``llm`` fixture sets: a test asserts it never reaches a trace, an error or the output."""
    return "sk-test-SECRETKEY-0123456789abcdef"


@pytest.fixture
def child_env() -> Callable[..., dict[str, str]]:
    """``child_env(**extra)``: this environment for a child run.py, with the price and the token bound set.

    The child neither loads genai-prices' table nor tries to download tiktoken's files (0.5 s or more of CPU
    each), and it counts tokens alike on every machine. Call it after the ``llm`` fixture has set the API.
    """

    def env(**extra: str) -> dict[str, str]:
        return {**os.environ, "RLM_PRICE_INPUT": "0.15", "RLM_PRICE_OUTPUT": "0.6", "RLM_TOKEN_COUNTING": "bytes",
                **extra}

    return env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's real keys or RLM_* settings, or writes to their response cache."""
    for name in list(os.environ):
        if name.startswith(("RLM_", "OPENAI_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path_factory.mktemp("rlm-cache")))


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch, api_key: str) -> Iterator[LoopbackServer]:
    """A loopback model server, with OPENAI_BASE_URL and OPENAI_API_KEY pointing at it."""
    with LoopbackServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", api_key)
        yield server


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.log"
    path.write_text(
        "2026-01-01 10:00:00 INFO service started\n"
        "2026-01-01 10:00:01 ERROR database connection refused\n"
        "2026-01-01 10:00:02 INFO retrying\n"
        "2026-01-01 10:00:03 WARN slow query\n"
        "2026-01-01 10:00:04 ERROR unhandled Exception in handler\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def stuck_task(tmp_path: Path) -> str:
    """``path.py:stuck``: a task that publishes, makes two calls, then sticks in C code that holds the GIL."""
    path = tmp_path / "stuck.py"
    path.write_text(
        "import re\n"
        "from rlm.context_access import context_head\n"
        "from rlm.runtime import publish\n"
        "from rlm.subcalls import semantic_subcall\n\n"
        "def stuck(context):\n"
        "    seen = publish('seen', [])\n"
        "    seen.append(semantic_subcall('First.', context_head(context, 100)))\n"
        "    semantic_subcall('Second.', context_head(context, 50))\n"
        "    re.match(r'(a+)+$', 'a' * 64 + 'b')  # catastrophic backtracking in C: no thread can interrupt it\n"
        "    return seen\n")
    return f"{path}:stuck"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(*argv, cwd=..., stdin=..., **env)``: main(argv) in this process, its exit code and output."""

    def run(*args: str, cwd: Path = ROOT, stdin: str | None = None, traceback: bool = False, **env: str) -> Ran:
        monkeypatch.chdir(cwd)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        assert traceback or "Traceback" not in err, err
        return Ran(code, out, err)

    return run


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(kib)``: a real filesystem of that size (a tmpfs), for full-disk and read-only behaviour."""
    import subprocess

    mounted: list[Path] = []

    def mount(kib: int) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small filesystem here ({done.stderr.strip() or 'not root'})")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API (moto's server mode) on 127.0.0.1, started once per session: its endpoint URL.

    Tests point the standard AWS variables at it themselves (monkeypatch), as a user would for MinIO.
    """
    server_module = pytest.importorskip("moto.server", reason='the remote tests need pip install "moto[server]"')
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
