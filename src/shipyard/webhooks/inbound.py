"""An inbound delivery, from the rate limit to the run: database only, never the network.

1. The hook's token bucket (:mod:`shipyard.webhooks.ratelimit`), before any query: 429.
   (The body was capped before this, by the app's body limit: 413.)
2. The hook, looked up in a short *system* transaction (the request has no tenant yet):
   unknown or malformed id -> 404 with the same answer either way.
3. The signature (:mod:`shipyard.webhooks.verify`), in memory: unsigned or wrong -> 401, and a
   ``refused`` row, at most :data:`REFUSED_ROWS_PER_MINUTE` per hook a minute (counted on the
   ``(webhook_id, received_at)`` index), so wrong signatures cannot fill the table. Its
   ``delivery_id`` is not stored: a forged request must not claim the id of a real delivery.
4. One tenant transaction: the delivery row is inserted first with
   ``ON CONFLICT DO NOTHING`` on the partial unique index ``(webhook_id, delivery_id)``; when
   the row already exists this is a redelivery, logged ``duplicate`` (200), and nothing runs.
   Then the filters (``filtered``, 200, with the reason), the parameter map, and
   :func:`shipyard.templates.triggered.launch_from_trigger` in a savepoint with the pushed
   commit pinned (``ran``, 202); a value the template refuses is ``refused`` (422) naming
   ``parameters.<name>``; a freeze window in force is ``skipped`` (200) naming the window.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.errors import NotFound, RateLimited, ValidationFailed
from shipyard.freeze.service import Frozen
from shipyard.templates.triggered import launch_from_trigger
from shipyard.webhooks.filters import MappingRefused, filter_reason, map_parameters
from shipyard.webhooks.models import Webhook, WebhookDelivery
from shipyard.webhooks.payloads import Event, normalise
from shipyard.webhooks.verify import SignatureRefused, Signed, verify

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)

# The body cap of the inbound route: GitHub caps its payloads at 25 MB (a push of many commits
# is large); GitLab and Gitea send less. The rest of the API keeps SHIPYARD_MAX_REQUEST_BYTES.
MAX_DELIVERY_BYTES = 25 * 1024 * 1024
REFUSED_ROWS_PER_MINUTE = 10
MAX_REASON = 500


@dataclass(frozen=True)
class HookSnapshot:
    id: UUID
    tenant_id: UUID
    template_id: UUID
    provider: str
    auth: str
    secret: str
    events: list[str]
    branches: list[str]
    tags: list[str]
    paths: list[str]
    parameter_map: dict[str, str]
    enabled: bool


@dataclass
class Outcome:
    """The answer to the provider: HTTP status and body."""

    status: int
    verdict: str
    reason: str | None = None
    deployment_id: UUID | None = None
    delivery: UUID | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DeliveryRefused(Exception):
    """Unsigned or wrongly signed: the route answers 401 (the row, if any, is committed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise NotFound("no such hook", code="hook_not_found") from exc


async def find_hook(*, session: AsyncSession, webhook_id: UUID) -> HookSnapshot | None:
    """The hook and its secret, across tenants (a system session: no tenant is known yet)."""
    hook = await session.scalar(select(Webhook).where(Webhook.id == webhook_id))
    if hook is None:
        return None
    return HookSnapshot(
        id=hook.id,
        tenant_id=hook.tenant_id,
        template_id=hook.template_id,
        provider=hook.provider,
        auth=hook.auth,
        secret=hook.secret,
        events=list(hook.events),
        branches=list(hook.branches),
        tags=list(hook.tags),
        paths=list(hook.paths),
        parameter_map=dict(hook.parameter_map),
        enabled=hook.enabled,
    )


async def record_refused(
    *, session: AsyncSession, hook: HookSnapshot, reason: str, event: str | None, remote: str | None
) -> bool:
    """Log a refused delivery unless this hook logged enough of them in the last minute."""
    since = func.now() - timedelta(minutes=1)
    recent = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.webhook_id == hook.id,
            WebhookDelivery.received_at > since,
            WebhookDelivery.verdict == "refused",
        )
    )
    if (recent or 0) >= REFUSED_ROWS_PER_MINUTE:
        return False
    session.add(
        WebhookDelivery(
            tenant_id=hook.tenant_id,
            webhook_id=hook.id,
            delivery_id=None,
            event=event,
            verdict="refused",
            reason=reason[:MAX_REASON],
            remote_address=remote,
        )
    )
    await session.flush()
    return True


def _payload(body: bytes, content_type: str) -> Any:
    """The JSON payload (GitHub's form content type carries it in the ``payload`` field)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("utf-8", "replace"))
        body = (fields.get("payload") or [""])[0].encode()
    if not body.strip():
        return {}
    return json.loads(body)


async def _claim(
    session: AsyncSession,
    hook: HookSnapshot,
    signed: Signed,
    event: Event | None,
    remote: str | None,
) -> UUID | None:
    """Insert the delivery's row; None when (hook, delivery id) was accepted before."""
    values = {
        "tenant_id": hook.tenant_id,
        "webhook_id": hook.id,
        "delivery_id": signed.delivery_id,
        "event": signed.event,
        "verdict": "filtered",
        "reason": "received",
        "ref": event.ref if event else None,
        "commit_sha": event.commit if event else None,
        "remote_address": remote,
    }
    statement = (
        insert(WebhookDelivery)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["webhook_id", "delivery_id"],
            # The partial index's own predicate, as a literal: PostgreSQL infers the index
            # from it (a bound parameter would not match).
            index_where=text("verdict <> 'duplicate' AND delivery_id IS NOT NULL"),
        )
        .returning(WebhookDelivery.id)
    )
    row_id: UUID | None = await session.scalar(statement)
    if row_id is None:
        duplicate = WebhookDelivery(
            **{**values, "verdict": "duplicate", "reason": "a redelivery of an accepted delivery"}
        )
        session.add(duplicate)
        await session.flush()
    return row_id


