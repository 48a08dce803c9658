"""Request and response bodies of the schedules API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

OverlapPolicy = Literal["skip", "queue", "allow"]
MissedPolicy = Literal["skip", "run_once"]
FireVerdict = Literal["ran", "queued", "skipped", "missed", "failed"]

CRON_DESCRIPTION = (
    "Five fields (minute hour day-of-month month day-of-week) or a preset: "
    "@hourly, @daily, @weekly, @monthly, @yearly."
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(StrictModel):
    """Optional first and last moments a schedule fires in (ISO 8601 with an offset)."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone offset (ISO 8601: 2027-01-01T00:00:00+01:00)")
        return value


class ScheduleCreate(Window):
    name: str | None = Field(default=None, max_length=200)
    cron: str = Field(min_length=1, max_length=200, description=CRON_DESCRIPTION)
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, description="An IANA zone: Europe/Berlin."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Launch parameter values, checked against the template's parameters; a "
        "secret one is write-only (shown as ***).",
    )
    enabled: bool = True
    overlap_policy: OverlapPolicy = Field(
        default="skip",
        description="When the template's previous run is still going: skip this fire, queue "
        "it to start when that run ends, or allow it to run alongside.",
    )
    missed_policy: MissedPolicy = Field(
        default="skip",
        description="Fires missed while Shipyard was down: skip them (recorded as missed), or "
        "run_once: one catch-up run for all of them.",
    )


class ScheduleUpdate(Window):
    """The fields sent are changed; a secret parameter sent as ``***`` keeps its stored value."""

    name: str | None = Field(default=None, max_length=200)
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    parameters: dict[str, Any] | None = None
    enabled: bool | None = None
    overlap_policy: OverlapPolicy | None = None
    missed_policy: MissedPolicy | None = None


class FireRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    schedule_id: UUID
    fire_time: datetime
    verdict: FireVerdict
    reason: str | None
    deployment_id: UUID | None
    created_at: datetime


class ScheduleRead(BaseModel):
    id: UUID
    template_id: UUID
    name: str | None
    cron: str
    cron_description: str = Field(description="The cron line in words.")
    timezone: str
    parameters: dict[str, Any] = Field(description="Values; a secret one as ***.")
    enabled: bool
    overlap_policy: OverlapPolicy
    missed_policy: MissedPolicy
    starts_at: datetime | None
    ends_at: datetime | None
    next_fire_at: datetime | None = Field(description="UTC; null when paused or ended.")
    next_fire_local: datetime | None = Field(description="The next fire in the schedule's zone.")
    last_fire_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    last_fire: FireRead | None = Field(
        default=None, description="The newest fire with its verdict (ran, skipped, missed …)."
    )


class FireTime(BaseModel):
    at: datetime = Field(description="In the schedule's zone, with its offset.")
    utc: datetime


class NextTimes(BaseModel):
    cron: str
    cron_description: str
    timezone: str
    times: list[FireTime]


class PreviewRequest(Window):
    """A cron line to preview before saving."""

    cron: str = Field(min_length=1, max_length=200, description=CRON_DESCRIPTION)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    count: int = Field(default=10, ge=1, le=100)
