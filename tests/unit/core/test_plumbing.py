"""Plumbing that needs no database: cursors, the keyring and sealed JSON, task declarations."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from shipyard.crypto import Keyring, SecretDecryptionError, generate_key, rotate_sealed
from shipyard.errors import ValidationFailed
from shipyard.jobs import JobRun, TaskSet
from shipyard.pagination import decode_cursor, encode_cursor


def test_a_cursor_round_trips_and_a_bad_one_names_the_field() -> None:
    created_at, row_id = datetime(2024, 5, 1, 12, 30, tzinfo=UTC), uuid4()
    assert decode_cursor(encode_cursor(created_at, row_id)) == (created_at, row_id)
    naive = encode_cursor(datetime(2024, 5, 1), row_id)  # a cursor must carry its time zone
    for cursor in ("not-a-cursor", naive, "%%%"):
        with pytest.raises(ValidationFailed) as caught:
            decode_cursor(cursor)
        assert caught.value.field == "cursor"


def test_rotation_moves_sealed_values_to_the_newest_key_anywhere_in_a_document() -> None:
    old, new = Keyring([generate_key()]), generate_key()
    both = Keyring([new, *old.keys])
    document = {"token": {"$encrypted": old.encrypt("s3cret")}, "list": [1, "plain"]}
    rotated = rotate_sealed(document, both)
    assert isinstance(rotated, dict)
    assert rotated["list"] == [1, "plain"]
    assert Keyring([new]).decrypt(rotated["token"]["$encrypted"]) == "s3cret"
    with pytest.raises(SecretDecryptionError):
        old.decrypt(rotated["token"]["$encrypted"])


def test_a_keyring_refuses_no_keys_and_malformed_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Keyring([])
    with pytest.raises(ValueError, match="not a valid Fernet key"):
        Keyring(["short"])


def test_a_task_set_names_its_tasks_by_namespace() -> None:
    tasks = TaskSet("demo")

    @tasks.task("sweep", queueing_lock="sweep", periodic="*/5 * * * * 0")
    async def sweep(job: JobRun, timestamp: int) -> None:
        """Nothing to sweep in a test."""

    (spec,) = tasks.specs
    assert (spec.name, spec.queueing_lock, spec.periodic) == (
        "demo:sweep",
        "sweep",
        "*/5 * * * * 0",
    )
    assert spec.func is sweep