async def _settle(
    session: AsyncSession,
    row_id: UUID,
    *,
    verdict: str,
    reason: str | None,
    deployment_id: UUID | None = None,
) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == row_id)
        .values(
            verdict=verdict,
            reason=reason[:MAX_REASON] if reason else None,
            deployment_id=deployment_id,
        )
    )


async def accept(
    *,
    session: AsyncSession,
    hook: HookSnapshot,
    signed: Signed,
    body: bytes,
    content_type: str,
    remote: str | None,
) -> Outcome:
    """Deduplicate, filter, map and launch a verified delivery, in the caller's transaction."""
    event: Event | None = None
    problem: str | None = None
    payload: Any = None
    try:
        payload = _payload(body, content_type)
        event = normalise(hook.provider, signed.event, payload)
    except (ValueError, UnicodeDecodeError):
        problem = "the body is not a JSON payload"
    row_id = await _claim(session, hook, signed, event, remote)
    if row_id is None:
        return Outcome(200, "duplicate", "a redelivery of an accepted delivery: nothing runs")
    if problem is not None or event is None:
        await _settle(session, row_id, verdict="refused", reason=problem)
        return Outcome(400, "refused", problem, delivery=row_id)
    reason: str | None = None
    if event.kind == "ping":
        reason = "ping: the hook reached Shipyard"
    elif not hook.enabled:
        reason = "the hook is disabled"
    else:
        reason = filter_reason(
            event, events=hook.events, branches=hook.branches, tags=hook.tags, paths=hook.paths
        )
    if reason is not None:
        await _settle(session, row_id, verdict="filtered", reason=reason)
        return Outcome(200, "filtered", reason, delivery=row_id)
    try:
        values = map_parameters(hook.parameter_map, payload)
        async with session.begin_nested():
            deployment = await launch_from_trigger(
                session=session,
                tenant_id=hook.tenant_id,
                template_id=hook.template_id,
                values=values,
                trigger="webhook",
                launched_by={
                    "kind": "webhook",
                    "id": str(hook.id),
                    "name": f"{hook.provider} {event.kind} {event.ref or ''}".strip(),
                },
                commit_sha=event.commit,
                webhook_id=hook.id,
            )
    except Frozen as exc:
        # A freeze window is in force: recorded skipped, naming the window (nothing runs).
        await _settle(session, row_id, verdict="skipped", reason=exc.reason)
        return Outcome(200, "skipped", exc.reason, delivery=row_id)
    except MappingRefused as exc:
        await _settle(session, row_id, verdict="refused", reason=exc.reason)
        return Outcome(422, "refused", exc.reason, delivery=row_id)
    except (ValidationFailed, NotFound) as exc:
        where = f"{exc.field}: " if isinstance(exc, ValidationFailed) else ""
        refusal = f"{where}{exc.message}"
        await _settle(session, row_id, verdict="refused", reason=refusal)
        return Outcome(422, "refused", refusal, delivery=row_id)
    await _settle(
        session,
        row_id,
        verdict="ran",
        reason=f"ran deployment {deployment.id}",
        deployment_id=deployment.id,
    )
    return Outcome(202, "ran", None, deployment_id=deployment.id, delivery=row_id)


async def receive_delivery(
    *,
    runtime: Runtime,
    webhook_id: str,
    headers: Mapping[str, str],
    body: bytes,
    remote: str | None,
) -> Outcome:
    """Everything an inbound ``POST /hooks/{id}`` does; raises NotFound, RateLimited or
    DeliveryRefused for the route to answer 404, 429 or 401."""
    # Parsed first (no query): the bucket is keyed by the id itself, so spelling one id in
    # upper case does not open a second bucket.
    hook_id = _parse_id(webhook_id)
    wait = runtime.webhook_limiter.take(str(hook_id), runtime.clock.monotonic())
    if wait:
        raise RateLimited("too many deliveries to this hook; try again later", retry_after=wait)
    async with runtime.db.session(system=True) as session:
        hook = await find_hook(session=session, webhook_id=hook_id)
    if hook is None:
        raise NotFound("no such hook", code="hook_not_found")
    try:
        signed = verify(
            provider=hook.provider, auth=hook.auth, secret=hook.secret, headers=headers, body=body
        )
    except SignatureRefused as exc:
        async with runtime.db.session(tenant_id=hook.tenant_id) as session:
            logged = await record_refused(
                session=session,
                hook=hook,
                reason=f"refused because {exc.reason}",
                event=None,
                remote=remote,
            )
        logger.info(
            "webhook %s: delivery refused (%s)%s",
            hook.id,
            exc.reason,
            "" if logged else "; not logged, over the per-minute budget",
        )
        raise DeliveryRefused(exc.reason) from None
    async with runtime.db.session(tenant_id=hook.tenant_id) as session:
        outcome = await accept(
            session=session,
            hook=hook,
            signed=signed,
            body=body,
            content_type=headers.get("content-type", ""),
            remote=remote,
        )
    logger.info(
        "webhook %s: %s delivery %s: %s%s",
        hook.id,
        signed.event,
        signed.delivery_id or "(no id)",
        outcome.verdict,
        f" ({outcome.reason})" if outcome.reason else "",
    )
    return outcome
