"""Launching a template from a trigger (a schedule's fire, a webhook's delivery): DB only.

A person's launch (:mod:`shipyard.templates.flows`) resolves the ref to a commit over the
network first; a trigger must not wait on another system inside the transaction that records
its fire or delivery, so here the commit is either given (a push's ``after``) or left unset
and resolved by the worker when it checks the repository out (the run records it). The
script ids are checked against that checkout too. Everything else is the launch's own checks
(:func:`shipyard.templates.service.launch_plan`): a value refused by a launch is refused here,
with a :class:`~shipyard.errors.ValidationFailed` naming ``parameters.<name>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.principal import Actor, Principal
from shipyard.accounts.service import record_audit
from shipyard.config import Settings, get_settings
from shipyard.deployments import service as deployments
from shipyard.deployments.models import Deployment
from shipyard.errors import NotFound, ShipyardError
from shipyard.templates import service
from shipyard.templates.models import Template

TRIGGERS = ("schedule", "webhook")
# The role a trigger launches with: it was authorised when the schedule or webhook was saved
# by someone who may manage the template; at fire time it acts for the template itself.
_TRIGGER_ROLE = "admin"
_NOBODY = UUID(int=0)


def _trigger_actor(tenant_id: UUID, launched_by: Mapping[str, Any]) -> Actor:
    """The actor :func:`service.launch_plan` checks; never stored (no person launched)."""
    return Actor(
        principal=Principal(
            user_id=_NOBODY,
            tenant_id=tenant_id,
            role=_TRIGGER_ROLE,
            email=f"{launched_by.get('kind', 'trigger')}:{launched_by.get('id', '')}",
        )
    )


async def launch_from_trigger(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    template_id: UUID,
    values: Mapping[str, Any],
    trigger: str,
    launched_by: dict[str, Any],
    commit_sha: str | None = None,
    schedule_id: UUID | None = None,
    webhook_id: UUID | None = None,
    settings: Settings | None = None,
    held: bool = False,
) -> Deployment:
    """Create and enqueue a run of the template in the caller's transaction, and audit it.

    ``values`` are the launch's parameter values in clear (secret ones included: they go only
    into the run's encrypted environment, the run shows ``***``). ``trigger`` is ``schedule``
    or ``webhook``; ``launched_by`` is ``{kind: schedule|webhook, id, name}`` and is what the
    run and the audit entry say launched it. ``commit_sha`` pins the commit (a push's
    ``after``); without it the worker resolves the template's ref at checkout time.
    ``session`` may be a tenant's or a system session: the template is looked up in
    ``tenant_id`` explicitly. ``held`` (a schedule's overlap policy queue) stores the run
    'scheduled' with its job parked until :func:`deployments.service.release_held`. Raises
    NotFound (template gone) or ValidationFailed (a value, the target, the template's
    content), leaving the transaction for the caller to record it.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, not {trigger!r}")
    owner = await session.scalar(select(Template.tenant_id).where(Template.id == template_id))
    if owner != tenant_id:
        raise NotFound("template not found", code="template_not_found")
    plan = await service.launch_plan(
        session=session,
        actor=_trigger_actor(tenant_id, launched_by),
        template_id=template_id,
        values=values,
    )
    launch = deployments.Launch(
        template_id=plan.template_id,
        parameters=plan.values.shown,
        commit_sha=commit_sha,
        audit_action="template.launch",
        schedule_id=schedule_id,
        webhook_id=webhook_id,
        launched_by=dict(launched_by),
        held=held,
        approval=plan.approval,
    )
    return await store_triggered(
        session=session,
        tenant_id=tenant_id,
        plan=plan,
        launch=launch,
        trigger=trigger,
        settings=settings,
    )


async def store_triggered(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    plan: service.LaunchPlan,
    launch: deployments.Launch,
    trigger: str,
    settings: Settings | None = None,
) -> Deployment:
    """Store, enqueue and audit the run of ``plan`` (``launch.launched_by`` says who fired it).

    The scheduler uses it directly for a held run (``launch.held``: overlap policy queue).
    """
    assert launch.launched_by is not None
    deployment = await deployments.store_deployment(
        session=session,
        tenant_id=tenant_id,
        created_by=None,
        launched_by=launch.launched_by,
        data=plan.request,
        settings=settings or get_settings(),
        known_scripts=None,
        trigger=trigger,
        launch=launch,
    )
    await record_audit(
        session=session,
        tenant_id=tenant_id,
        actor_id=None,
        action=launch.audit_action or "template.launch",
        resource_type="deployment",
        resource_id=deployment.id,
        details={
            **deployments.audit_details(deployment, launch=launch),
            "launched_by": launch.launched_by,
        },
    )
    return deployment


_AUDIT = text(
    "INSERT INTO audit_events "
    "(tenant_id, actor_profile_id, action, resource_type, resource_id, details) "
    "SELECT :tenant_id, NULL, a, 'deployment', r, CAST(d AS jsonb) "
    "FROM unnest(CAST(:actions AS text[]), CAST(:ids AS uuid[]), CAST(:details AS text[])) "
    "AS t(a, r, d)"
)


@dataclass
class TriggerBatch:
    """Many trigger launches of one template in the caller's transaction, planned from one read
    of the template and stored together (one insert of the runs, one defer of their jobs, one
    insert of their audit entries): what a scheduler tick does with a burst of fires.

    Each launch is checked exactly as :func:`launch_from_trigger` checks one (its values, then
    the template's repository, target and hosts: those once per batch, they do not depend on
    the values); :meth:`add` raises what that launch would raise, storing nothing.
    """

    session: AsyncSession
    tenant_id: UUID
    template_id: UUID
    trigger: str
    settings: Settings
    # The moment the runs start (the scheduler's clock): freeze windows are checked at it.
    now: datetime | None = None
    _prepared: service.PreparedLaunch | ShipyardError | None = None
    _placement: deployments.Placement | ShipyardError | None = None
    _items: list[deployments.NewDeployment] = field(default_factory=list)

    async def open(self) -> None:
        """Read the template (NotFound outside ``tenant_id``); a refusal is kept for each add."""
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}, not {self.trigger!r}")
        template = await self.session.scalar(
            select(Template).where(Template.id == self.template_id)
        )
        if template is None or template.tenant_id != self.tenant_id:
            self._prepared = NotFound("template not found", code="template_not_found")
            return
        try:
            self._prepared = service.prepare_launch(template)
        except ShipyardError as exc:
            self._prepared = exc

    async def add(
        self,
        *,
        values: Mapping[str, Any],
        launched_by: dict[str, Any],
        commit_sha: str | None = None,
        schedule_id: UUID | None = None,
        webhook_id: UUID | None = None,
        held: bool = False,
    ) -> int:
        """Check one launch and keep it for :meth:`store`; its index there."""
        if self._prepared is None:
            await self.open()
        prepared = self._prepared
        if isinstance(prepared, ShipyardError):
            raise prepared
        assert prepared is not None
        request, checked = service.plan_request(prepared, values)
        if self._placement is None:
            try:
                self._placement = await deployments.check_placement(
                    session=self.session,
                    tenant_id=self.tenant_id,
                    data=request,
                    settings=self.settings,
                    known_scripts=None,
                    template_id=prepared.template_id,
                    at=self.now,
                )
            except ShipyardError as exc:
                self._placement = exc
        if isinstance(self._placement, ShipyardError):
            raise self._placement
        self._items.append(
            deployments.NewDeployment(
                data=request,
                placement=self._placement,
                launched_by=dict(launched_by),
                launch=deployments.Launch(
                    template_id=prepared.template_id,
                    parameters=checked.shown,
                    commit_sha=commit_sha,
                    audit_action="template.launch",
                    schedule_id=schedule_id,
                    webhook_id=webhook_id,
                    launched_by=dict(launched_by),
                    held=held,
                    approval=prepared.approval,
                ),
            )
        )
        return len(self._items) - 1

    async def store(self) -> list[UUID]:
        """Store, enqueue and audit every launch added; the runs' ids in the order added."""
        rows = await deployments.insert_deployments(
            session=self.session, tenant_id=self.tenant_id, items=self._items, trigger=self.trigger
        )
        if rows:
            # One statement for every entry (what record_audit adds one at a time).
            await self.session.execute(
                _AUDIT,
                {
                    "tenant_id": self.tenant_id,
                    "actions": [
                        item.launch.audit_action or "template.launch" for item in self._items
                    ],
                    "ids": [row["id"] for row in rows],
                    "details": [
                        json.dumps(
                            {
                                **deployments.audit_details(row, launch=item.launch),
                                "launched_by": item.launched_by,
                            }
                        )
                        for item, row in zip(self._items, rows, strict=True)
                    ],
                },
            )
        self._items = []
        return [row["id"] for row in rows]
