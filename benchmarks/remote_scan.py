"""A full scan of logs in S3 (moto's server on 127.0.0.1) against the same files read locally.

Generates rotated logs (deterministic; kept in a temp dir and reused), uploads them to a local S3 server
(moto in its own process, so its memory is not counted here), then scans every byte of both with the
problem-line pattern of ``find_errors_in_log`` (every hit and its line number), and prints the wall-time
ratio, the bytes fetched over the object bytes (target: at most 1.2x), and the peak growth of anonymous
memory (RssAnon) during each scan (flat: it does not grow with the input).

    python benchmarks/remote_scan.py                 # 1 GB in 8 objects
    python benchmarks/remote_scan.py --size 50M --endpoint http://127.0.0.1:5000   # an S3 server already up
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import peak_rss_anon, rss_anon_mb, table, timed
from context_search import generate, parse_size

from rlm import _remote
from rlm.context_access import Context, context_finditer, open_context

TARGET_FETCHED = 1.2
#: The problem-line pattern of find_errors_in_log: a whole line holding a problem word.
LOG_PROBLEM_LINES = r"(?i)[^\n]*\b(?:error|exception|fatal|critical|traceback|panic)\b[^\n]*"


@contextmanager
def s3_server(endpoint: str | None) -> Iterator[str]:
    """The endpoint given, or a moto server started for this run in its own process."""
    if endpoint is not None:
        yield endpoint
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait()


def rotated_logs(folder: Path, size: int, count: int) -> list[Path]:
    """``app.log`` and ``count - 1`` older generations, about ``size`` bytes together, generated once."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["app.log"] + [f"app.log.{n}" for n in range(1, count)]
    paths = [folder / name for name in names]
    if not all(p.exists() for p in paths):
        print(f"generating {count} logs in {folder} ({size / 1e9:.2f} GB)...", flush=True)
        for n, path in enumerate(paths):
            generate(path, size // count, seed=1234 + n)
    return paths


def scan(ctx: Context) -> tuple[int, int]:
    """Every problem line, with its line number (the first pass of find_errors_in_log)."""
    hits = last_line = 0
    for m in context_finditer(ctx, LOG_PROBLEM_LINES):
        hits += 1
        last_line = m.line
    return hits, last_line


def fetch_only(bucket: str, paths: list[Path]) -> int:
    """Every byte fetched in the same ranges a scan uses, and nothing else: what the server alone costs."""
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    step, total = _remote._WINDOW, 0
    for p in paths:
        size = p.stat().st_size
        for start in range(0, size, step):
            total += len(fs.cat_file(f"{bucket}/logs/{p.name}", start=start, end=min(start + step, size)))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="total bytes of the logs (e.g. 50M, 1G)")
    parser.add_argument("--files", type=int, default=8, help="how many rotated logs")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "rlm-bench-remote"))
    parser.add_argument("--endpoint", help="an S3 endpoint already running (else moto is started)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    paths = rotated_logs(Path(args.dir) / f"logs-{size}-{args.files}", size, args.files)
    total = sum(p.stat().st_size for p in paths)

    with s3_server(args.endpoint) as endpoint:
        # The standard variables, as for any S3-compatible store: rlm reads no setting of its own.
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL=endpoint,
                          AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        client = boto3.client("s3")
        client.create_bucket(Bucket=bucket)
        upload, _ = timed(lambda: [client.upload_file(str(p), bucket, f"logs/{p.name}") for p in paths])

        with open_context(Path(paths[0].parent)) as local, peak_rss_anon() as local_peak:
            base_local = rss_anon_mb()
            local_time, local_result = timed(lambda: scan(local))
        before = _remote.bytes_fetched()
        with open_context([f"s3://{bucket}/logs/"]) as remote, peak_rss_anon() as remote_peak:
            base_remote = rss_anon_mb()
            remote_time, remote_result = timed(lambda: scan(remote))
            oldest_first = remote.files[0].endswith(f"/app.log.{args.files - 1}") or args.files == 1
        fetched = _remote.bytes_fetched() - before
        fetch_time, _ = timed(lambda: fetch_only(bucket, paths))

    if remote_result != local_result or not oldest_first:
        raise SystemExit(f"the scans differ: local {local_result}, remote {remote_result}")
    print(f"{args.files} rotated logs, {total / 1e6:.0f} MB in all; upload to the local S3 server took "
          f"{upload:.1f} s; {local_result[0]:,} problem lines, the last on line {local_result[1]:,}")
    ratio = fetched / total
    print(table(["read", "wall time (s)", "MB/s", "RssAnon growth (MB)", "bytes fetched / object bytes"], [
        ["local files (mmap)", f"{local_time:.2f}", f"{total / 1e6 / local_time:.0f}",
         f"{local_peak[0] - base_local:.1f}", "-"],
        ["s3:// (moto, 127.0.0.1)", f"{remote_time:.2f}", f"{total / 1e6 / remote_time:.0f}",
         f"{remote_peak[0] - base_remote:.1f}", f"{ratio:.3f}"],
        ["the same ranges fetched, no scan", f"{fetch_time:.2f}", f"{total / 1e6 / fetch_time:.0f}", "-", "1.000"],
    ]))
    print(f"wall-time ratio s3/local: {remote_time / local_time:.1f}x (the server alone takes "
          f"{fetch_time / remote_time:.0%} of the s3 scan's time); bytes fetched {fetched:,} for "
          f"{total:,} object bytes ({ratio:.3f}x, target <= {TARGET_FETCHED}x)")
    return 0 if ratio <= TARGET_FETCHED else 1


if __name__ == "__main__":
    sys.exit(main())
