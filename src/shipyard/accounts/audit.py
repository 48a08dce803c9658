"""The audit trail: every action function writes its own entry, with the actor captured once.

Each entry records who (``actor_profile_id`` and ``actor_email`` as it was then), from where
(``ip_address``), what (``action`` on ``resource_type``/``resource_id``), how it ended
(``outcome``: success, failure or denied) and the before/after of the fields that changed
(``changes``).

``changes`` is captured generically, not by each caller: a ``before_flush`` listener records the
attribute history of every new, changed and deleted ORM object of the transaction, and hands it
to the audit entry whose ``resource_id`` is that object's id when the entry is flushed. Its
shape, per field::

    {"name": {"before": "a", "after": "b"}}     a changed field
    {"port": {"after": 22}}                     a field of a created resource
    {"name": {"before": "a"}}                   a field of a deleted resource
    {"password": {"changed": true}}             a secret: never its value

Secrets are ``EncryptedText`` columns and fields named like secrets (password, token, secret,
private_key, passphrase, ...). Bulk ``UPDATE`` statements bypass the ORM and carry no changes.
"""

from __future__ import annotations

import ipaddress
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import History

from shipyard.accounts.models import AuditEvent
from shipyard.accounts.principal import Actor
from shipyard.orm import EncryptedText

OUTCOMES = ("success", "failure", "denied")
MASK = "***"
SECRET_NAME = re.compile(r"password|passphrase|secret|token|private_key|api_key|credential", re.I)
# Bookkeeping columns whose change says nothing a reader needs.
IGNORED_FIELDS = frozenset({"id", "tenant_id", "created_at", "updated_at"})
# Values longer than this are cut in ``changes`` (scripts, inventories): the entry stays small.
MAX_VALUE_CHARS = 2000
_PENDING = "shipyard.audit.pending"


@dataclass
class RequestAudit:
    """What one request wrote to the audit trail; the request middleware reads it afterwards."""

    actions: list[str] = field(default_factory=list)


# Set by the request middleware (``shipyard.audit.requests``) around each write request.
current_request: ContextVar[RequestAudit | None] = ContextVar(
    "shipyard_request_audit", default=None
)


def actor_email(actor: Actor) -> str:
    """The actor's address as the entry keeps it: the person's email; a trigger's kind and id
    (``schedule:<id>``); ``system`` when nobody is named."""
    return actor.principal.email or "system"


async def audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: UUID | None = None,
    details: dict[str, Any] | None = None,
    outcome: str = "success",
    changes: dict[str, Any] | None = None,
) -> None:
    """Append ``action`` by ``actor`` to the tenant's audit log, in the action's transaction.

    ``details`` never holds secret values: name the fields that changed, not what they hold.
    ``changes`` is filled from the transaction's ORM changes to ``resource_id`` when not given.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    session.add(
        AuditEvent(
            tenant_id=actor.tenant_id,
            actor_profile_id=actor.user_id if actor.user_id.int else None,
            actor_email=actor_email(actor),
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details or {},
            changes=changes or {},
            outcome=outcome,
            ip_address=_inet(actor.context.ip_address),
        )
    )
    noted = current_request.get()
    if noted is not None:
        noted.actions.append(action)


def _inet(address: str | None) -> str | None:
    """``address`` if the ``inet`` column can hold it (a request may come with none: "unknown")."""
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


# --- changes ---------------------------------------------------------------------------------


def is_secret(name: str, column_type: object = None) -> bool:
    """Whether a field's value must never appear in an entry."""
    return isinstance(column_type, EncryptedText) or bool(SECRET_NAME.search(name))


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it (ids and times as text, long text cut)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return MASK
    return str(value)


def _field_change(name: str, column_type: object, history: History, kind: str) -> dict[str, Any]:
    added = history.added[0] if history.added else None
    deleted = history.deleted[0] if history.deleted else None
    if is_secret(name, column_type):
        return {"changed": True}
    if kind == "new":
        return {"after": jsonable(added)}
    if kind == "deleted":
        unchanged: list[Any] = list(history.unchanged or ())
        return {"before": jsonable(deleted if history.deleted else unchanged[0])}
    return {"before": jsonable(deleted), "after": jsonable(added)}


def object_changes(obj: object, kind: str) -> dict[str, Any]:
    """The changed fields of ``obj`` (``kind``: new, dirty or deleted), secrets masked."""
    state = inspect(obj)
    changes: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        name = attr.key
        if name in IGNORED_FIELDS:
            continue
        history = state.attrs[name].history
        column_type = attr.columns[0].type if attr.columns else None
        if kind == "new":
            if not history.added or history.added[0] is None:
                continue
        elif kind == "deleted":
            if not (history.deleted or history.unchanged) or is_secret(name, column_type):
                continue
        elif not history.has_changes() or (history.added[0] if history.added else None) == (
            history.deleted[0] if history.deleted else None
        ):
            continue
        changes[name] = _field_change(name, column_type, history, kind)
    return changes


def _merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two flushes' changes of one object: the first ``before``, the last ``after``."""
    merged = dict(earlier)
    for name, change in later.items():
        if name in merged and "before" in merged[name] and "after" in change:
            merged[name] = {"before": merged[name]["before"], "after": change["after"]}
        elif name in merged and merged[name].get("changed") and change.get("changed"):
            continue
        else:
            merged[name] = change
    return merged


@event.listens_for(Session, "before_flush")
def _capture_changes(session: Session, flush_context: object, instances: object) -> None:
    """Note each object's changes, then give them to the entries about those objects."""
    # id(object) -> (object, its changes so far in this transaction); the object is held, so
    # its id() stays its own until the transaction ends.
    pending: dict[int, tuple[object, dict[str, Any]]] = session.info.setdefault(_PENDING, {})
    events: list[AuditEvent] = []
    for kind, objects in (
        ("new", session.new),
        ("dirty", session.dirty),
        ("deleted", session.deleted),
    ):
        for obj in objects:
            if isinstance(obj, AuditEvent):
                if kind == "new":
                    events.append(obj)
                continue
            changes = object_changes(obj, kind)
            if not changes:
                continue
            seen = pending.get(id(obj))
            pending[id(obj)] = (obj, _merge(seen[1], changes) if seen else changes)
    for entry in events:
        if entry.changes or entry.resource_id is None:
            continue
        for key, (obj, changes) in list(pending.items()):
            if getattr(obj, "id", None) == entry.resource_id:
                entry.changes = changes
                del pending[key]
                break


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_PENDING, None)
