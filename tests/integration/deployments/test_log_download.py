"""The log download: streamed page by page, gzip (negotiated or as a .gz file), per host, the
grid's filters, 422 naming the filter, 404 for another tenant; a real run's secrets masked."""

from __future__ import annotations

import gzip
import json
import re

import httpx
import pytest

from shipyard.db import Database
from shipyard.deployments import log_export
from tests.builders.deployments import DeployBuilder
from tests.integration.deployments.conftest import SCRIPTS
from tests.support.api import Account
from tests.support.grid_seed import GridRun, Line, seed_grid_run, statements

LINES: list[Line] = [
    (None, None, None, "INFO", "deployment started on 2 hosts"),
    ("web-1", "deploy.sh", "stdout", "INFO", "pulling release 42"),
    ("web-1", "deploy.sh", "stderr", "INFO", "warning: cache is cold"),
    ("web-2", "deploy.sh", "stdout", "INFO", "pulling release 42"),
    ("web-2", None, None, "WARNING", "slow connection to web-2"),
    ("web-2", "check.sh", "stdout", "INFO", "\x1b[31mcheck failed: disk 97% full\x1b[0m"),
    ("web-2", "check.sh", None, "ERROR", "check.sh exited with code 3"),
    ("web-1", "check.sh", "stdout", "INFO", "check ok"),
]


async def seeded(db: Database, admin: Account, extra: int = 0) -> GridRun:
    lines = LINES + [
        ("web-1", "deploy.sh", "stdout", "INFO", f"line {i:05d}") for i in range(extra)
    ]
    return await seed_grid_run(
        db, admin, outcomes={("web-2", "check.sh"): ("failed", 3)}, lines=lines
    )


