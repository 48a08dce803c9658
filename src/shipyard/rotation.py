"""Re-encrypt every stored secret with a new key (``shipyard secrets rotate-key``)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import JSONB

from shipyard.config import Settings
from shipyard.crypto import (
    Keyring,
    generate_key,
    key_file_path,
    read_key_file,
    reset_keyring_cache,
    rotate_sealed,
    write_key_file,
)
from shipyard.db import to_libpq_url
from shipyard.models import metadata
from shipyard.orm import EncryptedText

# JSON columns that may hold sealed secret values.
SEALED_JSON_COLUMNS = {("cicd_providers", "config")}


@dataclass(frozen=True)
class RotationResult:
    new_key: str
    values_rotated: int
    key_file: str | None


def encrypted_columns() -> list[tuple[str, str]]:
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText) or (
                isinstance(column.type, JSONB) and (table.name, column.name) in SEALED_JSON_COLUMNS
            ):
                found.append((table.name, column.name))
    return found


def reencrypt_all(database_url: str, keyring: Keyring) -> int:
    """Rotate every secret to ``keyring``'s newest key in one transaction; returns the count."""
    count = 0
    # The login role: rotation spans every tenant.
    with psycopg.connect(to_libpq_url(database_url)) as conn, conn.transaction():
        for table, column in encrypted_columns():
            is_json = (table, column) in SEALED_JSON_COLUMNS
            rows = conn.execute(
                sql.SQL("SELECT id, {col} FROM {table} WHERE {col} IS NOT NULL FOR UPDATE").format(
                    col=sql.Identifier(column), table=sql.Identifier(table)
                )
            ).fetchall()
            for row_id, value in rows:
                new_value: object = (
                    Jsonb(rotate_sealed(value, keyring)) if is_json else keyring.rotate(value)
                )
                conn.execute(
                    sql.SQL("UPDATE {table} SET {col} = %s WHERE id = %s").format(
                        col=sql.Identifier(column), table=sql.Identifier(table)
                    ),
                    (new_value, row_id),
                )
                count += 1
    return count


def rotate_key(settings: Settings, database_url: str, new_key: str | None = None) -> RotationResult:
    """Make ``new_key`` (or a generated one) the only key, re-encrypting every secret with it."""
    new_key = new_key or generate_key()
    if settings.secret_key is not None:
        old_keys = [
            k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()
        ]
        count = reencrypt_all(database_url, Keyring([new_key, *old_keys]))
        reset_keyring_cache()
        return RotationResult(new_key=new_key, values_rotated=count, key_file=None)
    path = key_file_path(settings.data_dir)
    old_keys = read_key_file(path) if path.exists() else []
    # Keep the old keys on disk until every value is re-encrypted, so a crash loses nothing.
    write_key_file(path, [new_key, *old_keys])
    reset_keyring_cache()
    count = reencrypt_all(database_url, Keyring([new_key, *old_keys]))
    write_key_file(path, [new_key])
    reset_keyring_cache()
    return RotationResult(new_key=new_key, values_rotated=count, key_file=str(path))
