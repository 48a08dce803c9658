"""Turning a byte stream into timestamped lines in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from shipyard.hosts.executor.base import OutputCallback, OutputLine, StreamName

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

    def feed(self, data: bytes) -> list[Piece]:
        if self._rest:
            data = self._rest + data
        parts = data.split(b"\n")
        rest = parts.pop()
        pieces: list[Piece] = []
        for raw in parts:
            pieces.append(Piece(_decode(self._pieces(raw.removesuffix(b"\r"), pieces))))
        self._rest = self._pieces(rest, pieces)
        return pieces

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

    def text(self) -> str:
        return "\n".join(self._lines)


LineFilter = Callable[[str], bool]


class OutputPump:
    """Reads one stream to its end, passing each line to the callback as it completes."""

    def __init__(
        self,
        stream: StreamName,
        on_output: OutputCallback | None,
        tail: Tail,
        line_filter: LineFilter | None = None,
    ) -> None:
        self.stream = stream
        self.lines = 0
        self.first_lines: list[str] = []
        self._on_output = on_output
        self._tail = tail
        self._filter = line_filter
        self._splitter = LineSplitter()

    async def _emit(self, piece: Piece) -> None:
        text = piece.text
        if self._filter is not None and not self._filter(text):
            return
        self.lines += 1
        if len(self.first_lines) < 3:
            self.first_lines.append(text)
        self._tail.add(text)
        if self._on_output is not None:
            await self._on_output(
                OutputLine(self.stream, text, datetime.now(UTC), continues=piece.continues)
            )

    async def run(self, reader: ByteReader) -> None:
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            for piece in self._splitter.feed(chunk):
                await self._emit(piece)
        for piece in self._splitter.flush():
            await self._emit(piece)
