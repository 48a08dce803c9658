"""The results grid on a deployment's page: cells coloured by status with the exit code in their
title, progress, live updates, clicking a cell filters the log (the `shipyard:log-filter` event
the viewer listens for), failed only, and pages of hosts for a 1,000-host run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from shipyard.crypto import load_keyring
from shipyard.db import Database
from tests.support.browser import LiveServer, api_signup, use_session
from tests.support.grid_seed import Line, seed_grid_run, set_cell

LINES: list[Line] = [
    ("web-1", "deploy.sh", "stdout", "INFO", "pulling on web-1"),
    ("web-2", "deploy.sh", "stdout", "INFO", "pulling on web-2"),
    ("web-2", "check.sh", "stdout", "INFO", "disk full on web-2"),
    ("web-1", "check.sh", "stdout", "INFO", "check ok on web-1"),
]
# Records every filter the grid asks the log for, in order.
RECORD_FILTERS = """() => {
  window.gridFilters = [];
  document.addEventListener("shipyard:log-filter", (event) => window.gridFilters.push(event.detail));
}"""


@pytest.fixture
async def server_db(live_server: LiveServer) -> AsyncIterator[Database]:
    database = Database(
        live_server.database_url, keyring=load_keyring(live_server.settings), pool_size=2
    )
    yield database
    await database.dispose()


async def filters(page: Page) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = await page.evaluate("() => window.gridFilters")
    return recorded


async def test_grid_shows_statuses_and_a_cell_click_filters_the_log(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url)
    run = await seed_grid_run(
        server_db,
        admin,
        name="Grid release",
        outcomes={("web-2", "check.sh"): ("failed", 3)},
        lines=LINES,
    )
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    grid = page.locator("#results-grid")
    await expect(grid.locator("#grid-progress")).to_have_text("2/2 hosts done, 1 failed")
    failed = grid.locator("tr[data-host='web-2'] .grid-cell[data-status='failed']")
    await expect(failed).to_have_attribute("title", "web-2 · check.sh: failed, exit code 3")
    await expect(failed).to_have_text("failed 3")
    await expect(grid.locator(".grid-cell[data-status='success']")).to_have_count(3)
    # Coloured by status (the stylesheet's red for failed, green for success).
    red = await failed.evaluate("(el) => getComputedStyle(el).color")
    green = await grid.locator(".grid-cell.cell-success").first.evaluate(
        "(el) => getComputedStyle(el).color"
    )
    assert red != green

    await page.evaluate(RECORD_FILTERS)
    await failed.click()
    await expect(failed).to_have_attribute("aria-pressed", "true")
    assert await filters(page) == [
        {
            "host": str(run.hosts["web-2"]),
            "script": str(run.cells[("web-2", "check.sh")]),
            "failedOnly": False,
        }
    ]
    # The download follows: these lines as a .gz file.
    download = page.locator("#grid-download")
    await expect(download).to_have_text("Download these lines (.gz)")
    href = await download.get_attribute("href")
    assert href is not None and f"script={run.cells[('web-2', 'check.sh')]}" in href
    # When the viewer listens, the log shows that host and script's lines only.
    if await page.evaluate("() => Boolean(window.shipyardLog)"):
        log = page.locator("#log")
        await expect(log).to_contain_text("disk full on web-2")
        await expect(log).not_to_contain_text("pulling on web-1")
    # The same cell again: every line.
    await failed.click()
    await expect(failed).to_have_attribute("aria-pressed", "false")
    assert (await filters(page))[-1] == {"host": None, "script": None, "failedOnly": False}
    # A host's name: all of its lines.
    await grid.locator(".grid-host", has_text="web-1").click()
    assert (await filters(page))[-1] == {
        "host": str(run.hosts["web-1"]),
        "script": None,
        "failedOnly": False,
    }


async def test_failed_only_and_live_updates(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url)
    run = await seed_grid_run(
        server_db,
        admin,
        hosts=("web-1", "web-2", "web-3"),
        outcomes={
            ("web-2", "check.sh"): ("failed", 3),
            ("web-3", "deploy.sh"): ("running", None),
            ("web-3", "check.sh"): ("pending", None),
        },
        status="in_progress",
    )
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    grid = page.locator("#results-grid")
    await expect(grid.locator("#grid-progress")).to_contain_text("2/3 hosts done, 1 failed")
    await page.evaluate(RECORD_FILTERS)

    await page.locator("#grid-failed-only").check()
    await expect(grid.locator("tbody tr")).to_have_count(1)
    await expect(grid.locator("tbody tr")).to_have_attribute("data-host", "web-2")
    assert (await filters(page))[-1] == {"host": None, "script": None, "failedOnly": True}
    await page.locator("#grid-failed-only").uncheck()
    await expect(grid.locator("tbody tr")).to_have_count(3)

    # The run goes on: the grid follows without a reload (it polls every 2 s).
    await set_cell(server_db, admin, run.cells[("web-3", "deploy.sh")], "success", 0)
    await set_cell(server_db, admin, run.cells[("web-3", "check.sh")], "failed", 7)
    web3 = grid.locator("tr[data-host='web-3'] .grid-cell[data-status='failed']")
    await expect(web3).to_have_attribute("title", "web-3 · check.sh: failed, exit code 7")
    await expect(grid.locator("#grid-progress")).to_contain_text("3/3 hosts done, 2 failed")


async def test_a_thousand_hosts_page_through(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url)
    names = [f"node-{i:04d}" for i in range(1000)]
    run = await seed_grid_run(
        server_db,
        admin,
        hosts=names,
        scripts=("deploy.sh", "migrate.sh", "check.sh"),
        outcomes={(names[500], "migrate.sh"): ("failed", 1)},
    )
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    grid = page.locator("#results-grid")
    # The page itself is heavy at this size (its grid lists 3,000 cells): a longer wait.
    await expect(grid.locator("#grid-progress")).to_have_text(
        "1000/1000 hosts done, 1 failed", timeout=20_000
    )
    await expect(grid.locator("tbody tr")).to_have_count(100)
    await expect(grid).to_contain_text("Hosts 1 to 100 of 1000")
    await grid.get_by_role("button", name="Next hosts").click()
    await expect(grid).to_contain_text("Hosts 101 to 200 of 1000")
    await expect(grid.locator("tbody tr").first).to_have_attribute("data-host", "node-0100")
    await page.locator("#grid-failed-only").check()
    await expect(grid.locator("tbody tr")).to_have_count(1)
    await expect(grid.locator("tbody tr")).to_have_attribute("data-host", "node-0500")
