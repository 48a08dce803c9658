"""Repositories in the database: search and filter (pinned first), pins, repositories added by URL.

Service functions (a session, never the network): reading a URL repository with git before it
is stored is :func:`shipyard.git.flows.add_repository`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import Select, and_, case, delete, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor, Principal
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.git.models import ProfileRepositoryPin, Repository
from shipyard.git.schemas import RepositoryCreate, RepositoryRead


def sort_key() -> Any:
    return func.lower(func.coalesce(Repository.owner, literal("")) + "/" + Repository.name)


def full_name(repository: Repository) -> str:
    return f"{repository.owner}/{repository.name}" if repository.owner else repository.name


def repository_read(repository: Repository, *, is_pinned: bool) -> RepositoryRead:
    return RepositoryRead.model_validate(
        {
            **{
                column: getattr(repository, column)
                for column in (
                    "id",
                    "provider_id",
                    "provider_type",
                    "external_id",
                    "name",
                    "owner",
                    "description",
                    "url",
                    "clone_url",
                    "is_private",
                    "default_branch",
                    "language",
                    "sync_status",
                    "last_synced_at",
                    "error",
                    "created_at",
                    "updated_at",
                )
            },
            "full_name": full_name(repository),
            "is_pinned": is_pinned,
        }
    )


def _encode_cursor(pinned: int, key: str, row_id: UUID) -> str:
    raw = json.dumps([pinned, key, str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        pinned, key, row_id = json.loads(raw)
        if pinned not in (0, 1) or not isinstance(key, str):
            raise ValueError("bad cursor")
        return int(pinned), key, UUID(row_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "cursor is not valid; use next_cursor from a list response", field="cursor"
        ) from exc


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_repositories(
    *,
    session: AsyncSession,
    principal: Principal,
    q: str | None = None,
    provider_id: UUID | None = None,
    provider_type: str | None = None,
    language: str | None = None,
    is_private: bool | None = None,
    pinned: bool | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[list[RepositoryRead], str | None]:
    """The caller's pins first, then by owner/name; keyset-paged so pages never skip or repeat."""
    pin = ProfileRepositoryPin
    pinned_flag = case((pin.repository_id.is_not(None), 1), else_=0)
    key = sort_key()
    statement: Select[Any] = (
        select(Repository, pinned_flag.label("pinned"), key.label("sort_key"))
        .outerjoin(
            pin, and_(pin.repository_id == Repository.id, pin.profile_id == principal.user_id)
        )
        .where(Repository.tenant_id == principal.tenant_id)
    )
    if q:
        pattern = f"%{_escape_like(q.strip())}%"
        statement = statement.where(
            or_(
                Repository.name.ilike(pattern, escape="\\"),
                Repository.owner.ilike(pattern, escape="\\"),
                (func.coalesce(Repository.owner, "") + "/" + Repository.name).ilike(
                    pattern, escape="\\"
                ),
                # A repository named by its address (the CLI resolves names this way).
                Repository.url.ilike(pattern, escape="\\"),
                Repository.clone_url.ilike(pattern, escape="\\"),
            )
        )
    if provider_id is not None:
        statement = statement.where(Repository.provider_id == provider_id)
    if provider_type is not None:
        statement = statement.where(Repository.provider_type == provider_type)
    if language is not None:
        statement = statement.where(func.lower(Repository.language) == language.lower())
    if is_private is not None:
        statement = statement.where(Repository.is_private.is_(is_private))
    if pinned is not None:
        statement = statement.where(
            pin.repository_id.is_not(None) if pinned else pin.repository_id.is_(None)
        )
    if cursor:
        c_pinned, c_key, c_id = _decode_cursor(cursor)
        statement = statement.where(
            or_(
                pinned_flag < c_pinned,
                and_(pinned_flag == c_pinned, tuple_(key, Repository.id) > tuple_(c_key, c_id)),
            )
        )
    statement = statement.order_by(pinned_flag.desc(), key.asc(), Repository.id.asc()).limit(
        limit + 1
    )
    rows = (await session.execute(statement)).all()
    items = [repository_read(row[0], is_pinned=bool(row[1])) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _encode_cursor(int(last[1]), str(last[2]), last[0].id)
    return items, next_cursor


async def get_repository(
    *, session: AsyncSession, principal: Principal, repository_id: UUID
) -> Repository:
    repository = await session.scalar(
        select(Repository).where(
            Repository.id == repository_id, Repository.tenant_id == principal.tenant_id
        )
    )
    if repository is None:
        raise NotFound("repository not found", code="repository_not_found")
    return repository


async def is_pinned(*, session: AsyncSession, principal: Principal, repository_id: UUID) -> bool:
    found = await session.scalar(
        select(ProfileRepositoryPin.repository_id).where(
            ProfileRepositoryPin.repository_id == repository_id,
            ProfileRepositoryPin.profile_id == principal.user_id,
        )
    )
    return found is not None


async def read_repository(
    *, session: AsyncSession, principal: Principal, repository_id: UUID
) -> RepositoryRead:
    repository = await get_repository(
        session=session, principal=principal, repository_id=repository_id
    )
    return repository_read(
        repository,
        is_pinned=await is_pinned(
            session=session, principal=principal, repository_id=repository_id
        ),
    )


async def pin(*, session: AsyncSession, actor: Actor, repository_id: UUID) -> RepositoryRead:
    """Pin for the actor only (a personal preference, not audited); twice is the same as once."""
    repository = await get_repository(
        session=session, principal=actor.principal, repository_id=repository_id
    )
    await session.execute(
        insert(ProfileRepositoryPin)
        .values(profile_id=actor.user_id, repository_id=repository_id, tenant_id=actor.tenant_id)
        .on_conflict_do_nothing()
    )
    return repository_read(repository, is_pinned=True)


async def unpin(*, session: AsyncSession, actor: Actor, repository_id: UUID) -> RepositoryRead:
    repository = await get_repository(
        session=session, principal=actor.principal, repository_id=repository_id
    )
    await session.execute(
        delete(ProfileRepositoryPin).where(
            ProfileRepositoryPin.repository_id == repository_id,
            ProfileRepositoryPin.profile_id == actor.user_id,
        )
    )
    return repository_read(repository, is_pinned=False)


@dataclass(frozen=True)
class ParsedUrl:
    clone_url: str
    owner: str | None
    name: str


def parse_repository_url(url: str) -> ParsedUrl:
    """The clone URL, owner and name of an http(s) repository URL, or a 422 naming ``url``."""
    value = url.strip()
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValidationFailed(f"is not a valid URL: {exc}", field="url") from exc
    if parts.scheme not in {"http", "https"}:
        raise ValidationFailed("must be an http:// or https:// clone URL", field="url")
    try:
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"is not a valid URL: {exc}", field="url") from exc
    if not host:
        raise ValidationFailed("must name a host", field="url")
    if parts.username or parts.password:
        raise ValidationFailed(
            "must not contain credentials: only public repositories can be added by URL",
            field="url",
        )
    if parts.query or parts.fragment:
        raise ValidationFailed("must not contain a query or fragment", field="url")
    segments = [segment for segment in parts.path.split("/") if segment]
    if not segments:
        raise ValidationFailed("must include the repository's path", field="url")
    name = segments[-1].removesuffix(".git") or segments[-1]
    owner = "/".join(segments[:-1]) or None
    return ParsedUrl(value.rstrip("/"), owner, name)


