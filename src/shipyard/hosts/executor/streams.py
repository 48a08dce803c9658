"""Turning a byte stream into timestamped lines in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from shipyard.hosts.executor.base import (
    OutputCallback,
    OutputChunk,
    OutputChunkCallback,
    OutputLine,
    StreamName,
)

READ_CHUNK = 64 * 1024
# A "line" longer than this (a binary blob, a progress bar) is passed on in pieces.
MAX_LINE_BYTES = 64 * 1024
TAIL_CHARS = 16 * 1024


class ByteReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _safe_cut(data: bytes, limit: int) -> int:
    """An index <= ``limit`` that does not split a UTF-8 sequence."""
    cut = limit
    # Step back over continuation bytes (10xxxxxx) to the start of the character.
    while cut > limit - 4 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


class Piece(NamedTuple):
    """A complete line, or (``continues``) a cut piece of a line longer than the limit."""

    text: str
    continues: bool = False


class Lines(NamedTuple):
    """The lines one read completed, in order; ``cut`` indexes the pieces of over-long lines
    (each continues in the next line of the same stream)."""

    lines: list[str]
    cut: tuple[int, ...] = ()


def _decode_lines(data: bytes) -> list[str]:
    """Decode ``data`` (ending with a line feed) once and split it into its lines.

    Decoding the block at once gives the same text as decoding line by line: a line feed is
    ASCII and never inside a UTF-8 sequence. Each line loses one "\r" before its line feed.
    """
    text = _decode(data)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    lines.pop()
    return lines


class LineSplitter:
    """Accumulates bytes and yields complete lines, decoded with replacement characters."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._rest = b""
        self._max = max_line_bytes

    def _pieces(self, raw: bytes, pieces: list[Piece]) -> bytes:
        """Append ``raw`` cut into pieces of at most the limit; return what is left over."""
        while len(raw) > self._max:
            cut = _safe_cut(raw, self._max)
            pieces.append(Piece(_decode(raw[:cut]), continues=True))
            raw = raw[cut:]
        return raw

    def feed_lines(self, data: bytes) -> Lines:
        """The lines ``data`` completes, split in bulk (one decode per read, not per line)."""
        if self._rest:
            data = self._rest + data
        end = data.rfind(b"\n") + 1
        if len(data) <= self._max or (
            len(data) - end <= self._max and max(map(len, data[:end].split(b"\n"))) <= self._max
        ):
            self._rest = data[end:]
            return Lines(_decode_lines(data[:end]) if end else [])
        # A line over the limit (rare): cut it into pieces, one line at a time.
        pieces = self._feed_slow(data)
        return Lines(
            [piece.text for piece in pieces],
            tuple(index for index, piece in enumerate(pieces) if piece.continues),
        )

    def _feed_slow(self, data: bytes) -> list[Piece]:
        parts = data.split(b"\n")
        rest = parts.pop()
        pieces: list[Piece] = []
        for raw in parts:
            pieces.append(Piece(_decode(self._pieces(raw.removesuffix(b"\r"), pieces))))
        self._rest = self._pieces(rest, pieces)
        return pieces

    def feed(self, data: bytes) -> list[Piece]:
        lines, cut = self.feed_lines(data)
        return [Piece(text, index in cut) for index, text in enumerate(lines)]

    def flush(self) -> list[Piece]:
        if not self._rest:
            return []
        raw, self._rest = self._rest, b""
        return [Piece(_decode(raw.removesuffix(b"\r")))]


class Tail:
    """The last ``limit`` characters of output, kept as whole lines where possible."""

    def __init__(self, limit: int = TAIL_CHARS) -> None:
        self._lines: deque[str] = deque()
        self._size = 0
        self._limit = limit

    def add(self, line: str) -> None:
        if len(line) > self._limit:
            line = line[-self._limit :]
        self._lines.append(line)
        self._size += len(line) + 1
        # _size counts a separator after every line; the text has one fewer.
        while self._size - 1 > self._limit and self._lines:
            self._size -= len(self._lines.popleft()) + 1

    def extend(self, lines: list[str]) -> None:
        """Add ``lines`` in order; only those that can still be in the tail are looked at."""
        start, size = len(lines), 0
        while start > 0 and size <= self._limit:
            start -= 1
            size += len(lines[start]) + 1
        for line in lines[start:]:
            self.add(line)

    def text(self) -> str:
        return "\n".join(self._lines)


LineFilter = Callable[[str], bool]


class OutputPump:
    """Reads one stream to its end, passing on the lines each read completes.

    ``on_chunk`` gets them as one :class:`OutputChunk` per read (the deployment log path: one
    await per read, not per line); ``on_output`` gets them one :class:`OutputLine` at a time.
    """

    def __init__(
        self,
        stream: StreamName,
        on_output: OutputCallback | None,
        tail: Tail,
        line_filter: LineFilter | None = None,
        on_chunk: OutputChunkCallback | None = None,
    ) -> None:
        self.stream = stream
        self.lines = 0
        self.first_lines: list[str] = []
        self._on_output = on_output
        self._on_chunk = on_chunk
        self._tail = tail
        self._filter = line_filter
        self._splitter = LineSplitter()

    def _accept(self, batch: Lines) -> Lines:
        keep = self._filter
        if keep is None:
            return batch
        if not batch.cut:
            return Lines([text for text in batch.lines if keep(text)])
        lines: list[str] = []
        cut: list[int] = []
        for index, text in enumerate(batch.lines):
            if keep(text):
                if index in batch.cut:
                    cut.append(len(lines))
                lines.append(text)
        return Lines(lines, tuple(cut))

    async def _emit(self, batch: Lines) -> None:
        lines, cut = self._accept(batch)
        if not lines:
            return
        self.lines += len(lines)
        if len(self.first_lines) < 3:
            self.first_lines.extend(lines[: 3 - len(self.first_lines)])
        self._tail.extend(lines)
        now = datetime.now(UTC)
        if self._on_chunk is not None:
            await self._on_chunk(OutputChunk(self.stream, lines, now, cut))
        if self._on_output is not None:
            for index, text in enumerate(lines):
                await self._on_output(OutputLine(self.stream, text, now, continues=index in cut))

    async def run(self, reader: ByteReader) -> None:
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            await self._emit(self._splitter.feed_lines(chunk))
        rest = self._splitter.flush()
        if rest:
            await self._emit(Lines([piece.text for piece in rest]))
