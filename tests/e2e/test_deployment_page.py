"""A deployment's page: results (the grid) with exit codes, the live log over SSE, filters, download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from shipyard.crypto import load_keyring
from shipyard.db import Database
from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.browser_seed import append_log, finish, seed_running_deployment


@pytest.fixture
async def server_db(live_server: LiveServer) -> AsyncIterator[Database]:
    database = Database(
        live_server.database_url, keyring=load_keyring(live_server.settings), pool_size=2
    )
    yield database
    await database.dispose()


async def test_live_log_streams_until_the_end_and_results_update(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url)
    run = await seed_running_deployment(server_db, admin, name="Release 42")
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    await expect(page.get_by_role("heading", name="Release 42")).to_be_visible()
    await expect(page.locator("#deployment-status")).to_have_text("in progress")

    # Per-script results are the grid's (the live panel has no second table).
    await expect(page.locator("#results")).to_have_count(0)
    grid = page.locator("#results-grid")
    failed_cell = grid.locator("tr[data-host='web-2'] .grid-cell")
    await expect(failed_cell).to_have_attribute("data-status", "failed")
    await expect(failed_cell).to_have_attribute("data-exit-code", "3")
    await expect(grid.locator("tr[data-host='web-1'] .grid-cell")).to_have_attribute(
        "data-exit-code", "0"
    )
    await expect(page.locator("#grid-progress")).to_contain_text("1 failed")

    log = page.locator("#log")
    await expect(log).to_contain_text("web-2: disk full on web-2")
    await expect(page.locator("#log-state")).to_have_text("Live.")

    # New lines arrive while the page is open, without a reload.
    await append_log(server_db, admin, run.deployment_id, message="restarting service")
    await expect(log).to_contain_text("restarting service")
    await finish(server_db, admin, run.deployment_id, "partial")
    await expect(page.locator("#log-state")).to_have_text("Finished: partial.")
    # The results panel refreshes itself when the stream ends: status and controls follow.
    await expect(page.locator("#deployment-status")).to_have_text("partial")
    await expect(page.get_by_role("button", name="Re-run")).to_be_visible()
    await expect(page.get_by_role("button", name="Cancel deployment")).to_have_count(0)


async def test_log_filters_pause_and_download(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url)
    run = await seed_running_deployment(server_db, admin, name="Filters")
    await finish(server_db, admin, run.deployment_id, "partial")
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    lines = page.locator("#log .line")
    await expect(lines).to_have_count(3)
    await expect(page.locator("#log-state")).to_have_text("Finished: partial.")

    await page.get_by_label("Level").select_option("ERROR")
    await expect(page.locator("#log .line:visible")).to_have_count(1)
    await expect(page.locator("#log .line:visible")).to_contain_text("disk full")
    await page.get_by_label("Level").select_option("")
    await page.get_by_label("Host", exact=True).select_option(label="web-1")
    await expect(page.locator("#log .line:visible")).to_have_count(1)
    await expect(page.locator("#log .line:visible")).to_contain_text("web-1: pulling")
    await page.get_by_label("Host", exact=True).select_option("")
    await expect(page.locator("#log .line:visible")).to_have_count(3)

    follow = page.locator("#log-follow")
    await expect(follow).to_have_attribute("aria-pressed", "true")
    await follow.click()
    await expect(follow).to_have_attribute("aria-pressed", "false")
    await expect(follow).to_have_text("Resume auto-scroll")

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download", exact=True).click()
    download = await download_info.value
    assert download.suggested_filename == f"deployment-{run.deployment_id}.log"
    text = Path(await download.path()).read_text()
    assert text.count("\n") == 3
    assert "web-2 [ERROR] disk full on web-2" in text


async def test_viewer_sees_the_run_but_no_controls(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url)
    viewer = await api_add_member(live_server.url, admin, "viewer")
    run = await seed_running_deployment(server_db, admin, name="Watch only")
    await use_session(context, live_server.url, viewer)
    await page.goto(f"/deployments/{run.deployment_id}")
    await expect(page.locator("#log")).to_contain_text("disk full")
    await expect(page.get_by_role("button", name="Cancel deployment")).to_have_count(0)
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    forged = await page.request.post(
        f"{live_server.url}/deployments/{run.deployment_id}/cancel", form={"csrf_token": token}
    )
    assert forged.status == 403
    await page.goto("/deployments")
    await expect(page.get_by_role("link", name="New deployment")).to_have_count(0)
    await expect(page.locator("#deployments")).to_contain_text("Watch only")
