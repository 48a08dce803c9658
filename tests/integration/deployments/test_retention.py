"""Log retention: pruning keeps what the policy promises and never touches a run that is not
finished; the policy's API, web page and CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select, text

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.deployments.retention import RetentionDefaults, prune_logs
from shipyard.runtime import Runtime, build_runtime, close_runtime
from tests.support.api import Account, add_member, error_fields
from tests.support.apps import app_for
from tests.support.browser_http import browser_client, csrf_token
from tests.support.cli_process import run_shipyard
from tests.support.live_server import serve

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
TAIL = "last lines of deploy.sh\n"
# No installation-wide policy (SHIPYARD_LOG_RETENTION_DAYS/_LINES unset): each tenant's own.
KEEP = RetentionDefaults()


async def seed_run(
    db: Database, tenant_id: str, *, status: str, days_ago: float, lines: int
) -> UUID:
    """A run (created, and ended if finished, ``days_ago``), one script row, ``lines`` lines."""
    at = NOW - timedelta(days=days_ago)
    finished = status in ("success", "failed", "partial", "cancelled", "interrupted")
    async with db.session(system=True) as session:
        deployment = Deployment(
            name=f"{status} run",
            tenant_id=UUID(tenant_id),
            status=status,
            created_at=at,
            started_at=at if status != "pending" else None,
            completed_at=at if finished else None,
        )
        session.add(deployment)
        await session.flush()
        script = DeploymentScript(
            deployment_id=deployment.id,
            tenant_id=UUID(tenant_id),
            name="deploy.sh",
            status="success" if finished else "running",
            output=TAIL,
            exit_code=0 if finished else None,
        )
        session.add(script)
        await session.flush()
        await session.execute(
            text(
                "INSERT INTO deployment_logs (deployment_id, tenant_id, level, message, timestamp,"
                " deployment_script_id, stream)"
                " SELECT :deployment_id, :tenant_id, 'INFO', 'line ' || g, :at, :script_id,"
                " 'stdout' FROM generate_series(1, :lines) g ORDER BY g"
            ),
            {
                "deployment_id": deployment.id,
                "tenant_id": UUID(tenant_id),
                "at": at,
                "script_id": script.id,
                "lines": lines,
            },
        )
        return deployment.id


async def messages(db: Database, deployment_id: UUID) -> list[str]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(DeploymentLog.message)
            .where(DeploymentLog.deployment_id == deployment_id)
            .order_by(DeploymentLog.seq)
        )
        return list(rows)


async def run_state(db: Database, deployment_id: UUID) -> tuple[datetime | None, str | None, int]:
    """(log_pruned_at, the script row's output tail, how many script rows)."""
    async with db.session(system=True) as session:
        pruned_at = await session.scalar(
            select(Deployment.log_pruned_at).where(Deployment.id == deployment_id)
        )
        tails = list(
            await session.scalars(
                select(DeploymentScript.output).where(
                    DeploymentScript.deployment_id == deployment_id
                )
            )
        )
        return pruned_at, tails[0] if tails else None, len(tails)


async def set_policy(
    client: httpx.AsyncClient, account: Account, *, days: int | None, lines: int | None
) -> httpx.Response:
    return await client.put(
        "/api/v1/logs/retention", headers=account.headers, json={"days": days, "lines": lines}
    )


async def test_days_prune_finished_runs_only_in_batches(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, runtime: Runtime
) -> None:
    db = runtime.db
    assert (await set_policy(client, admin, days=30, lines=None)).status_code == 200
    old = await seed_run(db, admin.tenant_id, status="failed", days_ago=40, lines=25)
    recent = await seed_run(db, admin.tenant_id, status="success", days_ago=10, lines=5)
    # Older than the policy but not finished: never touched, whatever their age.
    untouchable = {
        status: await seed_run(db, admin.tenant_id, status=status, days_ago=60, lines=6)
        for status in ("in_progress", "pending", "scheduled", "pending_approval")
    }
    # Another tenant keeps everything.
    elsewhere = await seed_run(db, other_admin.tenant_id, status="success", days_ago=400, lines=3)

    report = await prune_logs(db=db, now=NOW, defaults=KEEP, batch=7)

    assert (report.runs, report.lines, report.batches) == (1, 25, 4)
    assert await messages(db, old) == []
    pruned_at, tail, scripts = await run_state(db, old)
    assert pruned_at == NOW and tail == TAIL and scripts == 1
    assert len(await messages(db, recent)) == 5
    assert (await run_state(db, recent))[0] is None
    for deployment_id in (*untouchable.values(), elsewhere):
        assert len(await messages(db, deployment_id)) in (6, 3)
        assert (await run_state(db, deployment_id))[0] is None

    # The API and the page say so; the run, its results and its tails are still there.
    read = await client.get(f"/api/v1/deployments/{old}", headers=admin.headers)
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "failed"
    assert datetime.fromisoformat(read.json()["log_pruned_at"]) == NOW
    scripts_read = await client.get(f"/api/v1/deployments/{old}/scripts", headers=admin.headers)
    assert scripts_read.status_code == 200, scripts_read.text
    assert [(row["output"], row["exit_code"]) for row in scripts_read.json()] == [(TAIL, 0)]
    async with browser_client(client, admin) as http:
        page = await http.get(f"/deployments/{old}")
        assert page.status_code == 200, page.text
        assert 'id="log-pruned"' in page.text and "by the retention policy" in page.text
        kept = await http.get(f"/deployments/{recent}")
        assert 'id="log-pruned"' not in kept.text

    # A second pass finds nothing left to do.
    again = await prune_logs(db=db, now=NOW, defaults=KEEP, batch=7)
    assert (again.runs, again.lines) == (0, 0)


async def test_lines_keep_the_newest_n_of_finished_runs(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime
) -> None:
    db = runtime.db
    assert (await set_policy(client, admin, days=None, lines=10)).status_code == 200
    long_run = await seed_run(db, admin.tenant_id, status="success", days_ago=1, lines=25)
    short_run = await seed_run(db, admin.tenant_id, status="partial", days_ago=1, lines=5)
    running = await seed_run(db, admin.tenant_id, status="in_progress", days_ago=1, lines=25)

    report = await prune_logs(db=db, now=NOW, defaults=KEEP, batch=4)

    assert (report.runs, report.lines) == (1, 15)
    assert await messages(db, long_run) == [f"line {n}" for n in range(16, 26)]
    assert (await run_state(db, long_run))[:2] == (NOW, TAIL)
    assert len(await messages(db, short_run)) == 5
    assert (await run_state(db, short_run))[0] is None
    assert len(await messages(db, running)) == 25
    assert (await run_state(db, running))[0] is None
    assert (await prune_logs(db=db, now=NOW, defaults=KEEP, batch=4)).lines == 0

    # Both limits: days take the whole log of an old run, lines trim the others.
    assert (await set_policy(client, admin, days=7, lines=3)).status_code == 200
    old_run = await seed_run(db, admin.tenant_id, status="cancelled", days_ago=8, lines=4)
    both = await prune_logs(db=db, now=NOW, defaults=KEEP)
    assert await messages(db, old_run) == []
    assert await messages(db, long_run) == ["line 23", "line 24", "line 25"]
    assert await messages(db, short_run) == ["line 3", "line 4", "line 5"]
    assert len(await messages(db, running)) == 25
    assert both.lines == 4 + 7 + 2


async def test_the_installations_policy_applies_where_a_tenant_sets_none(
    db: Database, settings: Settings, admin: Account, other_admin: Account
) -> None:
    installation = settings.model_copy(update={"log_retention_days": 30, "log_retention_lines": 10})
    runtime = build_runtime(installation, db=db)
    try:
        transport = httpx.ASGITransport(app=app_for(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            # Acme keeps its logs a year (its own days) and sets no line limit.
            assert (await set_policy(http, admin, days=365, lines=None)).status_code == 200
            acme = (await http.get("/api/v1/logs/retention", headers=admin.headers)).json()
            globex = (await http.get("/api/v1/logs/retention", headers=other_admin.headers)).json()
    finally:
        await close_runtime(runtime)
    assert {key: acme[key] for key in acme if key != "size"} == {
        "days": 365,
        "lines": None,
        "default_days": 30,
        "default_lines": 10,
        "effective_days": 365,
        "effective_lines": 10,
    }
    assert (globex["days"], globex["effective_days"], globex["effective_lines"]) == (None, 30, 10)

    acme_old = await seed_run(db, admin.tenant_id, status="success", days_ago=40, lines=25)
    globex_old = await seed_run(db, other_admin.tenant_id, status="failed", days_ago=40, lines=5)
    globex_new = await seed_run(db, other_admin.tenant_id, status="success", days_ago=1, lines=25)
    globex_running = await seed_run(
        db, other_admin.tenant_id, status="in_progress", days_ago=40, lines=25
    )

    report = await prune_logs(db=db, now=NOW, defaults=RetentionDefaults.of(installation))

    assert await messages(db, globex_old) == []
    assert await messages(db, globex_new) == [f"line {n}" for n in range(16, 26)]
    assert await messages(db, acme_old) == [f"line {n}" for n in range(16, 26)]
    assert len(await messages(db, globex_running)) == 25
    assert (report.runs, report.lines) == (3, 5 + 15 + 15)
    # Without the installation's policy, nothing more goes.
    assert (await prune_logs(db=db, now=NOW, defaults=KEEP)).lines == 0


async def test_policy_api_validates_audits_and_reports_the_size(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime
) -> None:
    first = await client.get("/api/v1/logs/retention", headers=admin.headers)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "days": None,
        "lines": None,
        "default_days": None,
        "default_lines": None,
        "effective_days": None,
        "effective_lines": None,
        "size": {"rows": 0, "bytes": 0},
    }

    await seed_run(runtime.db, admin.tenant_id, status="success", days_ago=1, lines=120)
    saved = await set_policy(client, admin, days=90, lines=50_000)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert (body["days"], body["lines"], body["size"]["rows"]) == (90, 50_000, 120)
    assert body["size"]["bytes"] > 120 * 40
    assert (await client.get("/api/v1/logs/retention", headers=admin.headers)).json() == body

    for field, bad in (("days", -1), ("days", 0), ("lines", 0), ("days", 10**9), ("lines", 10**12)):
        wrong = await client.put("/api/v1/logs/retention", headers=admin.headers, json={field: bad})
        assert wrong.status_code == 422, (field, bad, wrong.text)
        assert error_fields(wrong) == [field]
    unknown = await client.put("/api/v1/logs/retention", headers=admin.headers, json={"weeks": 2})
    assert unknown.status_code == 422 and error_fields(unknown) == ["weeks"]

    # Absent or null: keep.
    cleared = await client.put("/api/v1/logs/retention", headers=admin.headers, json={})
    assert (cleared.json()["days"], cleared.json()["lines"]) == (None, None)

    entries = await client.get(
        "/api/v1/audit",
        headers=admin.headers,
        params={"action": "log_retention.update", "outcome": "success"},
    )
    assert entries.status_code == 200
    assert len(entries.json()["items"]) == 2
    assert entries.json()["items"][-1]["details"] == {"days": 90, "lines": 50_000}

    developer = await add_member(client, admin, "developer")
    assert (
        await client.get("/api/v1/logs/retention", headers=developer.headers)
    ).status_code == 403
    assert (await set_policy(client, developer, days=1, lines=None)).status_code == 403


async def test_logs_tab_in_settings(client: httpx.AsyncClient, admin: Account) -> None:
    developer = await add_member(client, admin, "developer")
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/logs")
        page = await http.get("/settings/logs")
        assert 'id="logs-link"' in page.text and 'id="log-size"' in page.text
        assert 'data-rows="0"' in page.text
        assert "In force: logs kept forever; every line kept." in page.text
        bad = await http.post(
            "/settings/logs", data={"csrf_token": token, "days": "-3", "lines": "ten"}
        )
        assert bad.status_code == 422
        assert 'id="e-days"' in bad.text and 'id="e-lines"' in bad.text
        assert 'value="-3"' in bad.text
        saved = await http.post(
            "/settings/logs", data={"csrf_token": token, "days": "14", "lines": ""}
        )
        assert saved.status_code == 303
        again = await http.get(saved.headers["location"])
        assert 'value="14"' in again.text and "was saved" in again.text
        assert "In force: logs deleted 14 days after a run ended; every line kept." in again.text
    policy = await client.get("/api/v1/logs/retention", headers=admin.headers)
    assert (policy.json()["days"], policy.json()["lines"]) == (14, None)
    async with browser_client(client, developer) as http:
        assert (await http.get("/settings/logs")).status_code == 403
        assert 'id="logs-link"' not in (await http.get("/settings")).text


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_cli_shows_and_sets_the_policy(
    client: httpx.AsyncClient, admin: Account, base_url: str
) -> None:
    async def shipyard(*args: str) -> tuple[int, str]:
        return await run_shipyard(base_url, admin.token, *args, label="shipyard-logs")

    code, output = await shipyard("logs", "retention", "show")
    assert code == 0, output
    assert "days:  keep" in output and "lines: keep" in output and "0 lines" in output
    code, output = await shipyard("logs", "retention", "set", "--days", "30", "--lines", "1000")
    assert code == 0, output
    assert "days:  30" in output and "lines: 1000" in output
    code, output = await shipyard("logs", "retention", "set", "--days", "0")
    assert code == 1 and "days" in output
    code, output = await shipyard("logs", "retention", "set")
    assert code == 2 and "--days" in output  # usage: exit 2
    code, output = await shipyard("logs", "retention", "set", "--keep")
    assert code == 0 and "days:  keep" in output
    policy = await client.get("/api/v1/logs/retention", headers=admin.headers)
    assert (policy.json()["days"], policy.json()["lines"]) == (None, None)


async def test_size_counts_only_the_tenants_lines(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, runtime: Runtime
) -> None:
    await seed_run(runtime.db, admin.tenant_id, status="success", days_ago=1, lines=30)
    await seed_run(runtime.db, other_admin.tenant_id, status="success", days_ago=1, lines=70)
    mine = (await client.get("/api/v1/logs/retention", headers=admin.headers)).json()
    theirs = (await client.get("/api/v1/logs/retention", headers=other_admin.headers)).json()
    assert (mine["size"]["rows"], theirs["size"]["rows"]) == (30, 70)
    async with runtime.db.session(system=True) as session:
        total = await session.scalar(select(func.count()).select_from(DeploymentLog))
    assert total == 100
