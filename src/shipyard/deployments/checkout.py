"""Check the deployment's repository out at its ref and find the chosen scripts in it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

import httpx
from sqlalchemy import update

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.logs import LogWriter
from shipyard.deployments.models import Deployment
from shipyard.errors import ShipyardError
from shipyard.git.clone import shared_checkout


class CheckoutFailed(ShipyardError):
    code = "checkout_failed"


@dataclass(frozen=True)
class PreparedScripts:
    commit_sha: str
    ref: str
    # script id -> (repository-relative path, local file)
    files: dict[UUID, tuple[str, Path]]


def requested_at(deployment: Deployment) -> datetime | None:
    """When the run asked for its ref: its due time, or when it was created."""
    moments = [m for m in (deployment.created_at, deployment.scheduled_time) if m is not None]
    return max(moments) if moments else None


@contextlib.asynccontextmanager
async def prepared_scripts(
    *,
    db: Database,
    settings: Settings,
    deployment: Deployment,
    logs: LogWriter,
    http: httpx.AsyncClient,
) -> AsyncIterator[PreparedScripts]:
    """Check out the repository, record the commit SHA, map script ids to files; clean up after.

    A deployment whose commit was resolved at launch (a template launch, a roll back; or a run
    resumed after its first checkout) checks out exactly that commit: a branch that moved
    since does not change what runs. The working tree is shared with the worker's other runs of
    the same commit (git.clone.shared_checkout): runs that start together make one fetch and
    one worktree, removed when the last of them ends. A branch run resolves the branch at or
    after the moment it was due, and records the commit it ran.
    """
    if deployment.repository_id is None:
        raise CheckoutFailed("the deployment's repository was deleted")
    pinned = deployment.commit_sha
    ref_label = deployment.ref or "the default branch"
    if pinned:
        ref_label = f"{ref_label} at commit {pinned}"
    await logs.write("INFO", f"Checking out {ref_label}.")
    try:
        tree = await shared_checkout(
            db=db,
            settings=settings,
            tenant_id=deployment.tenant_id,
            repository_id=deployment.repository_id,
            ref=pinned or deployment.ref,
            http=http,
            not_before=requested_at(deployment),
        )
    except ShipyardError as exc:
        raise CheckoutFailed(f"checkout of {ref_label} failed: {exc.message}") from exc
    try:
        await logs.write("INFO", f"Checked out commit {tree.commit_sha}.")
        async with db.session(tenant_id=deployment.tenant_id) as session:
            await session.execute(
                update(Deployment)
                .where(Deployment.id == deployment.id)
                .values(commit_sha=tree.commit_sha)
            )
        catalogue = {script.id: script for script in await tree.scripts(deployment.repository_id)}
        missing = [
            str(script_id) for script_id in deployment.script_ids if script_id not in catalogue
        ]
        if missing:
            raise CheckoutFailed(
                f"script(s) {', '.join(missing)} are not in the repository at commit {tree.commit_sha[:12]}"
            )
        files = {
            script_id: (catalogue[script_id].path, tree.path / catalogue[script_id].path)
            for script_id in deployment.script_ids
        }
        # SHIPYARD_REF stays the branch or tag the user chose, even when a commit was pinned.
        ref = deployment.ref or ("" if pinned else tree.ref or "")
        yield PreparedScripts(commit_sha=tree.commit_sha, ref=ref, files=files)
    finally:
        await tree.remove()
