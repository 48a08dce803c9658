"""Turning a byte stream into timestamped lines in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

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


class LineSplitter:
    """Accumulates bytes and yields complete lines, decoded with replacement characters."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._rest = b""
        self._max = max_line_bytes

    def _pieces(self, raw: bytes, lines: list[str]) -> bytes:
        """Append ``raw`` cut into pieces of at most the limit; return what is left over."""
        while len(raw) > self._max:
            cut = _safe_cut(raw, self._max)
            lines.append(_decode(raw[:cut]))
            raw = raw[cut:]
        return raw

    def feed(self, data: bytes) -> list[str]:
        if self._rest:
            data = self._rest + data
        parts = data.split(b"\n")
        rest = parts.pop()
        lines: list[str] = []
        for raw in parts:
            lines.append(_decode(self._pieces(raw.removesuffix(b"\r"), lines)))
        self._rest = self._pieces(rest, lines)
        return lines

    def flush(self) -> list[str]:
        if not self._rest:
            return []
        raw, self._rest = self._rest, b""
        return [_decode(raw.removesuffix(b"\r"))]


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

    async def _emit(self, text: str) -> None:
        if self._filter is not None and not self._filter(text):
            return
        self.lines += 1
        if len(self.first_lines) < 3:
            self.first_lines.append(text)
        self._tail.add(text)
        if self._on_output is not None:
            await self._on_output(OutputLine(self.stream, text, datetime.now(UTC)))

    async def run(self, reader: ByteReader) -> None:
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            for line in self._splitter.feed(chunk):
                await self._emit(line)
        for line in self._splitter.flush():
            await self._emit(line)
