"""Context access: external state, bounded reads, positions, search, chunks, rule 2."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlm.context_access import (
    DEFAULT_MAX_HITS,
    Chunk,
    Context,
    context_chunks,
    context_finditer,
    context_head,
    context_search,
    context_slice,
    context_tail,
    open_context,
)
from rlm.errors import ContextAccessError

TEXT = "alpha beta\nERROR one\ngamma\nerror two\nERROR three\n"
N = len(TEXT)


def mapped(tmp_path: Path, text: str | bytes, name: str = "ctx.txt") -> Context:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return open_context(path)


def test_str_is_text_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("content")
    ctx = open_context(str(tmp_path / "file.txt"))
    assert ctx.unit == "chars"
    assert context_head(ctx, 100) == str(tmp_path / "file.txt")


def test_path_is_memory_mapped_not_read(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, TEXT)
    assert ctx.unit == "bytes" and ctx.describe()["mapped"] is True
    assert all(part.text is None for part in ctx._parts)  # nothing was read into a string
    assert len(ctx) == len(TEXT.encode())


def test_open_context_passes_a_context_through(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, TEXT)
    assert open_context(ctx) is ctx


def test_empty_file_is_a_valid_empty_context(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, b"")
    assert len(ctx) == 0
    assert context_head(ctx, 10) == ""
    assert context_search(ctx, "x") == []
    assert list(context_chunks(ctx, 10)) == []


def test_empty_text_context() -> None:
    assert context_tail("", 5) == "" and context_search("", "a") == [] and list(context_chunks("", 3)) == []


def test_missing_file_and_directory_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ContextAccessError, match="No such file"):
        open_context(tmp_path / "nope.txt")
    with pytest.raises(ContextAccessError, match="directory"):
        open_context(tmp_path)


def test_other_sources_are_refused() -> None:
    with pytest.raises(ContextAccessError, match="pathlib.Path"):
        open_context(42)  # type: ignore[arg-type]


def test_head_tail_slice_return_chunks_with_spans() -> None:
    head = context_head(TEXT, 5)
    assert isinstance(head, Chunk) and head == "alpha" and head.span == (0, 5)
    tail = context_tail(TEXT, 6)
    assert tail == "three\n" and tail.end == len(TEXT)
    piece = context_slice(TEXT, 6, 10)
    assert piece == "beta" and (piece.start, piece.end) == (6, 10)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(-200, 5, (0, 5)), (5, 10_000, (5, N)), (-5, -1, (0, 0)), (30, 10, (30, 30)), (10_000, 20_000, (N, N))],
)
def test_positions_are_clamped_by_the_documented_rule(start: int, end: int, expected: tuple[int, int]) -> None:
    piece = context_slice(TEXT, start, end)
    assert piece.span == expected
    assert piece == TEXT[expected[0] : expected[1]]


def test_multibyte_characters_are_never_split(tmp_path: Path) -> None:
    text = "aé€😀b"  # 1, 2, 3 and 4 bytes
    ctx = mapped(tmp_path, text)
    raw = text.encode()
    for a in range(len(raw) + 1):
        for b in range(a, len(raw) + 1):
            piece = context_slice(ctx, a, b)
            assert "\ufffd" not in piece
            assert piece.start <= a and piece.end >= b  # widened outward, never narrowed
            assert raw[piece.start : piece.end].decode() == piece


def test_invalid_utf8_decodes_with_replacement(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, b"ok \xff\xfe end")
    assert "\ufffd" in context_head(ctx, 100)


def test_str_and_mapped_file_agree_on_ascii(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, TEXT)
    for pattern in ["ERROR", "error|gamma", r"\w+ t\w+", "(?i)error"]:
        a = [(m.start, m.end, m.text, m.line) for m in context_search(TEXT, pattern)]
        b = [(m.start, m.end, m.text, m.line) for m in context_search(ctx, pattern)]
        assert a == b, pattern
    assert list(context_chunks(TEXT, 12)) == list(context_chunks(ctx, 12))
    assert [c.span for c in context_chunks(TEXT, 12)] == [c.span for c in context_chunks(ctx, 12)]
    assert context_tail(TEXT, 9) == context_tail(ctx, 9)


def test_search_returns_positions_text_and_1_based_lines(tmp_path: Path) -> None:
    for ctx in (TEXT, mapped(tmp_path, TEXT)):
        hits = context_search(ctx, "ERROR|error")
        assert [(m.text, m.line) for m in hits] == [("ERROR", 2), ("error", 4), ("ERROR", 5)]
        assert all(isinstance(m.text, Chunk) and m.text.span == (m.start, m.end) for m in hits)


def test_first_line_is_line_1() -> None:
    assert context_search("x\ny", "x")[0].line == 1


def test_max_hits_stops_the_scan() -> None:
    text = "hit\n" * 1000
    ctx = open_context(text)
    hits = context_search(ctx, "hit", max_hits=3)
    assert len(hits) == 3
    assert ctx.accesses[-1].end == hits[-1].end  # it did not scan on
    assert len(context_search(text, "hit")) == DEFAULT_MAX_HITS
    assert len(context_search(text, "hit", max_hits=None)) == 1000
    assert context_search(text, "hit", max_hits=0) == []


@pytest.mark.parametrize("source", ["text", "file"])
def test_invalid_regex_names_pattern_and_error(tmp_path: Path, source: str) -> None:
    ctx = TEXT if source == "text" else mapped(tmp_path, TEXT)
    with pytest.raises(ContextAccessError, match=r"Invalid search pattern '\(unclosed'.*missing \)"):
        context_search(ctx, "(unclosed")


def test_search_accepts_compiled_patterns_and_flags(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, TEXT)
    assert len(context_search(ctx, re.compile("error", re.I))) == 3
    assert len(context_search(TEXT, "error", flags=re.I)) == 3


def test_search_over_bytes_uses_python_re_syntax_beyond_re2(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, "abcabc x1 y22\n")
    assert [m.text for m in context_search(ctx, r"(abc)\1")] == ["abcabc"]  # backreference
    assert [m.text for m in context_search(ctx, r"(?<=y)\d+")] == ["22"]  # lookbehind
    assert [m.text for m in context_search(ctx, r"\d*")][:1] == [""]  # empty matches


def test_search_respects_start_and_end() -> None:
    hits = context_search(TEXT, "ERROR", start=15)
    assert [m.line for m in hits] == [5]


def test_chunks_are_bounded_cut_at_line_ends_and_cover_in_order() -> None:
    text = "".join(f"line {i:03d} of the log\n" for i in range(50))
    chunks = list(context_chunks(text, 100))
    assert all(len(c) <= 100 for c in chunks)
    assert all(c.endswith("\n") for c in chunks)
    assert "".join(chunks) == text
    assert chunks[0].start == 0 and all(a.end == b.start for a, b in zip(chunks, chunks[1:]))


def test_chunks_with_overlap_share_text_and_leave_no_gap() -> None:
    text = "x" * 95
    chunks = list(context_chunks(text, 20, overlap=5))
    assert all(b.start == a.end - 5 for a, b in zip(chunks, chunks[1:]))
    assert chunks[-1].end == 95


def test_chunks_bad_arguments() -> None:
    with pytest.raises(ContextAccessError, match="size must be positive"):
        list(context_chunks(TEXT, 0))
    with pytest.raises(ContextAccessError, match="overlap"):
        list(context_chunks(TEXT, 10, overlap=10))


def test_chunks_never_split_multibyte(tmp_path: Path) -> None:
    text = "😀é€" * 40
    ctx = mapped(tmp_path, text)
    for size in (1, 2, 3, 5, 7):
        chunks = list(context_chunks(ctx, size))
        assert "".join(chunks) == text
        assert all("\ufffd" not in c for c in chunks)


@pytest.mark.parametrize(
    ("action", "hint"),
    [
        (lambda c: c[0:10], "context_slice"),
        (lambda c: c[3], "context_slice"),
        (lambda c: list(c), "context_chunks"),
        (lambda c: str(c), "context_search"),
        (lambda c: f"{c}", "context_search"),
        (lambda c: "ERROR" in c, "context_search"),
    ],
)
def test_rule_2_is_enforced_with_a_pointer_to_the_right_function(action, hint: str) -> None:  # type: ignore[no-untyped-def]
    ctx = open_context(TEXT)
    with pytest.raises(ContextAccessError, match=hint):
        action(ctx)
    assert len(ctx) == len(TEXT)
    assert "Context" in repr(ctx) and "ERROR" not in repr(ctx)


def test_every_access_is_recorded() -> None:
    ctx = open_context(TEXT)
    context_head(ctx, 5)
    context_slice(ctx, 6, 10)
    context_search(ctx, "ERROR", max_hits=1)
    list(context_chunks(ctx, 100))
    hits = sum(1 for _ in context_finditer(ctx, "ERROR"))
    assert [(a.function, a.start, a.end, a.returned) for a in ctx.accesses] == [
        ("context_head", 0, 5, 5),
        ("context_slice", 6, 10, 4),
        ("context_search", 0, 16, 1),
        ("context_chunks", 0, N, N),
        ("context_finditer", 0, N, hits),
    ]
    assert ctx.access_count == 5


def test_closed_context_refuses_access(tmp_path: Path) -> None:
    ctx = mapped(tmp_path, TEXT)
    ctx.close()
    with pytest.raises(ContextAccessError, match="closed"):
        context_head(ctx, 3)


def test_line_numbers_work_across_line_index_blocks(tmp_path: Path) -> None:
    from rlm import context_access

    block = context_access._LINE_BLOCK
    line = b"x" * 99 + b"\n"
    data = line * (3 * block // len(line)) + b"NEEDLE\n"
    ctx = mapped(tmp_path, data)
    expected = data.count(b"\n")  # NEEDLE sits on the last line
    hits = context_search(ctx, "NEEDLE")
    assert hits[0].line == expected
    assert context_search(ctx, "x", max_hits=1)[0].line == 1  # lookup backwards after forwards


ascii_text = st.text(alphabet=st.sampled_from("ab\n xyz."), max_size=300)
any_text = st.text(max_size=200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ascii_text, pattern=st.sampled_from(["a", "ab|x", "a+b", "[xy]z", r"\.", "(?i)A"]), pad=st.integers(0, 50))
def test_property_slice_over_a_match_span_contains_the_match(text: str, pattern: str, pad: int) -> None:
    for m in context_search(text, pattern, max_hits=None):
        assert m.text in context_slice(text, m.start - pad, m.end + pad)
        assert context_slice(text, m.start, m.end) == m.text


@settings(max_examples=150, deadline=None)
@given(text=any_text, size=st.integers(1, 40), overlap=st.integers(0, 39))
def test_property_chunks_cover_in_order_with_no_gaps(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    chunks = list(context_chunks(text, size, overlap))
    if not text:
        assert chunks == []
        return
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in zip(chunks, chunks[1:]):
        assert a.start < b.start <= a.end  # in order, no gap
    assert all(len(c) <= size for c in chunks)
    assert all(c == text[c.start : c.end] for c in chunks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=any_text, size=st.integers(1, 30))
def test_property_mapped_chunks_reassemble_the_file(tmp_path_factory: pytest.TempPathFactory, text: str, size: int) -> None:
    path = tmp_path_factory.mktemp("prop") / "f.txt"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    with open_context(path) as ctx:
        chunks = list(context_chunks(ctx, size))
        assert "".join(chunks) == path.read_bytes().decode("utf-8", errors="replace")
        assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))


def test_context_line_returns_the_whole_line_around_a_position(tmp_path: Path) -> None:
    from rlm.context_access import context_line

    for ctx in (TEXT, mapped(tmp_path, TEXT)):
        hit = context_search(ctx, "two")[0]
        line = context_line(ctx, hit.start)
        assert line == "error two" and line.span == (TEXT.index("error two"), TEXT.index("error two") + 9)
        assert context_line(ctx, 0) == "alpha beta"
        assert context_line(ctx, 10_000) == ""  # clamped to the end, after the final newline
    assert context_line("x" * 100 + "\n", 50, max_len=10) == "x" * 20  # bounded on both sides


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="ab\n", max_size=200), data=st.data())
def test_property_line_numbers_match_a_plain_count_in_any_lookup_order(
    monkeypatch: pytest.MonkeyPatch, text: str, data: st.DataObject
) -> None:
    from rlm import context_access

    monkeypatch.setattr(context_access, "_LINE_BLOCK", 7)  # many blocks, so checkpoints are exercised
    hits = context_search(text, r"[ab\n]", max_hits=None)
    order = data.draw(st.lists(st.integers(0, max(len(hits) - 1, 0)), max_size=30)) if hits else []
    for i in order:
        assert hits[i].line == text.count("\n", 0, hits[i].start) + 1


# -- citing spans: Chunk.offset_of / span_of ---------------------------------------------------

PIECES = st.sampled_from(["a", "Z", " ", "\n", "é", "naïve", "—", "résumé", "漢字", "🙂", "\x00"])
BAD_BYTES = st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x99", b"\x80\x80"])


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.one_of(PIECES.map(lambda p: p.encode()), BAD_BYTES), min_size=1, max_size=40),
       size=st.integers(1, 24), data=st.data())
def test_offset_of_maps_every_position_of_a_file_chunk_to_its_byte(tmp_path_factory: pytest.TempPathFactory,
                                                                   parts: list[bytes], size: int,
                                                                   data: st.DataObject) -> None:
    raw = b"".join(parts)
    path = tmp_path_factory.mktemp("spans") / "mixed.txt"
    path.write_bytes(raw)
    with open_context(path) as ctx:
        for chunk in context_chunks(ctx, size):
            assert chunk.offset_of(0) == chunk.start and chunk.offset_of(len(chunk)) == chunk.end
            i = data.draw(st.integers(0, len(chunk)))
            offset = chunk.offset_of(i)
            # The bytes up to that offset decode to exactly the chunk's first i characters.
            assert raw[chunk.start:offset].decode("utf-8", errors="replace") == chunk[:i]
            assert chunk.offset_of(i - len(chunk)) == offset if i < len(chunk) else True


@settings(max_examples=100, deadline=None)
@given(words=st.lists(PIECES, min_size=1, max_size=30), data=st.data())
def test_span_of_cites_text_that_slices_back_exactly(tmp_path_factory: pytest.TempPathFactory, words: list[str],
                                                     data: st.DataObject) -> None:
    text = "".join(words)
    path = tmp_path_factory.mktemp("cite") / "doc.txt"
    path.write_text(text, encoding="utf-8")
    for source in (text, path):
        with open_context(source) as ctx:
            window = context_slice(ctx, 0, len(ctx))
            i = data.draw(st.integers(0, len(window)))
            j = data.draw(st.integers(i, len(window)))
            quote = window[i:j]
            span = window.span_of(quote)
            assert span is not None
            assert str(context_slice(ctx, *span)) == quote
    assert window.span_of("\x01never there\x02") is None


def test_span_of_is_exact_after_multibyte_text() -> None:
    text = "café naïve — résumé: the quote is here. "
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.txt"
        path.write_text(text, encoding="utf-8")
        with open_context(path) as ctx:
            chunk = context_head(ctx, 100)
            naive = chunk.start + chunk.find("the quote")  # what users wrote before: wrong by the accents
            span = chunk.span_of("the quote")
            assert span == (text.encode().index(b"the quote"), text.encode().index(b"the quote") + 9)
            assert naive != span[0]
            assert str(context_slice(ctx, *span)) == "the quote"
    with pytest.raises(IndexError):
        chunk.offset_of(len(chunk) + 1)


def test_the_default_chunk_and_the_prompt_fit_the_default_token_limit_offline(tmp_path: Path) -> None:
    """Counted as UTF-8 bytes (tiktoken's files cannot load offline), a default chunk still fits."""
    from rlm.guards import GuardConfig
    from rlm.subcalls import _messages
    from rlm.tokens import count_request_tokens

    path = tmp_path / "big.log"
    path.write_bytes(b"x" * 10_000)
    with open_context(path) as ctx:
        chunk = next(context_chunks(ctx))
    instruction = "Summarize this section of the log in three sentences, naming every error it mentions. " * 8
    counted = count_request_tokens(None, _messages(instruction, chunk, "\nRespond with a single JSON value only."),
                                   json_mode=True).tokens
    assert counted <= GuardConfig().max_tokens_per_subcall
