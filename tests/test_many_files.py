"""Many files, one context: a directory, a glob or a list of paths, read file by file with flat memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlm import GuardConfig, run_task
from rlm.context_access import (
    context_chunks,
    context_finditer,
    context_head,
    context_line,
    context_search,
    context_slice,
    context_tail,
    open_context,
)
from rlm.errors import ContextAccessError


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "app.log.10").write_text("old line\nERROR in ten\n")
    (folder / "app.log.2").write_text("first\nsecond\nERROR in two\nEND")
    (folder / "app.log").write_text("START here\nERROR now\n")
    (folder / ".hidden.log").write_text("ERROR hidden\n")
    (folder / "core.bin").write_bytes(b"\x00\x01ERROR binary")
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.log").write_text("ERROR nested\n")
    return folder


def test_a_directory_is_one_context_of_its_text_files_in_natural_order(logs: Path) -> None:
    with open_context(logs) as ctx:
        names = [Path(f).name for f in ctx.files]
        # Rotated logs oldest first (app.log.10, .2, then the live app.log); no hidden, no binary.
        assert names == ["app.log.10", "app.log.2", "app.log", "nested.log"]
        assert [Path(s).name for s in ctx.skipped] == ["core.bin"]
        assert len(ctx) == sum((logs / n).stat().st_size for n in ("app.log.10", "app.log.2", "app.log")) + \
            (logs / "sub" / "nested.log").stat().st_size
        files = ctx.describe()["files"]
        sizes = [(logs / n).stat().st_size for n in ("app.log.10", "app.log.2", "app.log")]
        assert [f["start"] for f in files] == [0, sizes[0], sizes[0] + sizes[1], sum(sizes)]  # type: ignore[index]


def test_every_match_says_its_file_and_its_line_in_that_file(logs: Path) -> None:
    with open_context(logs) as ctx:
        hits = context_search(ctx, "ERROR", max_hits=None)
        assert [(Path(m.file).name, m.line) for m in hits] == [  # type: ignore[arg-type]
            ("app.log.10", 2), ("app.log.2", 3), ("app.log", 2), ("nested.log", 1)]
        where = ctx.locate(hits[1].start)  # app.log.2
        assert Path(where.file).name == "app.log.2" and where.line == 3  # type: ignore[arg-type]
        assert str(context_line(ctx, hits[1].start)) == "ERROR in two"
        assert hits[1].to_dict()["file"] == hits[1].file


def test_nothing_read_spans_two_files(logs: Path) -> None:
    with open_context(logs) as ctx:
        # "END" closes app.log.2 and "old" opens app.log.10: joined they would match.
        assert context_search(ctx, r"END\s*old") == []
        chunks = list(context_chunks(ctx, 1000))
        assert [Path(c.file).name for c in chunks] == ["app.log.10", "app.log.2", "app.log", "nested.log"]  # type: ignore[arg-type]
        assert chunks[0].start == 0 and chunks[-1].end == len(ctx)
        assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))  # no gap, no overlap
        two = ctx.describe()["files"][1]  # type: ignore[index]
        boundary = two["start"] + two["length"]
        # A window around a hit stays in the hit's file: the file holding most of the span wins.
        assert context_slice(ctx, boundary - 10, boundary + 3).file == two["name"]
        assert context_slice(ctx, boundary - 3, boundary + 10).file != two["name"]
        assert str(context_head(ctx, 3)) == "old" and str(context_tail(ctx, 7)) == "nested\n"


def test_globs_and_lists_of_paths(logs: Path, tmp_path: Path) -> None:
    with open_context(logs / "app.log*") as ctx:
        assert [Path(f).name for f in ctx.files] == ["app.log.10", "app.log.2", "app.log"]
    (logs / "chapter.1").write_text("one\n")
    (logs / "chapter.2").write_text("two\n")
    with open_context(logs / "chapter.*") as ctx:  # not rotations of a live file: natural order
        assert [Path(f).name for f in ctx.files] == ["chapter.1", "chapter.2"]
    with open_context([logs / "app.log.10", logs / "app.log"]) as ctx:  # a list keeps its order
        assert [Path(f).name for f in ctx.files] == ["app.log.10", "app.log"]
    with pytest.raises(ContextAccessError, match="No such file"):
        open_context([logs / "app.log", tmp_path / "missing.log"])
    with pytest.raises(ContextAccessError, match="holds no readable text files"):
        open_context(tmp_path / "nothing-*.log")


def test_thousands_of_files_keep_few_open_and_the_trace_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1500):
        (folder / f"part-{i:04d}.log").write_text(f"line one\n{'ERROR ' if i % 500 == 7 else ''}item {i}\n")
    before = len(os.listdir("/proc/self/fd"))
    trace = tmp_path / "t.jsonl"

    def task(ctx):  # type: ignore[no-untyped-def]
        counted = sum(1 for _ in context_finditer(ctx, r"item \d+"))
        hits = context_search(ctx, "ERROR", max_hits=None)
        peak = len(os.listdir("/proc/self/fd"))
        return {"counted": counted, "errors": [(Path(m.file).name, m.line) for m in hits], "peak": peak,
                "slice": str(context_slice(ctx, hits[0].start, hits[0].end))}

    result = run_task(task, folder, GuardConfig(trace_path=str(trace)))
    out = result["result"]
    assert out["counted"] == 1500
    assert out["errors"] == [["part-0007.log", 2], ["part-0507.log", 2], ["part-1007.log", 2]]
    assert out["peak"] - before <= 64 + 4  # mapped lazily, at most 64 at a time
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(events[0]["context"]["files"]) == 1500
    sliced = [e for e in events if e["event"] == "context_access" and e["function"] == "context_slice"]
    assert Path(sliced[0]["file"]).name == "part-0007.log"


def test_a_link_out_of_the_folder_is_not_followed_and_is_named(tmp_path: Path) -> None:
    folder, outside = tmp_path / "logs", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    (outside / "passwd.log").write_text("root:x:0:0:SECRET\n")
    (folder / "app.log").write_text("ERROR inside\n")
    (folder / "inside-link.log").symlink_to(folder / "app.log")  # a link within the folder is fine
    (folder / "passwd.log").symlink_to(outside / "passwd.log")
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    ctx = open_context(folder)
    assert sorted(Path(f).name for f in ctx.files) == ["app.log", "inside-link.log"]
    assert not context_search(ctx, "SECRET")
    assert sorted(s.split(" (")[0].rsplit("/", 1)[-1] for s in ctx.skipped) == ["elsewhere", "passwd.log"]
    assert all("a link to outside" in s for s in ctx.skipped)


def test_lines_ending_in_carriage_returns_alone_are_counted(tmp_path: Path) -> None:
    old_mac = tmp_path / "classic.log"
    old_mac.write_bytes(b"one\rtwo\rERROR three\rfour\r")
    [hit] = context_search(open_context(old_mac), "ERROR")
    assert hit.line == 3 and str(context_line(old_mac, hit.start)) == "ERROR three"
    assert context_search("a\rb\rERROR\r", "ERROR")[0].line == 3


def test_listing_a_huge_folder_stops_at_the_runtime_limit(tmp_path: Path) -> None:
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1500):
        (folder / f"f{i}.log").write_bytes(b"x\n")
    started = time.monotonic()
    result = run_task(lambda ctx: len(context_search(ctx, "x", max_hits=5)), folder,
                      GuardConfig(max_runtime_seconds=0.02, dry_run=True))
    took = time.monotonic() - started
    assert result["status"] == "partial" and "while listing and opening the input" in result["error"]
    assert took < 1.0


def test_rotated_logs_named_one_by_one_are_read_oldest_first_like_a_folder(tmp_path: Path) -> None:
    for name in ("app.log", "app.log.1", "app.log.2", "b.txt", "a.txt"):
        (tmp_path / name).write_text(f"{name}\n")
    shell_order = [tmp_path / n for n in ("b.txt", "app.log", "app.log.1", "app.log.2", "a.txt")]  # as `*` lists
    files = [Path(f).name for f in open_context(shell_order).files]
    assert files == ["b.txt", "app.log.2", "app.log.1", "app.log", "a.txt"]  # other files keep their places
    assert [Path(f).name for f in open_context(tmp_path).files][:3] == ["a.txt", "app.log.2", "app.log.1"]
