"""The per-request path of authenticated GETs, made cheaper for issue 18 (core queries, BEGIN
and the scope in one round trip): the same answers, the same refusals, the same scope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select, text, update

from shipyard.accounts.models import ApiToken, User
from shipyard.db import APP_ROLE, Database, Scope, _begin_with_scope, set_scope
from shipyard.deployments.models import Deployment, DeploymentLog
from tests.support.api import Account


async def _last_used(db: Database, account: Account) -> datetime | None:
    async with db.session(system=True) as session:
        return await session.scalar(
            select(ApiToken.last_used_at).where(ApiToken.profile_id == UUID(account.user_id))
        )


async def _set_last_used(db: Database, account: Account, when: datetime | None) -> None:
    async with db.session(system=True) as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.profile_id == UUID(account.user_id))
            .values(last_used_at=when)
        )


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    await _set_last_used(db, admin, None)
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200
    first = await _last_used(db, admin)
    assert first is not None
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200
    assert await _last_used(db, admin) == first
    long_ago = datetime.now(UTC) - timedelta(minutes=2)
    await _set_last_used(db, admin, long_ago)
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200
    latest = await _last_used(db, admin)
    assert latest is not None and latest > long_ago + timedelta(minutes=1)


async def test_a_disabled_account_is_refused_at_once(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    assert (await client.get("/api/v1/deployments", headers=admin.headers)).status_code == 200
    async with db.session(system=True) as session:
        await session.execute(
            update(User).where(User.id == UUID(admin.user_id)).values(is_disabled=True)
        )
    refused = await client.get("/api/v1/deployments", headers=admin.headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "account_disabled"


async def _scope_seen(db: Database, tenant: UUID, isolation: str | None = None) -> tuple[str, ...]:
    async with db.sessionmaker() as session:
        set_scope(session, Scope(tenant_id=tenant, user_id=tenant))
        async with session.begin():
            if isolation is not None:  # the first use of the transaction's connection
                await session.connection(execution_options={"isolation_level": isolation})
            row = (
                await session.execute(
                    text(
                        "SELECT current_user, current_setting('shipyard.tenant_id'), "
                        "current_setting('shipyard.user_id'), "
                        "current_setting('transaction_isolation')"
                    )
                )
            ).one()
    return tuple(str(value) for value in row)


async def test_the_scope_binds_with_or_without_an_isolation_level(db: Database) -> None:
    tenant = uuid4()
    plain = _scope_seen(db, tenant)
    assert await plain == (APP_ROLE, str(tenant), str(tenant), "read committed")
    # An isolation level makes psycopg's own BEGIN necessary: the scope is still applied.
    assert await _scope_seen(db, tenant, "REPEATABLE READ") == (
        APP_ROLE,
        str(tenant),
        str(tenant),
        "repeatable read",
    )
    assert await _scope_seen(db, tenant) == (APP_ROLE, str(tenant), str(tenant), "read committed")
    async with db.session(system=True) as session:
        system = (
            await session.execute(text("SELECT current_setting('shipyard.tenant_id')"))
        ).scalar_one()
    assert system == ""


def test_scope_ids_are_parsed_before_they_reach_the_sql() -> None:
    tenant = uuid4()
    assert f"'{tenant}'" in _begin_with_scope(Scope(tenant_id=tenant))
    with pytest.raises(ValueError):
        _begin_with_scope(Scope(tenant_id="x', true); DROP TABLE users; --"))  # type: ignore[arg-type]


async def test_the_list_shows_each_deployment_as_the_single_read_does(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    host_ids, script_ids = [uuid4(), uuid4()], [uuid4()]
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        session.add_all(
            [
                Deployment(
                    name="with everything",
                    status="success",
                    host_ids=host_ids,
                    script_ids=script_ids,
                    environment={"PLAIN": "1"},
                    secret_environment=json.dumps({"B_SECRET": "x", "A_SECRET": "y"}),
                    launched_by={"kind": "user", "id": admin.user_id, "name": admin.email},
                    parameters={"region": "eu", "count": 2},
                    target={"host_ids": [str(host_ids[0])]},
                    script_arguments={"deploy.sh": ["--fast"]},
                    options={"timeout_seconds": 60},
                    ref="main",
                    commit_sha="a" * 40,
                ),
                Deployment(name="bare", status="pending"),
            ]
        )
    listed = await client.get("/api/v1/deployments?limit=1", headers=admin.headers)
    assert listed.status_code == 200
    page = listed.json()
    assert page["next_cursor"] is not None
    rest = await client.get(
        "/api/v1/deployments", params={"cursor": page["next_cursor"]}, headers=admin.headers
    )
    items = page["items"] + rest.json()["items"]
    assert rest.json()["next_cursor"] is None
    assert {item["name"] for item in items} == {"with everything", "bare"}
    for item in items:
        single = await client.get(f"/api/v1/deployments/{item['id']}", headers=admin.headers)
        assert single.json() == item
    full = next(item for item in items if item["name"] == "with everything")
    assert full["secret_environment_names"] == ["A_SECRET", "B_SECRET"]
    assert full["host_ids"] == [str(host) for host in host_ids]
    assert full["launched_by"] == {"kind": "user", "id": admin.user_id, "name": admin.email}
    assert "secret_environment" not in full


async def test_log_pages_and_their_404s(
    client: httpx.AsyncClient, db: Database, admin: Account, other_admin: Account
) -> None:
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        run = Deployment(name="logged", status="success")
        quiet = Deployment(name="quiet", status="success")
        session.add_all([run, quiet])
        await session.flush()
        for index in range(3):
            session.add(DeploymentLog(deployment_id=run.id, level="INFO", message=f"line {index}"))
        run_id, quiet_id = run.id, quiet.id
    path = f"/api/v1/deployments/{run_id}/logs"
    first = (await client.get(path, params={"limit": 2}, headers=admin.headers)).json()
    assert [line["message"] for line in first["items"]] == ["line 0", "line 1"]
    assert set(first["items"][0]) == {
        "id",
        "seq",
        "deployment_id",
        "level",
        "message",
        "timestamp",
        "host_id",
        "deployment_script_id",
        "stream",
    }
    assert first["next_cursor"] == str(first["items"][1]["seq"])
    rest = await client.get(
        path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin.headers
    )
    assert [line["message"] for line in rest.json()["items"]] == ["line 2"]
    assert rest.json()["next_cursor"] is None
    past_the_end = await client.get(
        path, params={"cursor": rest.json()["items"][0]["seq"]}, headers=admin.headers
    )
    assert past_the_end.status_code == 200 and past_the_end.json()["items"] == []
    empty = await client.get(f"/api/v1/deployments/{quiet_id}/logs", headers=admin.headers)
    assert empty.status_code == 200 and empty.json() == {"items": [], "next_cursor": None}
    for account, deployment_id in ((other_admin, run_id), (admin, uuid4())):
        missing = await client.get(
            f"/api/v1/deployments/{deployment_id}/logs", headers=account.headers
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


async def test_search_finds_names_in_the_callers_tenant_only(
    client: httpx.AsyncClient, db: Database, admin: Account, other_admin: Account
) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    names = ["Hotfix-Quasar 1", "release 100%", "release_2", "nightly", "hotfix-quasar 2"]
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        session.add_all(
            Deployment(
                name=name,
                status="failed" if "2" in name else "success",
                created_at=base + timedelta(seconds=index),
            )
            for index, name in enumerate(names)
        )
    async with db.session(tenant_id=UUID(other_admin.tenant_id)) as session:
        session.add(Deployment(name="hotfix-quasar elsewhere", status="success"))

    async def found(account: Account, search: str, **params: str) -> list[str]:
        answer = await client.get(
            "/api/v1/deployments", params={"search": search, **params}, headers=account.headers
        )
        assert answer.status_code == 200, answer.text
        return [item["name"] for item in answer.json()["items"]]

    assert await found(admin, "HOTFIX-quasar") == ["hotfix-quasar 2", "Hotfix-Quasar 1"]
    assert await found(other_admin, "hotfix-quasar") == ["hotfix-quasar elsewhere"]
    # % and _ are the characters themselves, not wildcards.
    assert await found(admin, "%") == ["release 100%"]
    assert await found(admin, "_") == ["release_2"]
    assert await found(admin, "quasar", status="failed") == ["hotfix-quasar 2"]
    assert await found(admin, "no such run") == []
    first = await client.get(
        "/api/v1/deployments", params={"search": "quasar", "limit": 1}, headers=admin.headers
    )
    older = await client.get(
        "/api/v1/deployments",
        params={"search": "quasar", "cursor": first.json()["next_cursor"]},
        headers=admin.headers,
    )
    assert [item["name"] for item in older.json()["items"]] == ["Hotfix-Quasar 1"]
    # The lookup reads the tenant from the transaction's scope: none, no rows, even for a
    # pattern every name matches.
    for scope in (None, UUID(other_admin.tenant_id)):
        async with db.session(tenant_id=scope) as session:
            ids = (
                await session.execute(
                    text(
                        "SELECT deployment_ids_named_like('%Quasar 1%', 10,"
                        " NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
                    )
                )
            ).all()
        assert ids == []


async def test_search_pages_through_many_matches_with_the_other_filters(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    """A word most names contain, with a filter only old runs match: the lookup returns one
    page of the filtered matches in the list's order, not the newest matches of any kind."""
    base = datetime.now(UTC) - timedelta(hours=2)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        session.add_all(
            Deployment(
                name=f"release {index}",
                status="failed" if index < 3 else "success",
                created_at=base + timedelta(seconds=index),
            )
            for index in range(60)
        )

    async def page(**params: str) -> tuple[list[str], str | None]:
        answer = await client.get(
            "/api/v1/deployments", params={"search": "release", **params}, headers=admin.headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return [item["name"] for item in body["items"]], body["next_cursor"]

    assert await page(status="failed") == (["release 2", "release 1", "release 0"], None)
    first, cursor = await page(status="failed", limit="2")
    assert first == ["release 2", "release 1"]
    assert cursor is not None
    assert await page(status="failed", cursor=cursor) == (["release 0"], None)
    newest, cursor = await page(limit="50")
    assert newest == [f"release {index}" for index in range(59, 9, -1)]
    assert cursor is not None
    assert await page(cursor=cursor) == ([f"release {index}" for index in range(9, -1, -1)], None)