async def refuse_duplicate_url(*, session: AsyncSession, tenant_id: UUID, clone_url: str) -> None:
    duplicate = await session.scalar(
        select(Repository.id).where(
            Repository.tenant_id == tenant_id,
            Repository.provider_id.is_(None),
            Repository.clone_url == clone_url,
        )
    )
    if duplicate is not None:
        raise Conflict("this repository URL was already added", code="repository_exists")


async def add_url_repository(
    *,
    session: AsyncSession,
    actor: Actor,
    url: ParsedUrl,
    data: RepositoryCreate,
    default_branch: str | None,
) -> RepositoryRead:
    """Store a public repository git has read at ``url`` (see ``git.flows.add_repository``)."""
    await refuse_duplicate_url(session=session, tenant_id=actor.tenant_id, clone_url=url.clone_url)
    repository = Repository(
        tenant_id=actor.tenant_id,
        provider_id=None,
        provider_type="url",
        name=data.name or url.name,
        owner=url.owner,
        description=data.description,
        url=url.clone_url.removesuffix(".git"),
        clone_url=url.clone_url,
        is_private=False,
        default_branch=default_branch,
        sync_status="synced",
        last_synced_at=datetime.now(UTC),
    )
    session.add(repository)
    await session.flush()
    await session.refresh(repository)
    await audit(
        session,
        actor=actor,
        action="repository.create",
        resource_type="repository",
        resource_id=repository.id,
        details={"url": url.clone_url},
    )
    return repository_read(repository, is_pinned=False)


async def delete_repository(*, session: AsyncSession, actor: Actor, repository_id: UUID) -> None:
    repository = await get_repository(
        session=session, principal=actor.principal, repository_id=repository_id
    )
    if repository.provider_id is not None:
        raise Conflict(
            "this repository comes from a provider sync and would come back at the next one; "
            "remove it at the provider or disconnect the provider",
            code="repository_synced",
        )
    await session.delete(repository)
    await audit(
        session,
        actor=actor,
        action="repository.delete",
        resource_type="repository",
        resource_id=repository_id,
        details={"url": repository.clone_url},
    )
    await session.flush()
