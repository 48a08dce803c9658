"""A template end to end in the browser: made with the form, previewed, launched on a real sshd
host, and run to success with its parameter in the script's arguments and environment."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.fixtures.git import MakeGitRepo
from tests.support.api import Account
from tests.support.browser import LiveServer, api_signup, use_session
from tests.support.git_server import GitFile
from tests.support.sshd import SSHFleet

RUN_TIMEOUT = 30_000
SCRIPTS = {"deploy.sh": GitFile('#!/bin/sh\necho "deploying $1 as $version"\n', executable=True)}


async def _api(live_server: LiveServer, account: Account, method: str, path: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(base_url=live_server.url, headers=account.headers) as http:
        response = await http.request(method, f"/api/v1{path}", **kw)
    assert response.status_code < 300, response.text
    return response.json()


async def test_template_made_in_the_form_previews_and_launches_to_success(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    make_git_repo: MakeGitRepo,
    ssh_fleet: SSHFleet,
) -> None:
    admin = await api_signup(live_server.url)
    hosted = make_git_repo(SCRIPTS, public=True)
    repo = await _api(live_server, admin, "POST", "/repositories", json={"url": hosted.clone_url})
    (endpoint,) = ssh_fleet.ensure(1)
    await _api(
        live_server,
        admin,
        "POST",
        "/hosts",
        json={
            "name": "node-1",
            "ip": endpoint.host,
            "port": endpoint.port,
            "user": endpoint.user,
            "password": endpoint.password,
        },
    )
    await use_session(context, live_server.url, admin)

    await page.goto("/")
    await page.get_by_role("link", name="Templates").click()
    await page.get_by_role("link", name="New template").click()
    await page.locator("#f-name").fill("release")
    await page.get_by_label("Repository").select_option(repo["id"])
    await page.get_by_role("button", name="Show the scripts of this repository").click()
    await expect(page.locator("#script-rows")).to_contain_text("deploy.sh")
    # What was typed before the catalogue loaded is still there.
    await expect(page.locator("#f-name")).to_have_value("release")
    await page.get_by_role("checkbox", name="deploy.sh").check()
    await page.get_by_label("Arguments for deploy.sh").fill("{{ version }}")
    await page.get_by_role("checkbox", name="node-1").check()
    await page.get_by_label("Parameter 1 name").fill("version")
    await page.get_by_label("Parameter 1 is required").check()
    await page.get_by_label("Parameter 1 pattern").fill("[0-9.]+")
    await page.get_by_role("button", name="Create template").click()

    await expect(page.get_by_role("heading", name="release")).to_be_visible()
    await expect(page.locator("#definition-scripts")).to_contain_text("deploy.sh {{ version }}")
    # Required, so labelled "version *".
    version = page.locator("#f-param-version")
    await version.fill("x.y")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#e-param-version")).to_contain_text("does not match")
    await version.fill("2.0")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#preview-commit")).to_have_text(hosted.head())
    await expect(page.locator("#preview-scripts")).to_have_text("deploy.sh 2.0")
    await expect(page.locator("#preview-hosts")).to_contain_text("node-1")
    # Previewed in place (HTMX swapped the launch card): still the template's own address.
    await expect(page).to_have_url(re.compile(r"/templates/[0-9a-f-]{36}$"))
    await page.get_by_role("button", name="Launch").click()

    await expect(page).to_have_url(re.compile(r"/deployments/[0-9a-f-]{36}$"))
    log = page.locator("#log")
    await expect(log).to_contain_text("deploying 2.0 as 2.0", timeout=RUN_TIMEOUT)
    await expect(page.locator("#log-state")).to_have_text("Finished: success.", timeout=RUN_TIMEOUT)

    # The template's page lists the run with its commit.
    await page.goto("/templates")
    await page.get_by_role("link", name="release").click()
    runs = page.locator("#template-runs")
    await expect(runs).to_contain_text(hosted.head()[:8])
    await expect(runs).to_contain_text("manual")
