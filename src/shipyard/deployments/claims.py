"""Claiming runs in batches: one transaction takes every run this worker fetched meanwhile.

When a thousand runs fall due in one second, each worker fetches hundreds of jobs within
milliseconds. Claimed one by one, each run cost its own transaction (scope, ``SELECT ... FOR
UPDATE``, ``UPDATE``, ``pg_notify``, ``COMMIT``: six round trips and an ORM load), about three
times what the job queue spends on the job itself, so the later runs of the second started
seconds late. Here claims group-commit: while one batch is being written, the claims that
arrive wait and go together in the next one, so an idle worker claims a lone run at once and a
busy one writes one statement per batch rather than per run. That statement runs in
autocommit on a connection of its own (``Database.claims``): one round trip, where a pooled
session's checkout, scope, statement and COMMIT took four and the ORM's Python besides.

A claim has the meaning the per-run transaction gave it: a run already taken (a duplicate job
delivery) or finished is not claimed again; a run whose cancel was requested before it started
ends ``cancelled`` instead; two workers racing for one run are ordered by the row lock the
``UPDATE`` takes, and the second sees it ``in_progress``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from shipyard.db import Database
from shipyard.deployments.logs import NOTIFY_CHANNEL
from shipyard.deployments.models import FINAL_DEPLOYMENT_STATUSES

logger = logging.getLogger(__name__)

# Statuses a claim leaves alone: finished runs, runs another claim already took, and runs still
# waiting for their approvals (their job is queued only once approved; this is the backstop).
_NOT_CLAIMABLE = (*FINAL_DEPLOYMENT_STATUSES, "in_progress", "pending_approval")

# psycopg's placeholders: the statement runs on the claims' own connection (below).
_CLAIM_SQL = """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(tenants)s AS uuid[]),
                             CAST(%(workers)s AS text[])) AS w(id, tenant_id, worker_id)
    ),
    cancelled AS (
        UPDATE deployments AS d
           SET status = 'cancelled', completed_at = %(now)s
          FROM wanted
         WHERE d.id = wanted.id AND d.tenant_id = wanted.tenant_id
           AND d.cancel_requested_at IS NOT NULL
           AND d.status <> ALL(CAST(%(not_claimable)s AS text[]))
        RETURNING d.id, d.status
    ),
    claimed AS (
        UPDATE deployments AS d
           SET status = 'in_progress', started_at = COALESCE(d.started_at, %(now)s),
               worker_id = wanted.worker_id, heartbeat_at = %(now)s
          FROM wanted
         WHERE d.id = wanted.id AND d.tenant_id = wanted.tenant_id
           AND d.cancel_requested_at IS NULL
           AND (d.status <> ALL(CAST(%(not_claimable)s AS text[]))
                -- This very job's claim, sent again after a lost connection: still its own.
                OR (d.status = 'in_progress' AND d.worker_id = wanted.worker_id))
        RETURNING d.id, d.status
    ),
    changed AS (SELECT * FROM cancelled UNION ALL SELECT * FROM claimed)
    SELECT id, status, pg_notify(%(channel)s, CAST(id AS text)) FROM changed
"""


# How long a batch gathers claims during a burst (see ClaimBatcher._write_while_waiting).
BURST_GATHER_SECONDS = 0.02


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"
    # Cancelled before it started: ended ``cancelled`` by the claim, nothing to run.
    CANCELLED = "cancelled"
    # Finished, or taken by another claim (a duplicate delivery): not this run's to do.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class _Wanted:
    deployment_id: UUID
    tenant_id: UUID
    worker_id: str
    future: asyncio.Future[ClaimOutcome]


class ClaimBatcher:
    """One worker's claims, written together (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[_Wanted] = []
        self._writer: asyncio.Task[None] | None = None
        # The sizes of the batches written (for tests and the benchmark's notes).
        self.batches: list[int] = []

    async def claim(self, *, deployment_id: UUID, tenant_id: UUID, worker_id: str) -> ClaimOutcome:
        future: asyncio.Future[ClaimOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Wanted(deployment_id, tenant_id, worker_id, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_waiting())
        return await future

    async def _write_while_waiting(self) -> None:
        # Bounded: each pass takes every waiting claim, and claims come from a bounded
        # number of concurrent jobs.
        gather = 0.0
        while self._waiting:
            # A lone claim goes after one turn of the event loop (the claims of jobs fetched
            # together join it). Once a burst is on (claims arrived while one batch was written),
            # each next batch gathers for a moment: every statement costs the worker's one
            # thread as much CPU as a job fetch, and fewer, larger batches leave that thread to
            # the fetches.
            await asyncio.sleep(gather)
            gather = BURST_GATHER_SECONDS
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await self._write(batch)
            except BaseException as exc:
                for wanted in batch:
                    if not wanted.future.done():
                        wanted.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for wanted in batch:
                if not wanted.future.done():
                    wanted.future.set_result(
                        outcomes.get(wanted.deployment_id, ClaimOutcome.SKIPPED)
                    )

    async def _write(self, batch: list[_Wanted]) -> dict[UUID, ClaimOutcome]:
        # The last claim of a run wins within one batch (a duplicate delivery in the same batch
        # is skipped by the caller that comes second).
        unique: dict[UUID, _Wanted] = {}
        for wanted in batch:
            unique.setdefault(wanted.deployment_id, wanted)
        self.batches.append(len(unique))
        # Cross-tenant (the owner's login): one worker claims runs of many tenants; each row is
        # matched on its tenant as well as its id. One statement in autocommit on a connection
        # of its own: not behind log writes, and one round trip per batch.
        rows = await self._db.claims.fetch(
            _CLAIM_SQL,
            {
                "ids": [w.deployment_id for w in unique.values()],
                "tenants": [w.tenant_id for w in unique.values()],
                "workers": [w.worker_id for w in unique.values()],
                "now": datetime.now(UTC),
                "not_claimable": list(_NOT_CLAIMABLE),
                "channel": NOTIFY_CHANNEL,
            },
            # A worker id names one job delivery, so a claim sent twice claims once.
            idempotent=True,
        )
        outcomes = {
            run: ClaimOutcome.CLAIMED if status == "in_progress" else ClaimOutcome.CANCELLED
            for run, status, _ in rows
        }
        # A run asked for twice in one batch is claimed for the first asker only.
        for wanted in batch:
            if unique[wanted.deployment_id] is not wanted and not wanted.future.done():
                wanted.future.set_result(ClaimOutcome.SKIPPED)
        return outcomes
