"""The one door into notifications: ``emit`` an event inside the transaction that caused it.

Callers (deployments, schedules, approvals, hosts, git) describe what happened as an
:class:`Event`; ``emit`` matches the tenant's enabled rules (event name, scope, "only on
change"), writes one delivery row per matching rule and queues its sending job, all in the
caller's transaction: no network here, and nothing is sent for work that rolls back. Sending
(retries, backoff, the attempt records) happens later in the job queue, so a dead channel never
slows or fails the work that emitted the event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.notifications.models import (
    EVENTS,
    NotificationChannel,
    NotificationRule,
    NotificationRuleState,
)
from shipyard.notifications.service import queue_delivery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedHost:
    name: str
    exit_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Event:
    """What happened, with every fact a message carries.

    ``name`` is one of ``shipyard.notifications.models.EVENTS`` (``deployment.failed``, ...).
    ``subject_type``/``subject_id`` name the thing it happened to (``deployment``, ``schedule``,
    ``host``, ``git_provider``); ``template_id``/``repository_id`` are what rules scope on.
    ``path`` is the page's path (``/deployments/<id>``); the link is made with
    ``SHIPYARD_BASE_URL`` when the message is rendered.
    """

    name: str
    tenant_id: UUID
    subject_type: str
    subject_id: UUID | None
    title: str
    status: str | None = None
    triggered_by: str | None = None
    commit_sha: str | None = None
    ref: str | None = None
    template_id: UUID | None = None
    repository_id: UUID | None = None
    failed_hosts: tuple[FailedHost, ...] = ()
    path: str | None = None
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# "Only on change": the outcome family of each outcome event. A rule with only_on_change
# notifies such an event when the subject's family differs from the last one the rule saw (no
# record counts as "ok": a first failure notifies, a first success does not). Other events
# (started, cancelled, missed, approvals, host and provider events) always notify.
OUTCOME_FAMILIES = {
    "deployment.succeeded": "ok",
    "deployment.failed": "failing",
    "deployment.partial": "failing",
}


def subject_key(event: Event) -> str:
    """What "only on change" follows: the template a run came from, else its repository, else
    the subject itself (a run with neither, a host, a provider)."""
    if event.template_id is not None:
        return f"template:{event.template_id}"
    if event.repository_id is not None:
        return f"repository:{event.repository_id}"
    return f"{event.subject_type}:{event.subject_id}"


def facts(event: Event, *, at: datetime) -> dict[str, Any]:
    """The message's facts as the delivery row stores them (JSON)."""
    return {
        "event": event.name,
        "title": event.title,
        "status": event.status,
        "triggered_by": event.triggered_by,
        "commit_sha": event.commit_sha,
        "ref": event.ref,
        "failed_hosts": [
            {"name": host.name, "exit_code": host.exit_code, "error": host.error}
            for host in event.failed_hosts
        ],
        "path": event.path,
        "detail": event.detail,
        "subject_type": event.subject_type,
        "subject_id": str(event.subject_id) if event.subject_id else None,
        "template_id": str(event.template_id) if event.template_id else None,
        "repository_id": str(event.repository_id) if event.repository_id else None,
        "extra": event.extra,
        "at": at.isoformat().replace("+00:00", "Z"),
    }


def _scope_matches(rule: NotificationRule, event: Event) -> bool:
    if rule.scope_type == "tenant":
        return True
    if rule.scope_type == "template":
        return event.template_id is not None and rule.scope_id == event.template_id
    return event.repository_id is not None and rule.scope_id == event.repository_id


async def _changed(session: AsyncSession, rule: NotificationRule, event: Event) -> bool:
    """Record the subject's outcome for ``rule``; whether it differs from the last one."""
    family = OUTCOME_FAMILIES[event.name]
    key = subject_key(event)
    previous = await session.scalar(
        select(NotificationRuleState.last_event).where(
            NotificationRuleState.rule_id == rule.id, NotificationRuleState.subject_key == key
        )
    )
    statement = insert(NotificationRuleState).values(
        tenant_id=event.tenant_id, rule_id=rule.id, subject_key=key, last_event=event.name
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[NotificationRuleState.rule_id, NotificationRuleState.subject_key],
            set_={"last_event": event.name, "updated_at": func.now()},
        )
    )
    before = OUTCOME_FAMILIES.get(previous, "ok") if previous is not None else "ok"
    return before != family


async def _emit(session: AsyncSession, event: Event) -> int:
    rules = (
        await session.execute(
            select(NotificationRule)
            .join(NotificationChannel, NotificationChannel.id == NotificationRule.channel_id)
            .where(
                NotificationRule.tenant_id == event.tenant_id,
                NotificationRule.enabled.is_(True),
                NotificationChannel.enabled.is_(True),
            )
            .order_by(NotificationRule.created_at)
        )
    ).scalars()
    now = datetime.now(UTC)
    stored = facts(event, at=now)
    queued = 0
    for rule in rules:
        if not _scope_matches(rule, event):
            continue
        outcome = event.name in OUTCOME_FAMILIES
        if rule.only_on_change and outcome:
            # The state follows every outcome of the subject, even those the rule does not
            # send (a rule on failures only must still see the success that ends them).
            changed = await _changed(session, rule, event)
            if not changed or event.name not in rule.events:
                continue
        elif event.name not in rule.events:
            continue
        await queue_delivery(
            session,
            tenant_id=event.tenant_id,
            channel_id=rule.channel_id,
            rule_id=rule.id,
            event=event.name,
            subject_type=event.subject_type,
            subject_id=event.subject_id,
            message=stored,
        )
        queued += 1
    return queued


async def emit(session: AsyncSession, event: Event) -> int:
    """Queue ``event`` for every matching rule of its tenant; the number of deliveries queued.

    Runs in the caller's transaction and never raises for a notification problem of its own
    (a rule pointing at a disabled channel, say): notifying must not break the work it reports.
    """
    if event.name not in EVENTS:
        logger.error("notification event %r is not one of EVENTS; not sent", event.name)
        return 0
    try:
        # A savepoint: a failure here undoes only the notification rows, never the caller's.
        async with session.begin_nested():
            return await _emit(session, event)
    except Exception:
        logger.exception("notifying %s for %s failed", event.name, event.subject_id)
        return 0
