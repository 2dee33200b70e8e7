"""Every page under docs/ runs as written: its Python blocks in order in one interpreter, its commands in order.

A page added under docs/ is picked up here with no change to this file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rlm.loopback import LoopbackServer
from tests.support import ROOT
from tests.test_readme import blocks, run_blocks, shell_commands

PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)?(?:#([^)\s]+))?\)")


def answer(body: dict) -> str:  # type: ignore[type-arg]
    """One model for every page: JSON with an answer and a quote from examples/server.log, else yes, else a severity."""
    if "response_format" in body:
        return '{"answer": "the connection was refused", "quote": "database connection refused"}'
    return "yes" if "yes or no" in body["messages"][1]["content"] else "critical"


def test_there_are_docs_pages() -> None:
    names = {p.name for p in PAGES}
    assert {"api.md", "cli.md", "writing-tasks.md", "configuration.md", "benchmarks.md"} <= names


def with_storage_if_named(page: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page that reads s3://bucket/logs/ gets it: a real S3 API (moto) holding the example log, rotated."""
    if "s3://bucket/" not in page.read_text(encoding="utf-8"):
        return
    endpoint = request.getfixturevalue("s3_server")
    boto3 = pytest.importorskip("boto3")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                        "AWS_CONFIG_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    log = (ROOT / "examples" / "server.log").read_bytes()
    for key in ("logs/app.log.2", "logs/app.log.1", "logs/app.log"):
        s3.put_object(Bucket="bucket", Key=key, Body=log)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_python_blocks_of_each_page_run_in_order(page: Path, llm: LoopbackServer, request: pytest.FixtureRequest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with_storage_if_named(page, request, monkeypatch)
    monkeypatch.chdir(ROOT)
    llm.responder = answer
    code = blocks("python", page.read_text(encoding="utf-8"))
    if not code:
        pytest.skip(f"docs/{page.name} has no Python block")
    namespace, out = run_blocks(f"docs/{page.name}", code)
    if page.name == "api.md":
        assert namespace["cited"]["span"] is not None  # type: ignore[index]  # the quote was found and cited
        assert "'severity': 'critical'" in out


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_commands_of_each_page_run_in_order(page: Path, llm: LoopbackServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Each rlm command line in a ```bash block, in order, in a scratch directory that sees the repository's files
    (so a trace written by one command is there for the next), exiting as its `# exits N` comment says (else 0)."""
    commands = shell_commands(page.read_text(encoding="utf-8"))
    if not commands:
        pytest.skip(f"docs/{page.name} has no rlm command")
    with_storage_if_named(page, request, monkeypatch)
    for entry in os.listdir(ROOT):
        if not entry.startswith("."):
            (tmp_path / entry).symlink_to(ROOT / entry)
    monkeypatch.chdir(tmp_path)
    llm.responder = answer
    for run, expected, line in commands:
        code = run(monkeypatch)
        out, err = capsys.readouterr()
        assert code == expected, f"docs/{page.name}: {line}\nexit {code}\n{err}"


def test_the_api_reference_names_every_public_function() -> None:
    import rlm

    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in rlm.__all__ if name not in api]
    assert missing == []


def test_every_local_link_and_anchor_resolves() -> None:
    """Links between README.md, docs/*.md, claude.md and .claude/ point at files and headings that exist."""
    for page in [ROOT / "README.md", ROOT / "claude.md", *sorted((ROOT / ".claude").rglob("*.md")), *PAGES]:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target, anchor in LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve() if target else page
            assert path.exists(), f"{page.relative_to(ROOT)} links to a missing {target}"
            if anchor and path.suffix == ".md":
                assert anchor in anchors(path.read_text(encoding="utf-8")), \
                    f"{page.relative_to(ROOT)} links to #{anchor}, not a heading of {path.relative_to(ROOT)}"


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_anchors_follow_github() -> None:
    assert anchors("## The audit trail\n### Partial results: `publish`\n## Exit codes, per cause\n") == {
        "the-audit-trail", "partial-results-publish", "exit-codes-per-cause"}



def test_every_code_block_says_what_it_is() -> None:
    """A block is Python (run), bash (its rlm commands run), json or text (shown): an unmarked block would escape."""
    for page in [ROOT / "README.md", *PAGES]:
        fences = re.findall(r"^```(\S*)$", page.read_text(encoding="utf-8"), re.M)
        languages = fences[0::2]  # every other fence opens a block
        assert set(languages) <= {"python", "bash", "json", "text"}, (page.name, languages)


def test_the_readme_is_a_front_door_to_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    unlinked = [p.name for p in PAGES if f"](docs/{p.name})" not in readme]
    assert unlinked == []


def test_every_setting_the_code_reads_is_documented() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "rlm").rglob("*.py"))
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    read = set(re.findall(r"[\"'](RLM_[A-Z_]+)[\"']", code)) | {"OPENAI_API_KEY", "OPENAI_BASE_URL"}
    assert sorted(name for name in read if f"`{name}" not in page) == []


def test_every_exit_code_is_documented_per_cause() -> None:
    from rlm import _exits

    codes = {getattr(_exits, name) for name in _exits.__all__}
    table = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split("## Exit codes, per cause")[1]
    assert codes == {int(c) for c in re.findall(r"^\| \*\*(\d+)\*\* \|", table, re.M)}
