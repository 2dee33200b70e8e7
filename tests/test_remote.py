"""Inputs in object storage: a real S3 API (moto's server mode) and an HTTP server that honours Range, both on
127.0.0.1. The same files are read locally for comparison."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from rlm.context_access import (
    context_chunks,
    context_finditer,
    context_line,
    context_search,
    context_slice,
    open_context,
)
from rlm.errors import ContextAccessError, RemoteInputError
from rlm.guards import GuardConfig
from rlm.loopback import Reply
from rlm.runtime import publish, run_task

pytest.importorskip("s3fs", reason='the remote tests need pip install "rlm[remote]"')
boto3 = pytest.importorskip("boto3")

SECRET = "SECRETKEY-do-not-print-0123456789"


def _log(n: int, seed: int) -> bytes:
    lines = []
    for i in range(n):
        if (i + seed) % 53 == 0:
            lines.append(f"2026-01-0{seed} 10:{i % 60:02d}:00 ERROR db timeout after {i} ms on shard-{i % 7} ü\n")
        elif (i + seed) % 211 == 0:
            lines.append(f"2026-01-0{seed} 10:{i % 60:02d}:01 FATAL worker {i} crashed\n  at Main.run(Main.java:{i})\n")
        else:
            lines.append(f"2026-01-0{seed} 10:{i % 60:02d}:02 INFO request {i} served in {i % 90} ms\n")
    return "".join(lines).encode()


FILES = {"app.log": _log(3000, 3), "app.log.1": _log(2500, 2), "app.log.2": _log(2000, 1), "empty.log": b""}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, s3_server: str) -> Any:
    """The standard AWS variables pointed at the local S3 server; a client to fill it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    return boto3.client("s3")


@pytest.fixture
def logs(aws: Any, tmp_path: Path) -> tuple[str, Path]:
    """Rotated logs and a gzipped one, both under s3://<bucket>/logs/ and in a local directory: (bucket, dir)."""
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    aws.create_bucket(Bucket=bucket)
    local = tmp_path / "logs"
    local.mkdir()
    for name, data in {**FILES, "old.log.gz": gzip.compress(b"ERROR gone\n")}.items():
        aws.put_object(Bucket=bucket, Key=f"logs/{name}", Body=data)
        (local / name).write_bytes(data)
    return bucket, local


