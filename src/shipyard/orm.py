"""Declarative base, shared column helpers and the encrypted column type."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, ForeignKey, MetaData, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import FetchedValue
from sqlalchemy.types import TypeDecorator

from shipyard.crypto import Keyring

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The tenant of the current transaction, set with SET LOCAL by shipyard.db; new rows default to it.
CURRENT_TENANT_SQL = "nullif(current_setting('shipyard.tenant_id', true), '')::uuid"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def uuid_pk() -> Mapped[UUID]:
    return mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def updated_at_column() -> Mapped[datetime]:
    # A trigger keeps it current (see migrations); FetchedValue makes the ORM reload it.
    return mapped_column(
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        server_onupdate=FetchedValue(),
    )


def tenant_fk() -> Mapped[UUID]:
    return mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
        server_default=text(CURRENT_TENANT_SQL),
    )


class TimestampMixin:
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


# The keyring travels with the engine: ``shipyard.db.Database`` puts it on its engine's dialect
# (each engine has its own dialect object), so two databases in one process can hold different
# keys and no module-level state decides which key encrypts a column.
DIALECT_KEYRING_ATTRIBUTE = "shipyard_keyring"


def bind_keyring(dialect: Dialect, keyring: Keyring) -> None:
    setattr(dialect, DIALECT_KEYRING_ATTRIBUTE, keyring)


def dialect_keyring(dialect: Dialect) -> Keyring:
    keyring: Keyring | None = getattr(dialect, DIALECT_KEYRING_ATTRIBUTE, None)
    if keyring is None:
        raise RuntimeError("this engine has no keyring: open it through shipyard.db.Database")
    return keyring


class EncryptedText(TypeDecorator[str]):
    """Text stored as Fernet ciphertext; the ORM sees plaintext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return dialect_keyring(dialect).encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return dialect_keyring(dialect).decrypt(str(value))


def check_in(column: str, values: tuple[str, ...]) -> str:
    """SQL for a CHECK that ``column`` is one of ``values`` (or NULL)."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f'"{column}" IS NULL OR "{column}" IN ({quoted})'


__all__ = [
    "Base",
    "EncryptedText",
    "String",
    "TimestampMixin",
    "check_in",
    "created_at_column",
    "tenant_fk",
    "updated_at_column",
    "uuid_pk",
]
