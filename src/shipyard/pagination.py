"""Keyset pagination, newest first, with opaque cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import KeyedColumnElement

from shipyard.errors import ValidationFailed

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_raw, id_raw = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        created_at = datetime.fromisoformat(created_raw)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, UUID(id_raw)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationFailed(
            "cursor is not valid; use next_cursor from a list response", field="cursor"
        ) from exc


def page_of(
    statement: Select[Any],
    *,
    created_at: InstrumentedAttribute[datetime] | KeyedColumnElement[datetime],
    row_id: InstrumentedAttribute[UUID] | KeyedColumnElement[UUID],
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """``statement`` narrowed to one page newest first: the rows after ``cursor``, and one more
    than ``limit`` (whether it is there says whether a next page is)."""
    if cursor:
        cursor_created_at, cursor_id = decode_cursor(cursor)
        statement = statement.where(
            tuple_(created_at, row_id) < tuple_(cursor_created_at, cursor_id)
        )
    return statement.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def cut_page(
    rows: list[T], *, limit: int, created_at: str, row_id: str
) -> tuple[list[T], str | None]:
    """The page of :func:`page_of`'s ``rows`` and the cursor of the next page (None: the last);
    ``created_at`` and ``row_id`` name the attributes the cursor is made of."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, created_at), getattr(last, row_id))


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    *,
    created_at: InstrumentedAttribute[datetime] | KeyedColumnElement[datetime],
    row_id: InstrumentedAttribute[UUID] | KeyedColumnElement[UUID],
    limit: int,
    cursor: str | None,
    entities: bool = True,
) -> tuple[list[Any], str | None]:
    """Return one page of ``statement`` ordered newest first, and the cursor of the next page.

    ``entities``: the page holds each row's first element (a statement of one entity); else
    the rows themselves (a statement of columns, ``created_at`` and ``row_id`` among them).
    """
    statement = page_of(statement, created_at=created_at, row_id=row_id, limit=limit, cursor=cursor)
    result = await session.execute(statement)
    rows = list(result.scalars().all() if entities else result.all())
    return cut_page(rows, limit=limit, created_at=created_at.key, row_id=row_id.key)
