"""The log read API by line number: ranges by offset, filters, search, landmarks (issue 17)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import httpx
import pytest
from sqlalchemy import insert, select, update

from shipyard.accounts.models import Tenant
from shipyard.db import Database
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.deployments.retention import RetentionDefaults, prune_logs
from shipyard.hosts.models import Host
from tests.support.api import Account

Numbering = Literal["writer", "trigger", "none"]


@dataclass
class SeededLog:
    deployment_id: UUID
    hosts: list[UUID]
    scripts: list[
        UUID
    ]  # deployment_scripts rows: [0] succeeded on hosts[0], [1] failed on hosts[1]


@dataclass
class Line:
    message: str
    host: int | None = 0
    level: str = "INFO"
    stream: str | None = "stdout"
    script: int | None = None  # index into the seeded script rows; default: the host's


async def seed_log(
    db: Database,
    account: Account,
    lines: Sequence[Line],
    *,
    status: str = "failed",
    name: str = "Big run",
    host_prefix: str = "web",
    numbering: Numbering = "writer",
) -> SeededLog:
    """A run on two hosts (one script each; the second failed) with ``lines`` in order.

    ``numbering``: "writer" numbers the lines as the log writer does (and sets the run's
    ``log_lines``), "trigger" leaves it to the database's trigger (as for Shipyard's own events),
    "none" makes a run logged before migration 0016 (no numbers: read by counting).
    """
    now = datetime.now(UTC)
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        hosts = [
            Host(name=f"{host_prefix}-{n}", ip="127.0.0.1", port=22, user="deploy", status="online")
            for n in (1, 2)
        ]
        session.add_all(hosts)
        await session.flush()
        deployment = Deployment(
            name=name,
            status=status,
            host_ids=[host.id for host in hosts],
            started_at=now - timedelta(seconds=30),
            completed_at=None if status == "in_progress" else now,
            options={"parallelism": 2},
            created_by=UUID(account.user_id),
            log_lines=len(lines) if numbering == "writer" else 0,
        )
        session.add(deployment)
        await session.flush()
        if numbering == "none":
            # Explicitly NULL (the ORM leaves a None out of the INSERT: the default 0 applies).
            await session.execute(
                update(Deployment).where(Deployment.id == deployment.id).values(log_lines=None)
            )
        scripts = [
            DeploymentScript(
                deployment_id=deployment.id,
                host_id=hosts[0].id,
                name="deploy.sh",
                path="deploy.sh",
                status="success",
                exit_code=0,
                completed_at=now - timedelta(seconds=5),
            ),
            DeploymentScript(
                deployment_id=deployment.id,
                host_id=hosts[1].id,
                name="deploy.sh",
                path="deploy.sh",
                status="failed",
                exit_code=3,
                completed_at=now - timedelta(seconds=2),
            ),
        ]
        session.add_all(scripts)
        await session.flush()
        rows: list[dict[str, Any]] = []
        for index, line in enumerate(lines):
            script = line.script if line.script is not None else line.host
            rows.append(
                {
                    "deployment_id": deployment.id,
                    "host_id": hosts[line.host].id if line.host is not None else None,
                    "deployment_script_id": scripts[script].id if script is not None else None,
                    "level": line.level,
                    "stream": line.stream,
                    "message": line.message,
                    "timestamp": now - timedelta(seconds=20) + timedelta(milliseconds=index),
                    "line_no": index + 1 if numbering == "writer" else None,
                }
            )
        if rows:
            await session.execute(insert(DeploymentLog), rows)
        return SeededLog(
            deployment_id=deployment.id,
            hosts=[host.id for host in hosts],
            scripts=[script.id for script in scripts],
        )


# Every read answers the same whatever numbered the lines (the writer, the trigger) or whether
# the run was logged before 0016 (no numbers: counted).
NUMBERINGS: tuple[Numbering, ...] = ("writer", "trigger", "none")


def _fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["error"]["details"]["errors"]]


def _lines() -> list[Line]:
    lines = [Line("[web-1] running deploy.sh", stream=None)]
    lines += [Line(f"web-1 line {n:03d}") for n in range(1, 101)]
    lines += [Line(f"web-2 line {n:03d}", host=1) for n in range(1, 51)]
    lines += [Line("warning: disk 91% full", host=1, stream="stderr")]
    lines += [Line("[web-2] deploy.sh exited with 3", host=1, level="ERROR", stream=None)]
    lines += [Line("\x1b[31mFAILED\x1b[0m 100%_done", host=None, script=None, stream=None)]
    return lines  # 154 lines


@pytest.mark.parametrize("numbering", NUMBERINGS)
async def test_ranges_by_offset_with_totals_and_line_numbers(
    client: httpx.AsyncClient, admin: Account, db: Database, numbering: Numbering
) -> None:
    run = await seed_log(db, admin, _lines(), numbering=numbering)
    url = f"/api/v1/deployments/{run.deployment_id}/logs"
    first = (await client.get(url, params={"offset": 0, "limit": 10}, headers=admin.headers)).json()
    assert first["total"] == 154 and first["offset"] == 0
    assert [line["line"] for line in first["lines"]] == list(range(1, 11))
    assert first["lines"][0]["message"] == "[web-1] running deploy.sh"
    assert first["lines"][0]["stream"] is None
    assert first["lines"][1]["stream"] == "stdout"
    assert first["lines"][1]["script_id"] == str(run.scripts[0])
    assert first["last_seq"] > first["lines"][-1]["seq"]

    middle = (
        await client.get(url, params={"offset": 100, "limit": 3}, headers=admin.headers)
    ).json()
    assert [line["line"] for line in middle["lines"]] == [101, 102, 103]
    assert [line["message"] for line in middle["lines"]] == [
        "web-1 line 100",
        "web-2 line 001",
        "web-2 line 002",
    ]
    tail = (
        await client.get(url, params={"offset": 150, "limit": 50}, headers=admin.headers)
    ).json()
    assert [line["line"] for line in tail["lines"]] == [151, 152, 153, 154]
    last = (
        await client.get(url, params={"tail": "true", "limit": 4}, headers=admin.headers)
    ).json()
    assert last["offset"] == 150 and last["total"] == 154
    assert [line["line"] for line in last["lines"]] == [151, 152, 153, 154]
    assert last["lines"][-1]["seq"] == last["last_seq"]
    beyond = (
        await client.get(url, params={"offset": 900, "limit": 5}, headers=admin.headers)
    ).json()
    assert beyond["total"] == 154 and beyond["lines"] == []

    # Sequence-number paging (the stream's resume and older clients) still answers its shape.
    paged = (await client.get(url, params={"limit": 100}, headers=admin.headers)).json()
    assert len(paged["items"]) == 100 and paged["next_cursor"]
    rest = (
        await client.get(
            url, params={"limit": 100, "cursor": paged["next_cursor"]}, headers=admin.headers
        )
    ).json()
    assert len(rest["items"]) == 54 and rest["next_cursor"] is None


async def test_filters_number_the_lines_of_their_view(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    run = await seed_log(db, admin, _lines())
    url = f"/api/v1/deployments/{run.deployment_id}/logs"

    async def view(**params: Any) -> dict[str, Any]:
        response = await client.get(url, params={"offset": 0, **params}, headers=admin.headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    web2 = await view(host_id=str(run.hosts[1]), limit=2)
    assert web2["total"] == 52
    assert [(line["line"], line["message"]) for line in web2["lines"]] == [
        (1, "web-2 line 001"),
        (2, "web-2 line 002"),
    ]
    script = await view(script_id=str(run.scripts[0]), limit=500)
    assert script["total"] == 101
    assert (await view(level="ERROR"))["total"] == 1
    stderr = await view(stream="stderr")
    assert [line["message"] for line in stderr["lines"]] == ["warning: disk 91% full"]
    failed = await view(failed_only="true", limit=500)
    assert failed["total"] == 52
    assert {line["script_id"] for line in failed["lines"]} == {str(run.scripts[1])}


@pytest.mark.parametrize("numbering", NUMBERINGS)
async def test_search_plain_and_regex_over_the_whole_log(
    client: httpx.AsyncClient, admin: Account, db: Database, numbering: Numbering
) -> None:
    run = await seed_log(db, admin, _lines(), numbering=numbering)
    url = f"/api/v1/deployments/{run.deployment_id}/logs/search"

    async def search(**params: Any) -> httpx.Response:
        return await client.get(url, params=params, headers=admin.headers)

    plain = (await search(q="LINE 05")).json()
    # web-1 line 050..059 (lines 51-60) and web-2 line 050 (line 151): case-insensitive.
    assert plain == {
        "count": 11,
        "matches": [*range(51, 61), 151],
        "truncated": False,
    }
    # LIKE's wildcards are literal text.
    assert (await search(q="91%")).json()["matches"] == [152]
    assert (await search(q="100%_")).json()["matches"] == [154]
    assert (await search(q="%")).json()["count"] == 2
    regex = (await search(q=r"^web-2 line 0(0[1-3])$", regex="true")).json()
    assert regex["matches"] == [102, 103, 104]
    limited = (await search(q="line", limit=5)).json()
    assert limited["count"] == 150 and limited["matches"] == [2, 3, 4, 5, 6]
    assert limited["truncated"] is True
    # Filters apply, and line numbers are the view's.
    in_view = (await search(q="line 05", host_id=str(run.hosts[1]))).json()
    assert in_view["matches"] == [50]

    invalid = await search(q="(unclosed", regex="true")
    assert invalid.status_code == 422
    assert _fields(invalid) == ["q"]
    # The session is still usable after a refused expression.
    assert (await search(q="FAILED")).json()["matches"] == [154]


@pytest.mark.parametrize("numbering", NUMBERINGS)
async def test_landmarks_point_at_the_first_error_and_failed_script(
    client: httpx.AsyncClient, admin: Account, db: Database, numbering: Numbering
) -> None:
    run = await seed_log(db, admin, _lines(), numbering=numbering)
    url = f"/api/v1/deployments/{run.deployment_id}/logs/landmarks"
    landmarks = (await client.get(url, headers=admin.headers)).json()
    assert landmarks == {
        "first_error_line": 153,
        "first_failed_script": {
            "script_id": str(run.scripts[1]),
            "host_id": str(run.hosts[1]),
            "line": 102,
        },
    }
    only_web1 = (
        await client.get(url, params={"host_id": str(run.hosts[0])}, headers=admin.headers)
    ).json()
    assert only_web1["first_error_line"] is None
    assert only_web1["first_failed_script"]["line"] is None

    quiet = await seed_log(db, admin, [Line("all good")], status="success", host_prefix="ok")
    answer = await client.get(
        f"/api/v1/deployments/{quiet.deployment_id}/logs/landmarks", headers=admin.headers
    )
    assert answer.json()["first_error_line"] is None


async def test_bad_input_names_the_field_and_other_tenants_get_404(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    run = await seed_log(db, admin, _lines())
    base = f"/api/v1/deployments/{run.deployment_id}/logs"
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"offset": -1}, "offset"),
        ({"offset": "ten"}, "offset"),
        ({"offset": 0, "limit": 0}, "limit"),
        ({"offset": 0, "stream": "stdin"}, "stream"),
        ({"offset": 0, "cursor": "5"}, "offset"),
        ({"offset": 0, "host_id": "nope"}, "host_id"),
    ]
    for params, field in cases:
        response = await client.get(base, params=params, headers=admin.headers)
        assert response.status_code == 422, (params, response.text)
        assert field in _fields(response), (params, response.text)
    searches: list[dict[str, str | int]] = [
        {},
        {"q": ""},
        {"q": "(", "regex": "true"},
        {"q": "x", "limit": 0},
    ]
    for params in searches:
        response = await client.get(f"{base}/search", params=params, headers=admin.headers)
        assert response.status_code == 422, (params, response.text)
        assert _fields(response) == ["limit" if "limit" in params else "q"], response.text

    others: list[tuple[str, dict[str, str | int]]] = [
        (base, {"offset": 0}),
        (f"{base}/search", {"q": "line"}),
        (f"{base}/landmarks", {}),
    ]
    for path, query in others:
        response = await client.get(path, params=query, headers=other_admin.headers)
        assert response.status_code == 404, (path, response.text)


async def prune_for_tests(
    db: Database, account: Account, *, lines: int | None, days: int | None
) -> None:
    async with db.session(system=True) as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.id == UUID(account.tenant_id))
            .values(log_retention_lines=lines, log_retention_days=days)
        )
    await prune_logs(
        db=db, now=datetime.now(UTC) + timedelta(days=1), defaults=RetentionDefaults(), batch=7
    )


@pytest.mark.parametrize("numbering", NUMBERINGS)
async def test_a_run_pruned_to_its_last_lines_reads_as_those_lines(
    client: httpx.AsyncClient, admin: Account, db: Database, numbering: Numbering
) -> None:
    lines = [Line(f"line {n:03d}", host=n % 2) for n in range(1, 31)]
    lines[24] = Line("line 025 ERROR here", host=0, level="ERROR", stream=None)
    run = await seed_log(db, admin, lines, numbering=numbering)
    await prune_for_tests(db, admin, lines=10, days=None)
    url = f"/api/v1/deployments/{run.deployment_id}/logs"

    async def get(path: str = "", **params: Any) -> dict[str, Any]:
        response = await client.get(url + path, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    # The last 10 lines are kept. A numbered run's lines keep their numbers (21-30: a permalink
    # names the same line before and after pruning); a run logged before 0016 is counted (1-10).
    base = 1 if numbering == "none" else 21
    first = await get(offset=0, limit=4)
    assert first["total"] == 10 and first["first_line"] == base
    assert [(line["line"], line["message"]) for line in first["lines"]] == [
        (base, "line 021"),
        (base + 1, "line 022"),
        (base + 2, "line 023"),
        (base + 3, "line 024"),
    ]
    deep = await get(offset=8, limit=5)
    assert [line["line"] for line in deep["lines"]] == [base + 8, base + 9]
    tail = await get(tail="true", limit=3)
    assert tail["offset"] == 7 and [line["message"] for line in tail["lines"]] == [
        "line 028",
        "line 029",
        "line 030",
    ]
    assert tail["last_seq"] == tail["lines"][-1]["seq"] == deep["last_seq"]
    assert (await get("/search", q="line 02"))["matches"] == list(range(base, base + 9))
    assert (await get("/landmarks"))["first_error_line"] == base + 4
    # A filtered view counts what is left (the even lines and line 25).
    assert (await get(offset=0, host_id=str(run.hosts[0])))["total"] == 6

    # Pruned by age: every line goes; the run still answers, empty.
    await prune_for_tests(db, admin, lines=None, days=0)
    gone = await get(offset=0, limit=10)
    assert (gone["total"], gone["last_seq"], gone["lines"]) == (0, None, [])
    assert (await get(tail="true"))["total"] == 0


async def test_line_numbers_are_written_once_per_run_in_seq_order(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    # Lines inserted without a number (Shipyard's own events) take the run's next ones.
    run = await seed_log(db, admin, [Line(f"n {n}") for n in range(1, 6)], status="in_progress")
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        session.add(DeploymentLog(deployment_id=run.deployment_id, level="WARNING", message="ev"))
        await session.flush()
        stored = await session.scalar(select(DeploymentLog).where(DeploymentLog.message == "ev"))
        assert stored is not None and stored.line_no == 6
    async with db.session(system=True) as session:
        rows = (
            await session.execute(
                select(DeploymentLog.line_no, DeploymentLog.seq)
                .where(DeploymentLog.deployment_id == run.deployment_id)
                .order_by(DeploymentLog.seq)
            )
        ).all()
        log_lines = await session.scalar(
            select(Deployment.log_lines).where(Deployment.id == run.deployment_id)
        )
    assert [row.line_no for row in rows] == [1, 2, 3, 4, 5, 6] and log_lines == 6
    answer = (
        await client.get(
            f"/api/v1/deployments/{run.deployment_id}/logs",
            params={"tail": "true", "limit": 2},
            headers=admin.headers,
        )
    ).json()
    assert [line["message"] for line in answer["lines"]] == ["n 5", "ev"]
    assert answer["total"] == 6 and answer["last_seq"] == rows[-1].seq
