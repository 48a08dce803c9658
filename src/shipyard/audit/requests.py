"""Audit entries for write requests that did not succeed, and for writes nobody audited.

Each action function writes its own success entry in its transaction. A request refused with
403 writes nothing there (its transaction rolled back, or never began), so this ASGI middleware
writes one afterwards, in its own short transaction: outcome ``denied`` for 403, ``failure``
with the error code for another error (validation, not found, conflict; another system's
502; even our own 500, if the database still answers). A write that succeeded
without any entry (an action with no audit call of its own) gets a plain ``success`` entry
(``details.recorded_by = "request"``), so every state change leaves a row.

The action is the route's (:func:`shipyard.audit.actions.audit_action`): the same name the
success entry uses. Unauthenticated requests (401, or no caller at all) write nothing, except
a failed log-in of a known account: a ``login`` entry with outcome ``failure`` in its tenant
(only its email is read from the body; the password never is).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from uuid import UUID

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.accounts.audit import RequestAudit, audit, current_request
from shipyard.accounts.principal import Actor, Principal, RequestContext, forwarded_client
from shipyard.audit.actions import API_PREFIX, UNSAFE_METHODS, audit_action
from shipyard.audit.service import profile_by_email

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)
# Enough of an error body to read its code (and of a log-in's body to read its email).
MAX_ERROR_BODY = 16 * 1024
MAX_EMAIL = 320
# Where people log in (API and web form): their failures are recorded though unauthenticated.
LOGIN_PATHS = frozenset({"/api/v1/auth/login", "/login"})
STATUS_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class AuditedRequests:
    """ASGI middleware: the failure, denial and fallback entries of write requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        noted = RequestAudit()
        status: list[int] = []
        body = bytearray()
        content_type: list[str] = []

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type.append(value.decode("latin-1"))
            elif (
                message["type"] == "http.response.body"
                and status
                and status[0] >= 400
                and len(body) < MAX_ERROR_BODY
            ):
                body.extend(message.get("body", b"")[: MAX_ERROR_BODY - len(body)])
            await send(message)

        login = scope.get("path") in LOGIN_PATHS
        sent_body = bytearray()

        async def read(self_receive: Receive = receive) -> Message:
            message = await self_receive()
            if message["type"] == "http.request" and len(sent_body) < MAX_ERROR_BODY:
                sent_body.extend(message.get("body", b"")[: MAX_ERROR_BODY - len(sent_body)])
            return message

        token = current_request.set(noted)
        try:
            await self.app(scope, read if login else receive, observe)
        finally:
            current_request.reset(token)
        if not status:
            return
        try:
            if login:
                await _record_login_failure(scope, status[0], bytes(sent_body))
            else:
                await _record(scope, status[0], noted, bytes(body), content_type)
        except Exception:  # the answer is sent; a lost entry is logged, never a second error
            logger.exception("could not write the audit entry of a %s request", scope["method"])


def _context(scope: Scope, runtime: Runtime) -> RequestContext:
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    client = scope.get("client")
    address = forwarded_client(
        client[0] if client else None,
        [headers["x-forwarded-for"]] if "x-forwarded-for" in headers else [],
        trusted=runtime.settings.trusted_proxies,
    )
    return RequestContext(
        ip_address=address,
        user_agent=headers.get("user-agent"),
        request_id=headers.get("x-request-id"),
    )


def _login_email(body: bytes) -> str | None:
    """The email a log-in named (JSON or a form); never anything else of the body."""
    email: object = None
    try:
        email = json.loads(body).get("email")
    except (ValueError, AttributeError):
        values = parse_qs(body.decode("utf-8", "replace")).get("email")
        email = values[0] if values else None
    if not isinstance(email, str) or not 0 < len(email.strip()) <= MAX_EMAIL:
        return None
    return email.strip()


async def _record_login_failure(scope: Scope, status: int, body: bytes) -> None:
    """A refused log-in (401) of a known account: a ``login`` entry with outcome ``failure`` in
    that account's tenant. Unknown addresses name no tenant, and throttled attempts (429, cheap
    to repeat) write nothing: the log-in throttle's own table keeps those."""
    if status != 401:
        return
    email = _login_email(body)
    if email is None:
        return
    runtime: Runtime = scope["app"].state.runtime
    async with runtime.db.session(system=True) as session:
        found = await profile_by_email(session=session, email=email)
    if found is None:
        return
    profile_id, tenant_id, role, stored_email = found
    principal = Principal(user_id=profile_id, tenant_id=tenant_id, role=role, email=stored_email)
    actor = Actor(principal=principal, context=_context(scope, runtime))
    async with runtime.db.session(tenant_id=tenant_id, user_id=profile_id) as session:
        await audit(
            session,
            actor=actor,
            action="login",
            resource_type="profile",
            resource_id=profile_id,
            details={
                "error_code": "login_failed",
                "status": status,
                "path": scope.get("path"),
            },
            outcome="failure",
        )


def _route_path(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    # A route of a router included under /api/v1 knows its path below that prefix only.
    if str(scope.get("path", "")).startswith(API_PREFIX + "/") and not path.startswith(
        API_PREFIX + "/"
    ):
        path = API_PREFIX + path
    return path


def _principal(scope: Scope) -> Principal | None:
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    return principal if isinstance(principal, Principal) else None


def _error_code(status: int, body: bytes, content_type: list[str]) -> tuple[str, str | None]:
    code, message = STATUS_CODES.get(status, "error"), None
    if content_type and content_type[0].startswith("application/json"):
        try:
            error = json.loads(body).get("error", {})
            code = str(error.get("code") or code)
            message = str(error.get("message"))[:500] if error.get("message") else None
        except (ValueError, AttributeError):
            pass
    return code, message


def _resource_id(scope: Scope) -> UUID | None:
    params = scope.get("path_params") or {}
    for value in reversed(list(params.values())):
        try:
            return UUID(str(value))
        except ValueError:
            continue
    return None


async def _record(
    scope: Scope, status: int, noted: RequestAudit, body: bytes, content_type: list[str]
) -> None:
    principal = _principal(scope)
    path = _route_path(scope)
    if principal is None or path is None or status == 401:
        return
    if status < 400 and noted.actions:
        return
    action = audit_action(scope["method"], path)
    if action is None:
        return
    runtime: Runtime = scope["app"].state.runtime
    actor = Actor(principal=principal, context=_context(scope, runtime))
    details: dict[str, Any] = {
        "method": scope["method"],
        "path": scope.get("path"),
        "status": status,
    }
    if status < 400:
        outcome = "success"
        details["recorded_by"] = "request"
    else:
        outcome = "denied" if status == 403 else "failure"
        code, message = _error_code(status, body, content_type)
        details["error_code"] = code
        if message:
            details["message"] = message
    async with runtime.db.session(
        tenant_id=principal.tenant_id, user_id=principal.user_id
    ) as session:
        await audit(
            session,
            actor=actor,
            action=action,
            resource_type=action.split(".")[0],
            resource_id=_resource_id(scope),
            details=details,
            outcome=outcome,
        )
