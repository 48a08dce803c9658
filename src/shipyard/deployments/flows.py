"""Deployment actions that read a repository over the network before they write.

A flow reads the script catalogue (a provider API call, or git for URL repositories) outside any
transaction, then does its database work through :mod:`shipyard.deployments.service` in one short
transaction. Routes that run a flow hold no session of their own: a pooled connection and an open
transaction must not wait on another system.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.principal import Actor, Principal
from shipyard.deployments import service
from shipyard.deployments.schemas import DeploymentCreate, DeploymentRead
from shipyard.errors import (
    NotFound,
    ProviderError,
    ServiceUnavailable,
    ShipyardError,
    ValidationFailed,
)
from shipyard.git.flows import open_browser
from shipyard.git.schemas import BranchRead, RepositoryRead, ScriptCatalogue

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)


async def _known_scripts(
    *, runtime: Runtime, actor: Actor, data: DeploymentCreate, commit_sha: str | None = None
) -> frozenset[UUID] | None:
    """The ids of the script catalogue the deployment's scripts must be in (None: unreadable now).

    Read at ``commit_sha`` when the launch pinned one (the commit that will run), else at the ref.
    """
    if data.repository_id is None or not data.script_choices():
        return None
    try:
        browser = await open_browser(
            runtime=runtime, principal=actor.principal, repository_id=data.repository_id
        )
    except NotFound as exc:
        raise service.unknown_repository() from exc
    try:
        # Uncached: a deployment is checked against the catalogue as it is now.
        scripts = await browser.script_files(commit_sha or browser.default_ref(data.ref))
    except NotFound as exc:
        raise ValidationFailed(
            exc.message, field="ref" if data.ref else "repository_id", code=exc.code
        ) from exc
    except (ProviderError, ServiceUnavailable) as exc:
        # The worker checks the ids against its checkout and fails the deployment if one is
        # missing, so a provider that is briefly down does not refuse the deployment.
        logger.warning(
            "script catalogue of %s unavailable (%s); checking at run time",
            data.repository_id,
            exc.code,
        )
        return None
    return frozenset(script.id for script in scripts)


async def create_deployment(
    *,
    runtime: Runtime,
    actor: Actor,
    data: DeploymentCreate,
    rerun_of: UUID | None = None,
    trigger: str = "api",
    launch: service.Launch | None = None,
) -> DeploymentRead:
    """Check the scripts against the repository's catalogue, then store, enqueue and audit.

    ``trigger``: ``api`` (REST API) or ``manual`` (web pages); ``launch``: what a template
    launch records (template, parameter values, the commit resolved at launch).
    """
    # Wrong on its face (past time, a script twice, scripts without a repository): refused
    # before the slow catalogue read.
    service.check_request(data)
    known_scripts = await _known_scripts(
        runtime=runtime, actor=actor, data=data, commit_sha=launch.commit_sha if launch else None
    )
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        deployment = await service.create_deployment(
            session=session,
            actor=actor,
            data=data,
            settings=runtime.settings,
            known_scripts=known_scripts,
            rerun_of=rerun_of,
            trigger=trigger,
            launch=launch,
        )
        return service.to_read(deployment)


async def rerun_deployment(
    *, runtime: Runtime, actor: Actor, deployment_id: UUID, trigger: str = "api"
) -> DeploymentRead:
    """A new deployment with the same inputs as ``deployment_id`` (template and parameter
    values included), to run now."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        data = await service.rerun_request(session=session, deployment_id=deployment_id)
        launch = await service.rerun_launch(session=session, deployment_id=deployment_id)
    return await create_deployment(
        runtime=runtime,
        actor=actor,
        data=data,
        rerun_of=deployment_id,
        trigger=trigger,
        launch=launch,
    )


@dataclass
class ScriptChoices:
    """What the wizard's script step offers: the repository's branches and its catalogue."""

    repository: RepositoryRead
    branches: list[BranchRead] = field(default_factory=list)
    catalogue: ScriptCatalogue | None = None
    # Why the branches or the catalogue could not be read (the page says so and goes on).
    problem: ShipyardError | None = None


async def script_choices(
    *, runtime: Runtime, principal: Principal, repository_id: UUID, ref: str | None
) -> ScriptChoices:
    """The branches and script catalogue of a repository, read (briefly cached) outside a transaction."""
    browser = await open_browser(runtime=runtime, principal=principal, repository_id=repository_id)
    choices = ScriptChoices(repository=browser.view)
    try:
        choices.branches = await browser.branches()
        choices.catalogue = await browser.scripts(ref)
    except ShipyardError as exc:
        choices.problem = exc
    return choices
