"""CI/CD providers, their job catalogue and deployment step records."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.principal import Principal
from shipyard.cicd.connection import public_config
from shipyard.cicd.models import CicdJob, CicdProvider, DeploymentCicdMapping
from shipyard.cicd.providers import link_base_for
from shipyard.cicd.schemas import (
    MappingRead,
    ProviderRead,
)
from shipyard.crypto import is_sealed
from shipyard.errors import NotFound, ValidationFailed
from shipyard.git.models import GitProvider
from shipyard.outbound.links import link_under
from shipyard.pagination import paginate


async def _job_counts(session: AsyncSession, provider_ids: list[UUID]) -> dict[UUID, int]:
    if not provider_ids:
        return {}
    rows = await session.execute(
        select(CicdJob.provider_id, func.count())
        .where(CicdJob.provider_id.in_(provider_ids))
        .group_by(CicdJob.provider_id)
    )
    return {provider_id: count for provider_id, count in rows}


def provider_read(provider: CicdProvider, job_count: int) -> ProviderRead:
    return ProviderRead.model_validate(
        {
            "id": provider.id,
            "type": provider.type,
            "name": provider.name,
            "url": provider.url,
            "config": public_config(provider.type, provider.config),
            "last_synced_at": provider.last_synced_at,
            "error": provider.error,
            "sync_failures": provider.sync_failures,
            "next_sync_at": provider.next_sync_at,
            "job_count": job_count,
            "created_at": provider.created_at,
            "updated_at": provider.updated_at,
        }
    )


async def read_providers(
    *, session: AsyncSession, providers: list[CicdProvider]
) -> list[ProviderRead]:
    counts = await _job_counts(session, [provider.id for provider in providers])
    return [provider_read(provider, counts.get(provider.id, 0)) for provider in providers]


async def list_providers(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[CicdProvider], str | None]:
    statement = select(CicdProvider).where(CicdProvider.tenant_id == principal.tenant_id)
    return await paginate(
        session,
        statement,
        created_at=CicdProvider.created_at,
        row_id=CicdProvider.id,
        limit=limit,
        cursor=cursor,
    )


async def get_provider(
    *, session: AsyncSession, principal: Principal, provider_id: UUID
) -> CicdProvider:
    provider = await session.scalar(
        select(CicdProvider).where(
            CicdProvider.id == provider_id, CicdProvider.tenant_id == principal.tenant_id
        )
    )
    if provider is None:
        raise NotFound(f"CI/CD provider {provider_id} does not exist")
    return provider


async def check_linked_git_provider(
    *, session: AsyncSession, principal: Principal, config: dict[str, Any]
) -> None:
    """A GitHub Actions config may borrow a GitHub provider's token: it must exist, and be one."""
    linked = config.get("git_provider_id")
    if linked is None:
        return
    git_provider = await session.scalar(
        select(GitProvider).where(
            GitProvider.id == UUID(str(linked)), GitProvider.tenant_id == principal.tenant_id
        )
    )
    if git_provider is None:
        raise ValidationFailed(
            f"git provider {linked} does not exist", field="config.git_provider_id"
        )
    if git_provider.type != "github":
        raise ValidationFailed(
            f"git provider {linked} is a {git_provider.type} provider; GitHub Actions needs a GitHub one",
            field="config.git_provider_id",
        )


def _job_filter(
    statement: Select[Any], *, provider_id: UUID | None, search: str | None
) -> Select[Any]:
    if provider_id is not None:
        statement = statement.where(CicdJob.provider_id == provider_id)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                CicdJob.name.ilike(pattern, escape="\\"),
                CicdJob.path.ilike(pattern, escape="\\"),
                CicdJob.description.ilike(pattern, escape="\\"),
            )
        )
    return statement


async def list_jobs(
    *,
    session: AsyncSession,
    principal: Principal,
    provider_id: UUID | None,
    search: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[CicdJob], str | None]:
    statement = _job_filter(
        select(CicdJob).where(CicdJob.tenant_id == principal.tenant_id),
        provider_id=provider_id,
        search=search,
    )
    return await paginate(
        session,
        statement,
        created_at=CicdJob.created_at,
        row_id=CicdJob.id,
        limit=limit,
        cursor=cursor,
    )


async def get_job(*, session: AsyncSession, principal: Principal, job_id: UUID) -> CicdJob:
    job = await session.scalar(
        select(CicdJob).where(CicdJob.id == job_id, CicdJob.tenant_id == principal.tenant_id)
    )
    if job is None:
        raise NotFound(f"CI/CD job {job_id} does not exist")
    return job


def _mapping_select() -> Select[DeploymentCicdMapping, CicdJob, CicdProvider]:
    return (
        select(DeploymentCicdMapping, CicdJob, CicdProvider)
        .outerjoin(CicdJob, CicdJob.id == DeploymentCicdMapping.cicd_job_id)
        .outerjoin(CicdProvider, CicdProvider.id == CicdJob.provider_id)
    )


def _mapping_read(
    mapping: DeploymentCicdMapping, job: CicdJob | None, provider: CicdProvider | None
) -> MappingRead:
    return MappingRead.model_validate(
        {
            "id": mapping.id,
            "deployment_id": mapping.deployment_id,
            "cicd_job_id": mapping.cicd_job_id,
            "job_name": job.name if job else None,
            "job_path": job.path if job else None,
            "provider_id": provider.id if provider else None,
            "provider_type": provider.type if provider else None,
            "stage": mapping.stage,
            "position": mapping.position,
            "status": mapping.status,
            "waiting_for": "approval"
            if mapping.status == "running" and (mapping.tracking or {}).get("approval_since")
            else None,
            "parameters": {k: "***" if is_sealed(v) else v for k, v in mapping.parameters.items()},
            "build_number": mapping.build_number,
            # Rows stored before links were checked are checked again on the way out.
            "build_url": link_under(
                mapping.build_url,
                link_base_for(provider.type, provider.url, provider.config) if provider else None,
            ),
            "error": mapping.error,
            "started_at": mapping.started_at,
            "completed_at": mapping.completed_at,
            "created_at": mapping.created_at,
            "updated_at": mapping.updated_at,
        }
    )


async def list_mappings(
    *, session: AsyncSession, principal: Principal, deployment_id: UUID
) -> list[MappingRead]:
    """A deployment's CI/CD steps in order (the deployments domain checks the deployment)."""
    rows = await session.execute(
        _mapping_select()
        .where(
            DeploymentCicdMapping.deployment_id == deployment_id,
            DeploymentCicdMapping.tenant_id == principal.tenant_id,
        )
        .order_by(DeploymentCicdMapping.position)
    )
    return [_mapping_read(*row) for row in rows]


async def get_mapping(
    *, session: AsyncSession, principal: Principal, mapping_id: UUID
) -> MappingRead:
    row = (
        await session.execute(
            _mapping_select().where(
                DeploymentCicdMapping.id == mapping_id,
                DeploymentCicdMapping.tenant_id == principal.tenant_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"CI/CD step {mapping_id} does not exist")
    return _mapping_read(*row)
