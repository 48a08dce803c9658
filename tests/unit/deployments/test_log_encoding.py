"""The bulk log path gives what the line-by-line one gave: splitting, masking, COPY rows, ids."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import cast
from uuid import RFC_4122, UUID, uuid4

from shipyard.db import Database
from shipyard.deployments.logs import LogBlock, LogWriter, Uuid7Sequence
from shipyard.deployments.redaction import Redactor
from shipyard.hosts.executor.streams import LineSplitter, Piece


def _split_one_by_one(chunks: list[bytes], limit: int) -> list[Piece]:
    """The line-at-a-time splitting the bulk path replaced (still used for over-long lines)."""
    splitter = LineSplitter(max_line_bytes=limit)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces += splitter._feed_slow(splitter._rest + chunk)
    return pieces + splitter.flush()


def _split_in_bulk(chunks: list[bytes], limit: int) -> list[Piece]:
    splitter = LineSplitter(max_line_bytes=limit)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces += splitter.feed(chunk)
    return pieces + splitter.flush()


def test_bulk_splitting_matches_line_by_line_splitting() -> None:
    rng = random.Random(17)
    alphabet = [b"a", b"b", b"\n", b"\r", b"\r\n", "é".encode(), b"\xff", b"\t", b"\x00"]
    for _ in range(300):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(3, len(data) + 1)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for limit in (8, 64, 1000):
            assert _split_in_bulk(chunks, limit) == _split_one_by_one(chunks, limit)


def test_masking_joined_lines_matches_masking_each_line() -> None:
    redactor = Redactor(["s3cr3t-value", "line one of a key\nline two of a key", None])
    lines = [
        "plain",
        "a s3cr3t-value b s3cr3t-value",
        "line one of a key",
        "line two of a key",
        "s3cr3t-val",
        "ue",
        "",
    ]
    assert redactor.mask_lines("\n".join(lines)).split("\n") == [redactor(x) for x in lines]


def _parse_copy(data: bytes) -> list[list[bytes | None]]:
    """Binary COPY data back into rows of raw fields."""
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    assert data.endswith(b"\xff\xff")
    position, rows = 19, []
    while data[position : position + 2] != b"\xff\xff":
        count = int.from_bytes(data[position : position + 2], "big")
        position += 2
        row: list[bytes | None] = []
        for _ in range(count):
            length = int.from_bytes(data[position : position + 4], "big", signed=True)
            position += 4
            if length < 0:
                row.append(None)
            else:
                row.append(data[position : position + length])
                position += length
        rows.append(row)
    assert position + 2 == len(data)
    return rows


def test_binary_copy_rows_round_trip() -> None:
    deployment, tenant, host = uuid4(), uuid4(), uuid4()
    writer = LogWriter(
        cast("Database", None),
        tenant_id=tenant,
        deployment_id=deployment,
        redactor=Redactor([]),
    )
    when = datetime(2026, 12, 2, 4, 0, 1, 250000, tzinfo=UTC)
    batch = [
        LogBlock("INFO", ["a\tb", "back\\slash", "cr\rhere", "", "é"], when, host, None, "stderr"),
        LogBlock("ERROR", ["x\ny"], when, None, None, None),
    ]
    rows = _parse_copy(writer.encode(batch))
    assert [row[4] for row in rows] == [
        b"a\tb",
        b"back\\slash",
        b"cr\rhere",
        b"",
        "é".encode(),
        b"x\ny",
    ]
    micros = int((when - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    for row in rows:
        assert row[1] == deployment.bytes and row[2] == tenant.bytes
        assert row[5] == micros.to_bytes(8, "big", signed=True)
    assert {(row[3], row[6], row[7], row[8]) for row in rows[:5]} == {
        (b"INFO", host.bytes, None, b"stderr")
    }
    assert (rows[5][3], rows[5][6], rows[5][7], rows[5][8]) == (b"ERROR", None, None, None)
    ids = [UUID(bytes=row[0]) for row in rows if row[0] is not None]
    assert len(ids) == 6 and ids == sorted(ids) and all(item.version == 7 for item in ids)
    # Unnumbered (a run logged before 0016), then numbered on across the batch's blocks.
    assert [len(row) for row in rows] == [10] * 6 and {row[9] for row in rows} == {None}
    numbered = _parse_copy(writer.encode(batch, 41))
    assert [row[9] for row in numbered] == [n.to_bytes(8, "big") for n in range(41, 47)]
    # The other fields are those of the unnumbered rows (ids aside).
    assert [row[3:9] for row in numbered] == [row[3:9] for row in rows]


def test_block_ids_are_version_7_and_increasing() -> None:
    ids = Uuid7Sequence()
    ids._counter = (1 << 48) - 3  # the next block would wrap the low 48 bits
    when = datetime.now(UTC)
    seen: list[UUID] = []
    for count in (5, 1, 1000):
        head, first = ids.block(when, count)
        seen += [UUID(bytes=head + c.to_bytes(6, "big")) for c in range(first, first + count)]
    seen.append(ids.next(when))
    assert all(item.version == 7 and item.variant == RFC_4122 for item in seen)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert all(int(item.hex[:12], 16) == int(when.timestamp() * 1000) for item in seen)
