"""Deployments, their per-host script runs and their log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    FetchedValue,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import (
    CURRENT_TENANT_SQL,
    Base,
    EncryptedText,
    TimestampMixin,
    check_in,
    tenant_fk,
    uuid_pk,
)

DEPLOYMENT_STATUSES = (
    "pending",
    "scheduled",
    "in_progress",
    "success",
    "failed",
    "partial",
    "cancelled",
    "interrupted",
    "pending_approval",
)
# ``pending_approval``: waiting for its template's approvers (0013); its job is deferred at
# launch, parked at HELD_UNTIL, and moved to now by the last approval; a rejection or the
# expiry ends it ``cancelled``.
# ``interrupted``: the worker was told to stop (SIGTERM) and its grace period ran out.
FINAL_DEPLOYMENT_STATUSES = ("success", "failed", "partial", "cancelled", "interrupted")
SCHEDULE_TYPES = ("now", "later")
# What started a run: the web UI, the REST API (a session or a token), a schedule, a webhook.
TRIGGERS = ("manual", "api", "schedule", "webhook")
SCRIPT_STATUSES = (
    "pending",
    "running",
    "success",
    "failed",
    "skipped",
    "cancelled",
    "interrupted",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# 0015: where a script's line came from; NULL for Shipyard's own events (which carry a level).
LOG_STREAMS = ("stdout", "stderr")


class Deployment(TimestampMixin, Base):
    __tablename__ = "deployments"
    __table_args__ = (
        CheckConstraint(check_in("status", DEPLOYMENT_STATUSES), name="status"),
        CheckConstraint(check_in("schedule", SCHEDULE_TYPES), name="schedule"),
        CheckConstraint(check_in("trigger", TRIGGERS), name="trigger"),
        Index("ix_deployments_template_id_created_at", "template_id", "created_at"),
        Index("ix_deployments_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_deployments_status_heartbeat_at", "status", "heartbeat_at"),
        Index(
            "ix_deployments_approval_expires_at",
            "approval_expires_at",
            postgresql_where=text("status = 'pending_approval'"),
        ),
    )

    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    repository_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("repositories.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    schedule: Mapped[str] = mapped_column(Text, nullable=False, server_default="now")
    scheduled_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    script_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(PG_UUID(as_uuid=True)), nullable=False, server_default="{}"
    )
    host_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(PG_UUID(as_uuid=True)), nullable=False, server_default="{}"
    )
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    ref: Mapped[str | None] = mapped_column(Text)
    commit_sha: Mapped[str | None] = mapped_column(Text)
    script_arguments: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default="{}"
    )
    environment: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # JSON object of secret environment variables, encrypted as one value.
    secret_environment: Mapped[str | None] = mapped_column(EncryptedText)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rerun_of: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("deployments.id", ondelete="SET NULL"), index=True
    )
    worker_id: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The procrastinate job that runs it: cancelled or rescheduled while it waits.
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    # Templates and launches (0011).
    template_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("templates.id", ondelete="SET NULL")
    )
    trigger: Mapped[str] = mapped_column(Text, nullable=False, server_default="manual")
    # Who or what launched it, as it was then: {kind: user|token|schedule|webhook, id, name}.
    launched_by: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The launch's parameter values, a secret one as "***" (its value is in secret_environment).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # The target rule ({host_ids, group_ids, tags}) when launched with one; ``host_ids`` holds
    # the hosts it resolved to when the run started.
    target: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # What fired it, for trigger 'schedule' or 'webhook' (0012).
    schedule_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("schedules.id", ondelete="SET NULL"), index=True
    )
    webhook_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("webhooks.id", ondelete="SET NULL"), index=True
    )
    # Approvals (0013): what the run waits for, as the template said at launch.
    approvals_needed: Mapped[int | None] = mapped_column(Integer)
    approval_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A freeze window overridden by an admin for this run, and the written reason.
    freeze_window_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("freeze_windows.id", ondelete="SET NULL"), index=True
    )
    freeze_override_reason: Mapped[str | None] = mapped_column(Text)
    # 0015: when the retention policy deleted this run's log lines (its rows, results and
    # output tails stay; the page says the log was pruned).
    log_pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 0016: how many log lines the run has numbered (``deployment_logs.line_no`` 1..log_lines,
    # less what retention pruned); NULL for a run logged before 0016 (read by counting).
    log_lines: Mapped[int | None] = mapped_column(BigInteger, server_default=text("0"))


class DeploymentScript(TimestampMixin, Base):
    __tablename__ = "deployment_scripts"
    __table_args__ = (
        CheckConstraint(check_in("status", SCRIPT_STATUSES), name="status"),
        Index(
            "uq_deployment_scripts_deployment_host_position",
            "deployment_id",
            "host_id",
            "position",
            unique=True,
        ),
    )

    id: Mapped[UUID] = uuid_pk()
    deployment_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    script_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    name: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    output: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    host_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("hosts.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    arguments: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default="[]")
    error: Mapped[str | None] = mapped_column(Text)
    # Where the script runs on its host (PID, its process group, the run's temporary
    # directory), so the processes of a lost or stopped worker can be ended later.
    remote_pid: Mapped[int | None] = mapped_column(Integer)
    remote_pgid: Mapped[int | None] = mapped_column(Integer)
    remote_temp_dir: Mapped[str | None] = mapped_column(Text)
    # The worker that ran it (0011): worker pools are checked through it.
    worker_id: Mapped[str | None] = mapped_column(Text)


class DeploymentLog(Base):
    __tablename__ = "deployment_logs"
    __table_args__ = (
        CheckConstraint(check_in("level", LOG_LEVELS), name="level"),
        CheckConstraint(check_in("stream", LOG_STREAMS), name="stream"),
        Index("ix_deployment_logs_deployment_id_seq", "deployment_id", "seq"),
        # 0016: ranges of a run's lines by number (constant time at any depth).
        Index(
            "ix_deployment_logs_deployment_id_line_no",
            "deployment_id",
            "line_no",
            postgresql_where=text("line_no IS NOT NULL"),
        ),
    )

    id: Mapped[UUID] = uuid_pk()
    # Led by the (deployment_id, seq) index, which serves every read of a deployment's log.
    deployment_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
    )
    level: Mapped[str] = mapped_column(Text, nullable=False, server_default="INFO")
    message: Mapped[str] = mapped_column(Text, nullable=False)
    timestamp: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # Additions: a monotonic sequence for ordering and SSE resumption.
    # Unique by construction (an identity); reads go through (deployment_id, seq).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), nullable=False)
    # Log lines are an append-only journal written at 100,000+ lines/s: these columns hold the
    # ids they were written with, without foreign keys (whose per-row checks and indexes would
    # halve the write rate). Deleting the deployment still deletes its lines (the cascade above).
    tenant_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), nullable=False, server_default=text(CURRENT_TENANT_SQL)
    )
    host_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    deployment_script_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    # 0015: stdout or stderr for a script's output (its level stays INFO: most stderr is
    # progress and warnings, not errors); NULL for Shipyard's own events.
    stream: Mapped[str | None] = mapped_column(Text)
    # 0016: the line's number in its run, given at write time (the writer takes a block per
    # batch; a row inserted without one gets the next from a trigger). NULL: a pre-0016 run.
    line_no: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())


class DeploymentHeartbeat(Base):
    """The last heartbeat of a running deployment (0017): written by its worker every second.

    A row of its own, not a column of ``deployments``: a run's log writer holds the run's row
    while it numbers and stores a batch, and a heartbeat that waited for it stalled the beats of
    every other run of the worker (docs/decisions.md, "Heartbeats on a table of their own").
    Only the worker and the lost-worker sweep use it, on the owner's connections.
    """

    __tablename__ = "deployment_heartbeats"

    deployment_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("deployments.id", ondelete="CASCADE"),
        primary_key=True,
    )
    # The worker that beat; the sweep counts a beat only from the run's current owner.
    worker_id: Mapped[str] = mapped_column(Text, nullable=False)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
