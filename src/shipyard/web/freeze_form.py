"""The freeze window form of the web UI and the override fields of the launch forms.

The window form keeps every value as typed (a 422 re-renders it as sent). Start and end are
``datetime-local`` fields read in the window's own zone, as the schedule form reads its own.
The launch forms (a template's launch card, the wizard's review step) carry, for admins, an
"override a freeze window" box and its written reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData

from shipyard.errors import ValidationFailed
from shipyard.freeze.schemas import FreezeOverride, FreezeWindowRead
from shipyard.web.schedule_form import _local_time

TEXT_FIELDS = (
    "name",
    "description",
    "kind",
    "cron",
    "duration_minutes",
    "timezone",
    "starts_at",
    "ends_at",
)
CHECKED = ("1", "on", "true", "yes")


def freeze_override(form: FormData) -> FreezeOverride | None:
    """The override a launch form asks for (None: the box is not ticked); a ticked box with no
    reason is refused naming ``freeze_override.reason``."""
    if str(form.get("freeze_override") or "") not in CHECKED:
        return None
    reason = str(form.get("freeze_override_reason") or "").strip()
    if not reason:
        raise ValidationFailed(
            "an override of a freeze window needs a written reason",
            field="freeze_override.reason",
        )
    return FreezeOverride(reason=reason)


@dataclass
class WindowForm:
    """The window form as typed."""

    values: dict[str, str] = field(default_factory=dict)
    template_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    enabled: bool = True

    @classmethod
    def blank(cls) -> WindowForm:
        return cls(values={"kind": "recurring", "timezone": "UTC"})

    @classmethod
    def from_window(cls, window: FreezeWindowRead) -> WindowForm:
        """The form of a stored window (start and end in its own zone), for its edit page."""

        def local(instant: datetime | None) -> str:
            if instant is None:
                return ""
            try:
                zone = ZoneInfo(window.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                zone = ZoneInfo("UTC")
            return instant.astimezone(zone).strftime("%Y-%m-%dT%H:%M")

        values = {
            "name": window.name,
            "description": window.description or "",
            "kind": window.kind,
            "cron": window.cron or "",
            "duration_minutes": str(window.duration_minutes or ""),
            "timezone": window.timezone,
            "starts_at": local(window.starts_at),
            "ends_at": local(window.ends_at),
        }
        return cls(
            values=values,
            template_ids=[str(t) for t in window.template_ids],
            group_ids=[str(g) for g in window.group_ids],
            enabled=window.enabled,
        )

    @classmethod
    def from_form(cls, form: FormData) -> WindowForm:
        return cls(
            values={name: str(form.get(name) or "") for name in TEXT_FIELDS},
            template_ids=[str(value) for value in form.getlist("template_ids") if value],
            group_ids=[str(value) for value in form.getlist("group_ids") if value],
            enabled=str(form.get("enabled") or "") in CHECKED,
        )

    def payload(self) -> dict[str, Any]:
        """The API's body (LocalTimeError naming a start or end that does not read)."""
        values = self.values
        zone = values.get("timezone") or "UTC"
        kind = values.get("kind") or "recurring"
        duration = values.get("duration_minutes", "").strip()
        return {
            "name": values.get("name", "").strip(),
            "description": values.get("description", "").strip() or None,
            "kind": kind,
            "cron": (values.get("cron", "").strip() or None) if kind == "recurring" else None,
            "duration_minutes": (duration or None) if kind == "recurring" else None,
            "timezone": zone,
            "starts_at": _local_time(values.get("starts_at", ""), zone, "starts_at"),
            "ends_at": _local_time(values.get("ends_at", ""), zone, "ends_at"),
            "template_ids": self.template_ids,
            "group_ids": self.group_ids,
            "enabled": self.enabled,
        }
