"""Batched writes of ``deployment_scripts`` rows: one transaction for many hosts' progress."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from sqlalchemy import update

from shipyard.db import Database
from shipyard.deployments.models import DeploymentScript

logger = logging.getLogger(__name__)


class ScriptRowWriter:
    """Collects row changes from every host task and writes them every ``interval`` seconds.

    Changes to one row merge in order (a later value wins), so a row that went ``running`` and
    then ``success`` between two flushes is written once, in its final state. A fan-out over
    hundreds of hosts then costs a few transactions instead of several per host.
    """

    def __init__(self, db: Database, *, tenant_id: UUID, interval: float = 0.1) -> None:
        self._db = db
        self._tenant_id = tenant_id
        self._interval = interval
        self._pending: dict[UUID, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._wake = asyncio.Event()
        self._written = asyncio.Condition()
        self._generation = 0

    async def __aenter__(self) -> ScriptRowWriter:
        self._task = asyncio.create_task(self._run(), name="script-row-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    def update(self, row_id: UUID, **values: Any) -> None:
        self._pending.setdefault(row_id, {}).update(values)

    async def commit(self, row_id: UUID, **values: Any) -> None:
        """Record a change and wait until it is written (results must outlive a crash).

        Changes from other hosts made meanwhile go into the same transaction.
        """
        self.update(row_id, **values)
        async with self._written:
            target = self._generation + 1
            self._wake.set()
            await self._written.wait_for(lambda: self._generation >= target)

    async def flush(self) -> None:
        if not self._pending:
            return
        changes, self._pending = self._pending, {}
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for row_id, values in changes.items():
            groups.setdefault(frozenset(values), []).append({"id": row_id, **values})
        try:
            async with self._db.session(tenant_id=self._tenant_id) as session:
                for rows in groups.values():
                    await session.execute(update(DeploymentScript), rows)
        except BaseException:
            # Put the changes back (newer ones win) so the next flush writes them.
            for row_id, values in changes.items():
                self._pending[row_id] = {**values, **self._pending.get(row_id, {})}
            raise

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("writing script results failed; retrying")
                await asyncio.sleep(self._interval)
                continue
            async with self._written:
                self._generation += 1
                self._written.notify_all()
