"""Launching a template: launch, preview, roll back.

Each reads the template and checks the launch in one short transaction, resolves the ref to a
commit over the network with no transaction open, and (launch, roll back) creates the
deployment through :mod:`shipyard.deployments.flows` in another short transaction. The run
then checks out exactly that commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from shipyard.accounts.principal import Actor
from shipyard.deployments import flows as deployment_flows
from shipyard.deployments.batches import plan_batches
from shipyard.deployments.schemas import DeploymentRead
from shipyard.errors import NotFound, ValidationFailed
from shipyard.freeze.schemas import FreezeOverride
from shipyard.git.flows import open_browser, resolve_commit
from shipyard.templates import service
from shipyard.templates.schemas import Preview, PreviewHost, PreviewScript

if TYPE_CHECKING:
    from shipyard.runtime import Runtime


async def _commit(runtime: Runtime, actor: Actor, plan: service.LaunchPlan) -> str | None:
    """The commit the plan runs: a roll back's, or the one its ref names now."""
    if plan.commit_sha is not None or plan.repository_id is None:
        return plan.commit_sha
    try:
        return await resolve_commit(
            runtime=runtime,
            principal=actor.principal,
            repository_id=plan.repository_id,
            ref=plan.ref,
        )
    except NotFound as exc:  # the repository went away since the template was saved
        raise ValidationFailed(exc.message, field="repository_id", code=exc.code) from exc


async def _plan(
    runtime: Runtime, actor: Actor, template_id: UUID, values: Mapping[str, Any]
) -> service.LaunchPlan:
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.launch_plan(
            session=session, actor=actor, template_id=template_id, values=values
        )


def _with_ref(plan: service.LaunchPlan, ref: str | None) -> service.LaunchPlan:
    """The plan with ``ref`` (one launch's branch, tag or SHA) in place of the template's."""
    if ref is not None:
        if plan.repository_id is None:
            raise ValidationFailed("this template has no repository to take a ref of", field="ref")
        plan.ref = ref
    return plan


async def launch_template(
    *,
    runtime: Runtime,
    actor: Actor,
    template_id: UUID,
    values: Mapping[str, Any],
    trigger: str = "api",
    freeze_override: FreezeOverride | None = None,
    ref: str | None = None,
) -> DeploymentRead:
    """Launch the template with ``values``: its ref (or ``ref``, for this launch only)
    resolved to a commit now, pinned for the run.

    ``freeze_override`` (admins only) lets it start inside a freeze window, with its reason.
    """
    plan = _with_ref(await _plan(runtime, actor, template_id, values), ref)
    commit_sha = await _commit(runtime, actor, plan)
    return await deployment_flows.create_deployment(
        runtime=runtime,
        actor=actor,
        data=plan.request.model_copy(update={"freeze_override": freeze_override}),
        trigger=trigger,
        launch=plan.launch(commit_sha),
    )


async def rollback_template(
    *,
    runtime: Runtime,
    actor: Actor,
    template_id: UUID,
    deployment_id: UUID,
    trigger: str = "api",
    freeze_override: FreezeOverride | None = None,
) -> DeploymentRead:
    """Launch the template at the commit, and with the values, of an earlier successful run."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        plan = await service.rollback_plan(
            session=session, actor=actor, template_id=template_id, deployment_id=deployment_id
        )
    return await deployment_flows.create_deployment(
        runtime=runtime,
        actor=actor,
        data=plan.request.model_copy(update={"freeze_override": freeze_override}),
        trigger=trigger,
        launch=plan.launch(plan.commit_sha),
    )


async def preview_template(
    *,
    runtime: Runtime,
    actor: Actor,
    template_id: UUID,
    values: Mapping[str, Any],
    ref: str | None = None,
) -> Preview:
    """What a launch with ``values`` would run now: commit, scripts in order, hosts, batches.

    The same checks as a launch (a value refused here is refused there); secret values never
    appear (they are not allowed in arguments, and the values show them as ``***``).
    """
    plan = _with_ref(await _plan(runtime, actor, template_id, values), ref)
    commit_sha = await _commit(runtime, actor, plan)
    choices = plan.request.script_choices()
    scripts: list[PreviewScript] = []
    if choices and plan.repository_id is not None and commit_sha is not None:
        browser = await open_browser(
            runtime=runtime, principal=actor.principal, repository_id=plan.repository_id
        )
        catalogue = {script.id: script for script in await browser.script_files(commit_sha)}
        for index, choice in enumerate(choices):
            found = catalogue.get(choice.script_id)
            if found is None:
                raise ValidationFailed(
                    f"script {choice.script_id} is not in the repository at commit "
                    f"{commit_sha[:12]}",
                    field=f"scripts.{index}.script_id",
                    code="unknown_reference",
                )
            scripts.append(
                PreviewScript(
                    id=found.id, name=found.name, path=found.path, arguments=choice.arguments
                )
            )
    hosts = [PreviewHost(id=host_id, name=name) for host_id, name in plan.hosts]
    by_id = {host.id: host for host in hosts}
    batches = plan_batches([host.id for host in hosts], plan.request.options)
    return Preview(
        commit_sha=commit_sha or "",
        ref=plan.ref,
        scripts=scripts,
        hosts=hosts,
        batches=[[by_id[host_id] for host_id in batch] for batch in batches],
        parameters=plan.values.shown,
    )
