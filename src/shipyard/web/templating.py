"""Jinja2 environment of the web UI and the one ``render`` every page goes through."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.outbound.links import http_link, link_under

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# (section, label, path, the permission the page needs or None): entries a member cannot open
# are not shown to them.
NAVIGATION: tuple[tuple[str, str, str, Permission | None], ...] = (
    ("dashboard", "Dashboard", "/", None),
    ("repositories", "Repositories", "/repositories", None),
    ("hosts", "Hosts", "/hosts", None),
    ("deployments", "Deployments", "/deployments", None),
    ("templates", "Templates", "/templates", None),
    ("schedules", "Schedules", "/schedules", None),
    ("approvals", "Approvals", "/approvals", None),
    ("cicd", "CI/CD", "/cicd", None),
    ("audit", "Audit", "/audit", Permission.MANAGE_AUDIT),
    ("settings", "Settings", "/settings", None),
)

STATUS_TONES = {
    "success": "good",
    "online": "good",
    "synced": "good",
    "failed": "bad",
    "error": "bad",
    "offline": "bad",
    "auth_failed": "bad",
    "host_key_mismatch": "bad",
    "partial": "warn",
    "interrupted": "warn",
    "pending_approval": "warn",
    "cancelled": "muted",
    "skipped": "muted",
    "unknown": "muted",
    "pending": "muted",
    "scheduled": "info",
    "queued": "info",
    "in_progress": "info",
    "running": "info",
    "syncing": "info",
}


def time_tag(value: datetime | None, empty: str = "—") -> Markup:
    """A ``<time>`` element the browser re-renders in the viewer's timezone (see app.js)."""
    if value is None:
        return escape(empty)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    return Markup('<time datetime="{}" data-local>{}</time>').format(
        utc.isoformat(), utc.strftime("%Y-%m-%d %H:%M UTC")
    )


def status_badge(status: str | None) -> Markup:
    label = (status or "unknown").replace("_", " ")
    tone = STATUS_TONES.get(status or "unknown", "muted")
    return Markup('<span class="badge badge-{}" data-status="{}">{}</span>').format(
        tone, status or "unknown", label
    )


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def names_json(mapping: Mapping[Any, str]) -> Markup:
    """``{id: name}`` as JSON safe to put in an HTML attribute (ids become strings)."""
    return htmlsafe_json_dumps({str(key): value for key, value in mapping.items()})


def safe_href(url: str | None, allowed_base: str | None = None) -> str:
    """The one way a template renders a link to another system: ``{{ url|safe_href(base) }}``.

    Only an absolute http(s) URL passes, and with ``allowed_base`` only one under it (same
    scheme, host and port, path below); anything else (``javascript:``, ``data:``, another
    site) becomes ``""``, which templates test to show plain text instead of a link. A path on
    Shipyard itself (``/hosts``, not ``//host``) passes as it is.
    """
    if not url:
        return ""
    if (
        url.startswith("/")
        and not url.startswith(("//", "/\\"))
        and http_link("http://shipyard" + url)
    ):
        return url
    kept = link_under(url, allowed_base) if allowed_base else http_link(url)
    return kept or ""


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["tojson_names"] = names_json
templates.env.filters["time"] = time_tag
templates.env.filters["badge"] = status_badge
templates.env.filters["safe_href"] = safe_href
templates.env.globals["duration"] = duration
templates.env.globals["Permission"] = Permission
templates.env.globals["navigation"] = NAVIGATION


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def current_principal(request: Request) -> Principal | None:
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``name`` with what every page needs: the user, their permissions, the CSRF token."""
    principal = current_principal(request)

    def can(permission: Permission) -> bool:
        return principal is not None and principal.can(permission)

    full: dict[str, Any] = {
        "principal": principal,
        "can": can,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "section": None,
    }
    full.update(context or {})
    response: HTMLResponse = templates.TemplateResponse(
        request, name, full, status_code=status_code, headers=dict(headers or {})
    )
    return response
