"""The results grid (API and the page's fragment): cells by status, progress, failed only, pages
of hosts; a 1,000-host run in the same few statements as a small one; 404 for other tenants."""

from __future__ import annotations

import httpx

from shipyard.db import Database
from tests.support.api import Account
from tests.support.grid_seed import seed_grid_run, statements


async def test_results_by_host_and_script_with_progress(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    run = await seed_grid_run(
        db,
        admin,
        hosts=("web-2", "web-1", "db-1"),
        outcomes={
            ("web-2", "check.sh"): ("failed", 3),
            ("db-1", "deploy.sh"): ("running", None),
            ("db-1", "check.sh"): ("pending", None),
        },
        status="in_progress",
    )
    url = f"/api/v1/deployments/{run.deployment_id}/results"
    body = (await client.get(url, headers=admin.headers)).json()
    assert body["status"] == "in_progress" and body["final"] is False
    assert body["progress"]["text"] == "2/3 hosts done, 1 failed"
    assert body["progress"]["cells"]["success"] == 3
    assert body["progress"]["cells"]["failed"] == 1
    assert [s["name"] for s in body["scripts"]] == ["deploy.sh", "check.sh"]
    assert [h["name"] for h in body["hosts"]] == ["db-1", "web-1", "web-2"]
    web2 = body["hosts"][2]
    assert web2["failed"] is True and web2["done"] is True
    assert [(c["status"], c["exit_code"]) for c in web2["cells"]] == [("success", 0), ("failed", 3)]
    assert web2["cells"][1]["id"] == str(run.cells[("web-2", "check.sh")])
    assert body["hosts"][0]["done"] is False

    failed = (await client.get(url, headers=admin.headers, params={"failed_only": "true"})).json()
    assert [h["name"] for h in failed["hosts"]] == ["web-2"] and failed["matching"] == 1

    fragment = await client.get(
        f"/deployments/{run.deployment_id}/grid", headers={**admin.headers, "HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "2/3 hosts done, 1 failed" in fragment.text
    assert 'hx-trigger="every 2s' in fragment.text  # live: polls itself
    assert 'title="web-2 · check.sh: failed, exit code 3"' in fragment.text


async def test_a_thousand_hosts_in_pages_and_a_fixed_number_of_statements(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    names = [f"node-{i:04d}" for i in range(1000)]
    outcomes = {(names[7], "migrate.sh"): ("failed", 1), (names[993], "check.sh"): ("failed", 2)}
    run = await seed_grid_run(
        db, admin, hosts=names, scripts=("deploy.sh", "migrate.sh", "check.sh"), outcomes=outcomes
    )
    url = f"/api/v1/deployments/{run.deployment_id}/results"
    with statements(db) as seen:
        body = (await client.get(url, headers=admin.headers)).json()
    grid_reads = [s for s in seen if "deployment_scripts" in s or "FROM hosts" in s]
    assert len(grid_reads) <= 4, grid_reads
    assert len(body["hosts"]) == 1000 and body["next_offset"] is None
    assert sum(len(h["cells"]) for h in body["hosts"]) == 3000
    assert body["progress"]["text"] == "1000/1000 hosts done, 2 failed"

    fragment_url = f"/deployments/{run.deployment_id}/grid"
    with statements(db) as seen_page:
        first = await client.get(fragment_url, headers=admin.headers)
    assert len([s for s in seen_page if "deployment_scripts" in s]) <= 3
    assert first.status_code == 200
    assert first.text.count('class="grid-cell') == 300  # 100 hosts a page
    assert "Hosts 1 to 100 of 1000" in first.text
    assert 'hx-trigger="every 2s' not in first.text  # final: no polling
    last = await client.get(fragment_url, headers=admin.headers, params={"offset": 900})
    assert "Hosts 901 to 1000 of 1000" in last.text and "node-0999" in last.text
    failed = await client.get(fragment_url, headers=admin.headers, params={"failed": "true"})
    assert failed.text.count("<tr data-host=") == 2
    assert "node-0007" in failed.text and "node-0993" in failed.text


async def test_other_tenants_get_404(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    run = await seed_grid_run(db, admin)
    for url in (
        f"/api/v1/deployments/{run.deployment_id}/results",
        f"/deployments/{run.deployment_id}/grid",
    ):
        response = await client.get(url, headers=other_admin.headers)
        assert response.status_code == 404, response.text
        assert "web-1" not in response.text