class _Objects(http.server.ThreadingHTTPServer):
    """Serves files by Range on 127.0.0.1, counting the bytes it sends; it can fail or deny on demand."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.served = 0
        self.fail_after: int | None = None  # once this many bytes went out, every GET gets a 503
        self.status: int | None = None  # answer every request with this status
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Objects

    def log_message(self, *args: Any) -> None:
        pass

    def _head(self, code: int, length: int, path: Path | None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if path is not None:
            info = path.stat()
            self.send_header("ETag", f'"{info.st_size}-{info.st_mtime_ns}"')
            self.send_header("Last-Modified", formatdate(info.st_mtime, usegmt=True))
        self.end_headers()

    def _refuse(self) -> bool:
        srv = self.server
        code = srv.status
        if code is None and self.command == "GET" and srv.fail_after is not None and srv.served >= srv.fail_after:
            code = 503
        path = srv.files.get(self.path.lstrip("/").split("?")[0])
        if code is None and path is None:
            code = 404
        if code is not None:
            self._head(code, 0, None)
        return code is not None

    def do_HEAD(self) -> None:  # noqa: N802
        if not self._refuse():
            path = self.server.files[self.path.lstrip("/").split("?")[0]]
            self._head(200, path.stat().st_size, path)

    def do_GET(self) -> None:  # noqa: N802
        if self._refuse():
            return
        path = self.server.files[self.path.lstrip("/").split("?")[0]]
        size = path.stat().st_size
        lo, hi = 0, size - 1
        if ranged := self.headers.get("Range"):
            first, last = ranged.removeprefix("bytes=").split("-")
            lo, hi = int(first), min(int(last) if last else size - 1, size - 1)
        self._head(206 if ranged else 200, hi - lo + 1, path)
        with open(path, "rb") as f:
            f.seek(lo)
            while lo <= hi:  # in pieces: the server's own memory stays out of the client's measure
                data = f.read(min(hi - lo + 1, 1 << 20))
                self.wfile.write(data)
                lo += len(data)
                with self.server.lock:
                    self.server.served += len(data)


@pytest.fixture
def objects(tmp_path: Path) -> Iterator[_Objects]:
    files = {}
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
        files[name] = tmp_path / name
    server = _Objects(files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _hits(ctx: Any, pattern: str) -> list[tuple[Any, ...]]:
    return [(m.span, m.file_span, m.line, str(m.text), m.groups) for m in context_finditer(ctx, pattern)]


def _same(remote: Any, local: Any, prefix: str, where: str) -> None:
    """Every reading function gives the same answer over the objects as over the local files."""
    assert [name.replace(prefix, where) for name in remote.files] == local.files
    assert remote.file_spans == [(n.replace(where, prefix), a, b) for n, a, b in local.file_spans]
    for pattern in [r"ERROR[^\n]*", r"(?i)[^\n]*\b(?:error|fatal)\b[^\n]*", r"after (\d+) ms", r"^2026",
                    r"(?m)^[ \t]+at .*$", r"crashed\n  at", r"(?<=shard-)\d", "ERROR|FATAL", r"ü"]:
        assert _hits(remote, pattern) == _hits(local, pattern), pattern
    for lo, hi in ((10, 5000), (1234, 150_000), (len(local) // 2 + 7, len(local) - 3)):  # ranges cut lines
        assert [(m.span, m.line, str(m.text)) for m in context_search(remote, r"[^\n]*ERROR\b", None, start=lo, end=hi)] \
            == [(m.span, m.line, str(m.text)) for m in context_search(local, r"[^\n]*ERROR\b", None, start=lo, end=hi)]
    assert [(c.span, str(c)) for c in context_chunks(remote, 3000, 100)] == \
        [(c.span, str(c)) for c in context_chunks(local, 3000, 100)]
    for pos in (0, 17, len(local) // 3, len(local) - 1):
        assert context_line(remote, pos) == context_line(local, pos)
        assert context_slice(remote, pos - 500, pos + 500) == context_slice(local, pos - 500, pos + 500)
        assert remote.locate(pos).line == local.locate(pos).line


def test_a_prefix_is_one_context_equal_to_the_same_files_read_locally(logs: tuple[str, Path]) -> None:
    bucket, local_dir = logs
    with open_context([f"s3://{bucket}/logs/"]) as remote, open_context(local_dir) as local:
        assert remote.files == [f"s3://{bucket}/logs/app.log.2", f"s3://{bucket}/logs/app.log.1",
                                f"s3://{bucket}/logs/app.log", f"s3://{bucket}/logs/empty.log"]  # oldest first
        assert remote.skipped == [f"s3://{bucket}/logs/old.log.gz"]
        _same(remote, local, f"s3://{bucket}/logs/", local.files[0].rsplit("/", 1)[0] + "/")
        hit = context_search(remote, "FATAL", 1)[0]
        assert (hit.file, hit.line) == (f"s3://{bucket}/logs/app.log.2", 211)
        assert hit.to_dict()["file"] == f"s3://{bucket}/logs/app.log.2"


def test_a_glob_and_a_list_of_objects_are_one_context(logs: tuple[str, Path]) -> None:
    bucket, _ = logs
    with open_context([f"s3://{bucket}/logs/app.log*"]) as globbed:
        assert [f.rsplit("/", 1)[1] for f in globbed.files] == ["app.log.2", "app.log.1", "app.log"]
    named = [f"s3://{bucket}/logs/app.log", f"s3://{bucket}/logs/app.log.1"]
    with open_context(named) as listed:
        assert listed.files == named  # named one by one: the order given
        assert len(listed) == len(FILES["app.log"]) + len(FILES["app.log.1"])


def test_find_errors_in_log_finds_what_the_local_copy_finds_citing_object_urls(
        logs: tuple[str, Path], llm: Any, cli: Any) -> None:
    bucket, local_dir = logs
    report = local_dir.parent / "report.html"
    remote = cli(f"s3://{bucket}/logs/", "--task", "find_errors_in_log", "--compact", "--report", str(report))
    local = cli("logs", "--task", "find_errors_in_log", "--compact", cwd=local_dir.parent)
    assert remote.code == local.code == 0, remote.stderr
    assert "left out 1 binary or compressed object" in remote.stderr

    def cited(ran: Any, prefix: str) -> list[Any]:
        findings = ran.result["result"]["findings"]
        return [json.loads(json.dumps({k: f[k] for k in ("signature", "count", "first_line", "last_line",
                                                           "examples")}).replace(prefix, "")) for f in findings]

    assert cited(remote, f"s3://{bucket}/") == cited(local, "")
    assert f"s3://{bucket}/logs/app.log.2" in remote.stdout
    assert f"s3://{bucket}/logs/app.log.2" in report.read_text()  # the audit report names the objects
    assert SECRET not in remote.stdout + remote.stderr + report.read_text()


def test_a_full_scan_fetches_each_byte_about_once(objects: _Objects) -> None:
    urls = [objects.url(name) for name in ("app.log.2", "app.log.1", "app.log")]
    total = sum(len(FILES[n]) for n in FILES)
    with open_context(urls) as ctx:
        hits = [(m.file, m.line) for m in context_finditer(ctx, r"(?i)[^\n]*\berror\b[^\n]*")]
        assert hits[0] == (urls[0], 53) and len(hits) == sum(d.count(b"ERROR") for d in FILES.values())
        assert objects.served <= 1.2 * total
        served = objects.served
        assert ctx.fingerprint() and objects.served == served  # ETag, size and mtime: no byte fetched


def test_memory_stays_flat_while_a_large_object_is_scanned(tmp_path: Path, objects: _Objects) -> None:
    big = tmp_path / "big.log"
    line = b"2026-01-01 10:00:00 INFO request served in 12 ms, nothing to see here at all\n"
    with open(big, "wb") as f:
        for _ in range(96):
            f.write(line * ((1 << 20) // len(line)))
    objects.files["big.log"] = big
    baseline = _rss_anon()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_anon())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with open_context([objects.url("big.log")]) as ctx:
            count = sum(1 for _ in context_finditer(ctx, "nothing to see"))
    finally:
        done.set()
        sampler.join()
    assert count == (big.stat().st_size // len(line))
    # A window being searched, the next one arriving, and their copies: a bound that does not grow with the object.
    assert peak[0] - baseline < 48 << 20, f"grew by {(peak[0] - baseline) >> 20} MiB for a 96 MiB object"
    assert objects.served <= 1.2 * big.stat().st_size


def _rss_anon() -> int:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith("RssAnon:"):
                return int(row.split()[1]) * 1024
    return 0


def test_the_fingerprint_follows_etag_size_and_mtime(logs: tuple[str, Path], aws: Any) -> None:
    bucket, _ = logs
    url = [f"s3://{bucket}/logs/app.log"]
    with open_context(url) as before, open_context(url) as again:
        assert before.fingerprint() == again.fingerprint()
    aws.put_object(Bucket=bucket, Key="logs/app.log", Body=FILES["app.log"].replace(b"INFO", b"WARN"))
    with open_context(url) as after:
        assert after.fingerprint() != before.fingerprint()


def test_the_trace_names_the_urls(logs: tuple[str, Path], tmp_path: Path) -> None:
    bucket, _ = logs
    trace = tmp_path / "trace.jsonl"

    def task(ctx: Any) -> int:
        hits = context_search(ctx, "FATAL", 3)
        context_line(ctx, hits[0].start)  # an access inside one object names it
        return len(hits)

    result = run_task(task, [f"s3://{bucket}/logs/app.log*"], GuardConfig(dry_run=True, trace_path=str(trace)))
    assert result["status"] == "completed" and result["result"] == 3
    events = [json.loads(row) for row in trace.read_text().splitlines()]
    start = next(e for e in events if e.get("event") == "run_start")
    assert [f["name"] for f in start["context"]["files"]][0] == f"s3://{bucket}/logs/app.log.2"
    assert start["input_fingerprint"]
    assert any(e.get("file") == f"s3://{bucket}/logs/app.log.2" for e in events if e.get("event") == "context_access")
    assert SECRET not in trace.read_text()


def test_a_network_failure_mid_scan_ends_the_run_partial_with_published_results_kept(
        objects: _Objects, tmp_path: Path) -> None:
    (tmp_path / "long.log").write_bytes(_log(12000, 3))  # longer than a search's first window
    objects.files["long.log"] = tmp_path / "long.log"
    objects.fail_after = 300_000  # the first window (256 KiB and on to a newline) is served, then every request fails

    def task(ctx: Any) -> list[int]:
        seen = publish("lines", [])
        for m in context_finditer(ctx, r"ERROR[^\n]*"):
            seen.append(m.line)
        return seen

    started = time.monotonic()
    result = run_task(task, [objects.url("long.log")], GuardConfig(dry_run=True, max_runtime_seconds=1.0))
    assert result["status"] == "partial"
    lines = result["result"]["lines"]
    assert lines[:2] == [51, 104] and len(lines) < 12000 // 53
    assert "long.log failed" in result["error"] and "retried" in result["error"]
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("problem", ["no bucket", "no key", "no credentials", "denied", "no extra"])
def test_storage_errors_stop_the_command_line_before_any_work_in_one_line(
        problem: str, logs: tuple[str, Path], objects: _Objects, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket, _ = logs
    url = {"no bucket": "s3://no-such-bucket-here/logs/", "no key": f"s3://{bucket}/nothing/here.log",
           "no credentials": f"s3://{bucket}/logs/", "denied": objects.url("app.log") + "?token=" + SECRET,
           "no extra": f"s3://{bucket}/logs/"}[problem]
    if problem == "no credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    if problem == "denied":
        objects.status = 403
    if problem == "no extra":
        monkeypatch.setitem(sys.modules, "fsspec", None)  # as if the extra were not installed
    ran = cli(url, "--task", "find_errors_in_log", "--dry-run")
    assert ran.code == 2 and ran.stdout == ""
    expected = {"no bucket": "No such bucket: no-such-bucket-here", "no key": "No such object or prefix",
                "no credentials": "No credentials to read", "denied": "Access denied to",
                "no extra": 'pip install "rlm[remote]"'}[problem]
    assert expected in ran.stderr and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert SECRET not in ran.stderr
    with pytest.raises(RemoteInputError) as raised:  # the library raises it, with its facts
        open_context([url])
    assert raised.value.reason == {"no bucket": "no_bucket", "no key": "not_found", "no credentials": "no_credentials",
                                   "denied": "access_denied", "no extra": "no_extra"}[problem]
    assert SECRET not in raised.value.url


def test_a_pattern_that_could_match_across_window_edges_is_refused_over_objects(logs: tuple[str, Path]) -> None:
    bucket, _ = logs
    with open_context([f"s3://{bucket}/logs/app.log"]) as ctx:
        with pytest.raises(ContextAccessError, match="may match across lines"):
            context_search(ctx, r"(?s)ERROR.*FATAL")
        assert context_search(ctx, r"crashed\n  at Main", 1)  # bounded: windows overlap by its width


def test_a_url_names_no_user_password_or_query(objects: _Objects) -> None:
    url = objects.url("app.log").replace("http://", "http://user:pw@") + "?X-Amz-Signature=" + SECRET
    with open_context([url]) as ctx:
        assert ctx.files == [objects.url("app.log")]
        assert SECRET not in json.dumps(ctx.describe())


def test_importing_rlm_imports_no_storage_library() -> None:
    code = ("import sys, rlm, rlm.cli, rlm.context_access, rlm.runtime; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fsspec', 's3fs', 'botocore', 'aiohttp'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.stdout.strip() == "[]"


def test_resume_accepts_the_same_objects_and_refuses_changed_ones(
        logs: tuple[str, Path], aws: Any, llm: Any, cli: Any, tmp_path: Path) -> None:
    bucket, _ = logs
    url = f"s3://{bucket}/logs/app.log*"
    llm.responder = lambda body: Reply('{"severity": "critical", "summary": "It broke."}', prompt_tokens=1500,
                                       completion_tokens=1000)
    halt = ("--task", "find_errors_in_log", "--cost", "0.001", "--workers", "1", "--compact", "--trace")
    assert cli(url, *halt, str(tmp_path / "t1.jsonl")).code == 3  # the cost limit halts it: partial
    resumed = cli(url, "--task", "find_errors_in_log", "--cost", "0.01", "--resume", str(tmp_path / "t1.jsonl"))
    assert resumed.code == 0 and "resuming run" in resumed.stderr, resumed.stderr
    assert cli(url, "--no-cache", *halt, str(tmp_path / "t2.jsonl")).code == 3  # not answered from the cache
    aws.put_object(Bucket=bucket, Key="logs/app.log", Body=FILES["app.log"] + b"ERROR one more\n")
    refused = cli(url, "--task", "find_errors_in_log", "--resume", str(tmp_path / "t2.jsonl"))
    assert refused.code == 2 and "the input changed" in refused.stderr
