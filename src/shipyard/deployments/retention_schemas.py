"""Shapes of the per-tenant log retention policy and of the tenant's log size."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shipyard.config import MAX_RETENTION_DAYS, MAX_RETENTION_LINES


class LogRetentionUpdate(BaseModel):
    """The whole policy (PUT): a field left out or null means the installation's default
    (``SHIPYARD_LOG_RETENTION_DAYS``/``_LINES``), which keeps everything unless it is set."""

    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="Delete a finished run's log this many days after it ended; null: the "
        "installation's default.",
    )
    lines: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_LINES,
        description="Keep at most this many lines of a finished run (its newest); null: the "
        "installation's default.",
    )


class LogSize(BaseModel):
    rows: int = Field(description="The tenant's log lines (counted).")
    bytes: int = Field(
        description="Their share of the log table on disk (rows x the table's bytes per row, "
        "indexes and TOAST included): an estimate."
    )


class LogRetentionRead(BaseModel):
    days: int | None = Field(description="The tenant's own days; null: the installation's.")
    lines: int | None = Field(description="The tenant's own lines; null: the installation's.")
    default_days: int | None = Field(
        default=None, description="The installation's days (SHIPYARD_LOG_RETENTION_DAYS)."
    )
    default_lines: int | None = Field(
        default=None, description="The installation's lines (SHIPYARD_LOG_RETENTION_LINES)."
    )
    effective_days: int | None = Field(
        default=None, description="The days the nightly prune applies; null: keep."
    )
    effective_lines: int | None = Field(
        default=None, description="The lines the nightly prune keeps; null: every line."
    )
    size: LogSize
