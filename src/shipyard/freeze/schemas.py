"""Request and response bodies of the freeze windows API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["recurring", "fixed"]
# A year: a longer recurring window is a fixed one.
MAX_DURATION_MINUTES = 366 * 24 * 60
MAX_SCOPE = 1000

CRON_DESCRIPTION = (
    "recurring: when each occurrence starts, five fields (minute hour day-of-month month "
    "day-of-week) or a preset (@daily, @weekly ...), read in ``timezone``."
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("needs a time zone offset (ISO 8601: 2027-01-01T00:00:00+01:00)")
    return value


class FreezeOverride(StrictModel):
    """An admin's override of the freeze window in force, with the written reason (audited)."""

    reason: str = Field(min_length=1, max_length=2000, description="Why the run must go now.")

    @field_validator("reason")
    @classmethod
    def _written(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("an override needs a written reason")
        return value


class FreezeWindowFields(StrictModel):
    description: str | None = Field(default=None, max_length=5000)
    starts_at: datetime | None = Field(
        default=None,
        description="fixed: the window's start; recurring: the first moment an occurrence may "
        "start (optional).",
    )
    ends_at: datetime | None = Field(
        default=None,
        description="fixed: the window's end; recurring: the last moment an occurrence may "
        "start (optional; it then lasts its full duration).",
    )

    _starts = field_validator("starts_at")(_aware)
    _ends = field_validator("ends_at")(_aware)


class FreezeWindowCreate(FreezeWindowFields):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    cron: str | None = Field(
        default=None, min_length=1, max_length=200, description=CRON_DESCRIPTION
    )
    duration_minutes: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DURATION_MINUTES,
        description="recurring: how long each occurrence lasts (elapsed minutes).",
    )
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, description="An IANA zone: Europe/Berlin."
    )
    template_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_SCOPE,
        description="Only runs of these templates (with group_ids: either matches).",
    )
    group_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_SCOPE,
        description="Only runs whose target includes hosts of these groups. Neither list: "
        "every run of the tenant.",
    )
    enabled: bool = True


class FreezeWindowUpdate(FreezeWindowFields):
    """The fields sent are changed (lists replace the stored ones)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Kind | None = None
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    duration_minutes: int | None = Field(default=None, ge=1, le=MAX_DURATION_MINUTES)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    template_ids: list[UUID] | None = Field(default=None, max_length=MAX_SCOPE)
    group_ids: list[UUID] | None = Field(default=None, max_length=MAX_SCOPE)
    enabled: bool | None = None


class Occurrence(BaseModel):
    """One period of a window, in the window's zone (with its offset)."""

    window_id: UUID
    name: str
    starts_at: datetime
    ends_at: datetime


class FreezeWindowRead(BaseModel):
    id: UUID
    name: str
    description: str | None
    kind: Kind
    cron: str | None
    cron_description: str | None = Field(description="The cron line in words.")
    duration_minutes: int | None
    timezone: str
    starts_at: datetime | None
    ends_at: datetime | None
    template_ids: list[UUID]
    group_ids: list[UUID]
    enabled: bool
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    active: Occurrence | None = Field(
        default=None, description="The occurrence in force now, if any."
    )
    next: list[Occurrence] = Field(
        default_factory=list, description="The next occurrences (not the one in force)."
    )


class ActiveWindows(BaseModel):
    """Which windows are in force at ``at``, and what comes next."""

    at: datetime
    active: list[Occurrence]
    upcoming: list[Occurrence] = Field(
        description="The next occurrences of every window, soonest first."
    )
