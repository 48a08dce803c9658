"""The schedule form of the web UI: what was typed, read into the schedules API's body.

The form keeps every value as typed (a 422 re-renders it as sent). Start and end are
``datetime-local`` fields: wall times read in the schedule's own zone (a person schedules
"from 1 March, 09:00 Berlin time"), made ISO 8601 with that zone's offset before the service
sees them. Parameter values come from the same fields as a template's launch form
(``param.<name>`` typed by ``kind.<name>``) and are checked by the service, which names
``parameters.<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from starlette.datastructures import FormData, UploadFile

from shipyard.schedules.schemas import ScheduleRead
from shipyard.web.template_form import launch_values

# Offered in the cron field's list (a datalist: any line may still be typed).
CRON_PRESETS = (
    ("@hourly", "every hour, on the hour"),
    ("@daily", "every day at midnight"),
    ("@weekly", "every Sunday at midnight"),
    ("@monthly", "the first of every month at midnight"),
    ("*/15 * * * *", "every 15 minutes"),
    ("0 2 * * *", "every day at 02:00"),
    ("0 9 * * 1-5", "weekdays at 09:00"),
)
OVERLAP_POLICIES = (
    ("skip", "Skip this fire (recorded as skipped)"),
    ("queue", "Queue it: start when the previous run ends"),
    ("allow", "Run anyway, alongside the previous run"),
)
MISSED_POLICIES = (
    ("skip", "Skip them (each recorded as missed)"),
    ("run_once", "Run once at start-up for all of them"),
)
MASKED = "***"
TEXT_FIELDS = (
    "name",
    "cron",
    "timezone",
    "overlap_policy",
    "missed_policy",
    "starts_at",
    "ends_at",
)
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """IANA zone names for the zone field's list, UTC first."""
    names = sorted(name for name in available_timezones() if "/" in name)
    return ("UTC", *names)


class LocalTimeError(ValueError):
    """A start or end that does not read as a date and time; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local_time(raw: str, zone_name: str, field_name: str) -> str | None:
    """``raw`` (a ``datetime-local`` value, or ISO 8601 with an offset) as ISO 8601 with the
    schedule zone's offset; an unknown zone leaves it in UTC (the service names ``timezone``)."""
    text = raw.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
        for pattern in LOCAL_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if parsed is None:
        raise LocalTimeError(field_name, "a date and time such as 2027-03-01T09:00")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(zone_name) or ZoneInfo("UTC"))
    return parsed.isoformat()


@dataclass
class ScheduleForm:
    """The schedule form as typed: text fields, the enabled box and the parameter fields."""

    values: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    form: FormData | None = None

    @classmethod
    def blank(cls) -> ScheduleForm:
        return cls(
            values={"timezone": "UTC", "overlap_policy": "skip", "missed_policy": "skip"},
            enabled=True,
        )

    @classmethod
    def from_schedule(cls, schedule: ScheduleRead, kinds: Mapping[str, str]) -> ScheduleForm:
        """The form of a stored schedule: times as wall times in its zone, its values in the
        parameter fields (a secret one blank: it is write-only)."""
        zone = _zone(schedule.timezone)

        def wall(at: datetime | None) -> str:
            if at is None:
                return ""
            return (at.astimezone(zone) if zone else at).strftime("%Y-%m-%dT%H:%M")

        values = {
            "name": schedule.name or "",
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "overlap_policy": schedule.overlap_policy,
            "missed_policy": schedule.missed_policy,
            "starts_at": wall(schedule.starts_at),
            "ends_at": wall(schedule.ends_at),
        }
        items: list[tuple[str, str | UploadFile]] = []
        for name, value in schedule.parameters.items():
            kind = kinds.get(name)
            if kind is None or kind == "secret":
                continue
            items.append((f"kind.{name}", kind))
            if kind == "multi_choice" and isinstance(value, list):
                items.extend((f"param.{name}", str(item)) for item in value)
            elif kind == "boolean":
                if value:
                    items.append((f"param.{name}", "1"))
            else:
                items.append((f"param.{name}", str(value)))
        return cls(values=values, enabled=schedule.enabled, form=FormData(items))

    @classmethod
    def from_form(cls, form: FormData) -> ScheduleForm:
        values = {}
        for name in TEXT_FIELDS:
            raw = form.get(name)
            values[name] = raw.strip() if isinstance(raw, str) else ""
        # A form sent by the page carries "enabled_form": an unticked box then means "paused".
        enabled = form.get("enabled") == "1" if form.get("enabled_form") else True
        return cls(values=values, enabled=enabled, form=form)

    @property
    def parameter_values(self) -> dict[str, Any]:
        return launch_values(self.form) if self.form is not None else {}

    def window(self) -> dict[str, str | None]:
        """Start and end as ISO 8601 with the schedule zone's offset (LocalTimeError)."""
        zone_name = self.values.get("timezone", "")
        return {
            name: _local_time(self.values.get(name, ""), zone_name, name)
            for name in ("starts_at", "ends_at")
        }

    def payload(self) -> dict[str, Any]:
        """The body of ``ScheduleCreate`` (raises LocalTimeError for start/end)."""
        values = self.values
        body: dict[str, Any] = {
            "name": values.get("name") or None,
            "cron": values.get("cron", ""),
            "timezone": values.get("timezone") or "UTC",
            "parameters": self.parameter_values,
            "enabled": self.enabled,
            "overlap_policy": values.get("overlap_policy") or "skip",
            "missed_policy": values.get("missed_policy") or "skip",
        }
        body.update(self.window())
        return body

    def update_payload(self, stored_secrets: set[str]) -> dict[str, Any]:
        """The body of ``ScheduleUpdate``: every field; a stored secret left blank is sent as
        ``***`` (the service keeps the stored value)."""
        body = self.payload()
        for name in stored_secrets:
            body["parameters"].setdefault(name, MASKED)
        return body

    def preview_payload(self, count: int = 10) -> dict[str, Any]:
        """The body of ``PreviewRequest`` (raises LocalTimeError for start/end)."""
        return {
            "cron": self.values.get("cron", ""),
            "timezone": self.values.get("timezone") or "UTC",
            "count": count,
            **self.window(),
        }