async def test_whole_log_streams_in_pages_as_text(
    client: httpx.AsyncClient, admin: Account, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pages, so a short log already takes several reads: one chunk per page.
    monkeypatch.setattr(log_export, "EXPORT_PAGE", 4)
    run = await seeded(db, admin, extra=5)
    url = f"/deployments/{run.deployment_id}/log.txt"
    with statements(db) as seen:
        response = await client.get(url, headers={**admin.headers, "Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-length" not in response.headers  # streamed
    assert "content-encoding" not in response.headers
    assert response.headers["content-disposition"] == (
        f'attachment; filename="deployment-{run.deployment_id}.log"'
    )
    # Read page by page: 13 lines in pages of 4 are four reads.
    assert len([s for s in seen if "FROM deployment_logs" in s]) == 4
    text = response.text
    lines = text.splitlines()
    assert len(lines) == 13
    assert lines[0] == "2026-12-02T04:00:00.000Z - [INFO] deployment started on 2 hosts"
    assert lines[1] == "2026-12-02T04:00:01.000Z web-1 [stdout] pulling release 42"
    assert lines[2] == "2026-12-02T04:00:02.000Z web-1 [stderr] warning: cache is cold"
    assert lines[4] == "2026-12-02T04:00:04.000Z web-2 [WARNING] slow connection to web-2"
    # Stored as is: colours stay in the file.
    assert lines[5].endswith("[stdout] \x1b[31mcheck failed: disk 97% full\x1b[0m")
    assert lines[-1].endswith("web-1 [stdout] line 00004")


async def test_gzip_when_accepted_and_as_a_gz_file(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    run = await seeded(db, admin, extra=3000)
    url = f"/deployments/{run.deployment_id}/log.txt"
    plain = await client.get(url, headers={**admin.headers, "Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.text.count("\n") == len(LINES) + 3000

    encoded = await client.get(url, headers={**admin.headers, "Accept-Encoding": "gzip, br"})
    assert encoded.headers["content-encoding"] == "gzip"
    assert encoded.headers["vary"] == "Accept-Encoding"
    assert encoded.text == plain.text  # httpx decoded it
    refused = await client.get(url, headers={**admin.headers, "Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers

    as_file = await client.get(url + ".gz", headers=admin.headers)
    assert as_file.status_code == 200
    assert as_file.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in as_file.headers
    assert as_file.headers["content-disposition"].endswith(
        f'deployment-{run.deployment_id}.log.gz"'
    )
    assert len(as_file.content) < len(plain.content) / 5
    assert gzip.decompress(as_file.content).decode() == plain.text


async def test_one_host_and_the_grid_filters(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    run = await seeded(db, admin)
    url = f"/deployments/{run.deployment_id}/log.txt"

    async def lines(**params: str) -> list[str]:
        response = await client.get(url, headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return response.text.splitlines()

    by_name = await lines(host="web-2")
    assert by_name == await lines(host=str(run.hosts["web-2"]))
    assert [line.split(" ", 2)[1] for line in by_name] == ["web-2"] * 4
    assert len(await lines(script="check.sh")) == 3
    cell = await lines(script=str(run.cells[("web-2", "check.sh")]))
    assert [line.split("] ", 1)[1] for line in cell] == [
        "\x1b[31mcheck failed: disk 97% full\x1b[0m",
        "check.sh exited with code 3",
    ]
    # Failed only: the failed script's lines and its host's lines outside any script.
    failed = await lines(failed="true")
    assert [line.split("] ", 1)[1] for line in failed] == [
        "slow connection to web-2",
        "\x1b[31mcheck failed: disk 97% full\x1b[0m",
        "check.sh exited with code 3",
    ]
    assert len(await lines(grep="PULLING")) == 2
    assert len(await lines(grep="100%")) == 0  # % is not a wildcard
    assert len(await lines(grep=r"disk [0-9]+% full", regex="true")) == 1
    assert len(await lines(host="web-1", grep="release")) == 1

    api = f"/api/v1/deployments/{run.deployment_id}/logs/download"
    same = await client.get(
        api, headers=admin.headers, params={"host_id": str(run.hosts["web-2"]), "format": "text"}
    )
    assert same.status_code == 200 and same.text.splitlines() == by_name
    as_json = await client.get(
        api, headers=admin.headers, params={"failed": "true", "format": "jsonl"}
    )
    assert as_json.headers["content-type"] == "application/x-ndjson"
    entries = [json.loads(line) for line in as_json.text.splitlines()]
    assert [(e["host"], e["stream"], e["level"]) for e in entries] == [
        ("web-2", None, "WARNING"),
        ("web-2", "stdout", "INFO"),
        ("web-2", None, "ERROR"),
    ]
    assert entries[1]["deployment_script_id"] == str(run.cells[("web-2", "check.sh")])


async def test_bad_filters_are_422_naming_them_and_other_tenants_get_404(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    run = await seeded(db, admin)
    api = f"/api/v1/deployments/{run.deployment_id}/logs/download"
    for params, field in (
        ({"host": "db-9"}, "host"),
        ({"script": "nope.sh"}, "script"),
        ({"grep": "disk [", "regex": "true"}, "grep"),
        ({"format": "xml"}, "format"),
    ):
        response = await client.get(api, headers=admin.headers, params=params)
        assert response.status_code == 422, (params, response.text)
        assert field in response.text
    web = await client.get(
        f"/deployments/{run.deployment_id}/log.txt", headers=admin.headers, params={"host": "x"}
    )
    assert web.status_code == 422
    for url in (api, f"/deployments/{run.deployment_id}/log.txt"):
        response = await client.get(url, headers=other_admin.headers)
        assert response.status_code == 404, response.text
        assert "check failed" not in response.text


async def test_a_real_runs_download_has_its_secret_masked(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    secret = [{"name": "API_TOKEN", "value": "download-secret-value-1", "secret": True}]
    run = await deploy.run(repo, hosts, ("deploy.sh", ["a", "b"]), environment=secret)
    assert run["status"] == "success", run
    response = await deploy.client.get(
        f"/api/v1/deployments/{run['id']}/logs/download", headers=deploy.admin.headers
    )
    assert response.status_code == 200
    # [stdout] once the executor records streams (the write path); [INFO] before.
    pattern = re.escape(hosts[0]["name"]) + r" \[(stdout|INFO)\] token=\*\*\*$"
    assert re.search(pattern, response.text, re.M), response.text
    assert "download-secret-value-1" not in response.text
    assert "to stderr" in response.text
