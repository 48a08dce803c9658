"""Splitting output into lines: endings, long lines, broken UTF-8, the bounded tail."""

from __future__ import annotations

from shipyard.hosts.executor.streams import LineSplitter, Piece, Tail


def feed_pieces(chunks: list[bytes], limit: int = 10) -> list[Piece]:
    splitter = LineSplitter(max_line_bytes=limit)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces += splitter.feed(chunk)
    return pieces + splitter.flush()


def feed_all(chunks: list[bytes], limit: int = 10) -> list[str]:
    return [piece.text for piece in feed_pieces(chunks, limit)]


def test_lines_across_chunks_and_crlf() -> None:
    assert feed_all([b"one\ntw", b"o\r\nthr", b"ee"], limit=100) == ["one", "two", "three"]
    assert feed_all([b"\n\n"], limit=100) == ["", ""]
    assert feed_all([b""], limit=100) == []


def test_long_lines_are_cut_without_splitting_characters() -> None:
    data = ("é" * 12).encode()  # 24 bytes, two per character
    pieces = feed_all([data + b"\nend\n"], limit=5)
    assert "".join(pieces[:-1]) == "é" * 12
    assert all(len(piece.encode()) <= 5 for piece in pieces)
    assert "\ufffd" not in "".join(pieces)
    assert pieces[-1] == "end"


def test_long_line_arriving_in_small_chunks_stays_bounded() -> None:
    splitter = LineSplitter(max_line_bytes=8)
    out: list[str] = []
    for _ in range(100):
        out += [piece.text for piece in splitter.feed(b"abc")]
    out += [piece.text for piece in splitter.flush()]
    assert "".join(out) == "abc" * 100
    assert max(len(piece) for piece in out) <= 8


def test_invalid_bytes_become_replacement_characters() -> None:
    assert feed_all([b"ok \xff\xfe x\n\xc3"], limit=100) == ["ok \ufffd\ufffd x", "\ufffd"]


def test_tail_keeps_the_last_characters() -> None:
    tail = Tail(limit=20)
    for index in range(100):
        tail.add(f"line {index}")
    text = tail.text()
    assert len(text) <= 20 and text.endswith("line 99")
    tail.add("x" * 50)
    assert tail.text() == "x" * 20


def test_cut_pieces_say_the_line_continues() -> None:
    pieces = feed_pieces([b"abcdefghijklmnopqrstuvwxy\nshort\n"], limit=10)
    assert [(p.text, p.continues) for p in pieces] == [
        ("abcdefghij", True),
        ("klmnopqrst", True),
        ("uvwxy", False),
        ("short", False),
    ]
