"""Deployments end to end in the browser: the wizard, live logs to success, failures, cancel."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.fixtures.git import MakeGitRepo
from tests.support.api import Account
from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.git_server import GitFile
from tests.support.sshd import SSHEndpoint, SSHFleet

RUN_TIMEOUT = 30_000
SCRIPTS = {
    "deploy.sh": GitFile(
        '#!/bin/sh\necho "deploying $1 ($2)"\necho "warming caches" >&2\n', executable=True
    ),
    "slow.sh": GitFile("#!/bin/sh\necho started\nsleep 30\necho never\n", executable=True),
    "notify.sh": GitFile('#!/bin/sh\necho "notified $SHIPYARD_HOST"\n', executable=True),
}


async def _api(live_server: LiveServer, account: Account, method: str, path: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(base_url=live_server.url, headers=account.headers) as http:
        response = await http.request(method, f"/api/v1{path}", **kw)
    assert response.status_code < 300, response.text
    return response.json()


async def _setup(
    live_server: LiveServer,
    admin: Account,
    make_git_repo: MakeGitRepo,
    endpoints: list[SSHEndpoint],
    files: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    hosted = make_git_repo(files, public=True)
    repo = await _api(live_server, admin, "POST", "/repositories", json={"url": hosted.clone_url})
    catalogue = await _api(live_server, admin, "GET", f"/repositories/{repo['id']}/scripts")
    scripts = {s["path"]: s["id"] for s in catalogue["scripts"]}
    hosts = []
    for index, endpoint in enumerate(endpoints):
        hosts.append(
            await _api(
                live_server,
                admin,
                "POST",
                "/hosts",
                json={
                    "name": f"node-{index + 1}",
                    "ip": endpoint.host,
                    "port": endpoint.port,
                    "user": endpoint.user,
                    "password": endpoint.password,
                },
            )
        )
    return repo, scripts, hosts


async def test_wizard_to_a_deployment_whose_live_log_reaches_success(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    make_git_repo: MakeGitRepo,
    ssh_fleet: SSHFleet,
) -> None:
    admin = await api_signup(live_server.url)
    repo, _, _ = await _setup(live_server, admin, make_git_repo, ssh_fleet.ensure(2), SCRIPTS)
    await use_session(context, live_server.url, admin)

    await page.goto("/deployments")
    await page.get_by_role("link", name="New deployment").click()
    await page.get_by_label("Name").fill("Release 1.2")
    await page.get_by_label("Repository").select_option(repo["id"])
    await page.get_by_role("button", name="Next: scripts").click()

    # The branch is asked here, once; scripts join the run order as they are added.
    await expect(page.get_by_label("Branch, tag or commit")).to_have_count(1)
    await expect(page.locator("#script-choices")).to_contain_text("deploy.sh")
    await page.get_by_role("checkbox", name="notify.sh").check()
    await page.get_by_role("button", name="Add ticked scripts to the run order").click()
    await page.get_by_role("checkbox", name="deploy.sh").check()
    await page.get_by_label("Arguments for deploy.sh").fill("v1.2 'blue green'")
    await page.get_by_role("button", name="Add ticked scripts to the run order").click()
    order = page.locator("#script-order tbody tr")
    await expect(order).to_have_count(2)
    await expect(order.nth(0)).to_have_attribute("data-script", "notify.sh")
    # Reordered with the up button (a plain submit: no script needed); arguments stay.
    await page.get_by_role("button", name="Move deploy.sh up").click()
    await expect(order.nth(0)).to_have_attribute("data-script", "deploy.sh")
    await expect(order.nth(0).locator(".position")).to_have_text("1")
    await expect(page.get_by_label("Arguments for deploy.sh")).to_have_value("v1.2 'blue green'")
    await expect(page.get_by_role("button", name="Move deploy.sh up")).to_be_disabled()
    await page.get_by_role("button", name="Next: hosts").click()

    # Filtering keeps the choice; picking by status selects every host with it.
    await page.get_by_label("Name contains").fill("node-2")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#host-choices tbody tr")).to_have_count(1)
    await page.get_by_label("Name contains").fill("")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#host-choices tbody tr")).to_have_count(2)
    await page.get_by_role("button", name="all unknown").click()
    await expect(page.locator("#host-choices input:checked")).to_have_count(2)
    await page.get_by_role("button", name="Next: schedule & options").click()

    await page.get_by_label("Hosts at once").fill("1")
    await page.get_by_label("Stop everything at the first failure").check()
    await page.get_by_role("button", name="Next: review").click()
    summary = page.locator("#summary")
    await expect(summary).to_contain_text("Release 1.2")
    await expect(page.locator("#summary-scripts li")).to_have_text(
        ["deploy.sh v1.2 'blue green'", "notify.sh"]
    )
    await expect(page.locator("#summary-hosts")).to_contain_text("node-1")
    await expect(page.locator("#summary-hosts")).to_contain_text("node-2")
    await expect(summary).to_contain_text("1 hosts at once, stop at the first failure")
    await page.get_by_role("button", name="Start deployment").click()

    await expect(page.get_by_role("heading", name="Release 1.2")).to_be_visible()
    log = page.locator("#log")
    await expect(log).to_contain_text("deploying v1.2 (blue green)", timeout=RUN_TIMEOUT)
    await expect(page.locator("#log-state")).to_have_text("Finished: success.", timeout=RUN_TIMEOUT)
    await expect(page.locator("#deployment-status")).to_have_text("success")
    # The results grid: one row per host, one column per script in the order picked.
    grid = page.locator("#results-grid")
    await expect(grid.locator("tbody tr")).to_have_count(2)
    await expect(grid.locator("thead th")).to_have_text(["Host", "deploy.sh", "notify.sh"])
    for name in ("node-1", "node-2"):
        cells = grid.locator(f"tr[data-host='{name}'] .grid-cell")
        await expect(cells).to_have_text(["ok", "ok"])
        for index in (0, 1):
            await expect(cells.nth(index)).to_have_attribute("data-exit-code", "0")
    text = await log.inner_text()
    assert text.index("deploying v1.2") < text.index("notified")
    # Standard error lines are in the log too, and the level filter separates them.
    await expect(log).to_contain_text("warming caches")


async def test_failing_script_shows_partial_with_its_exit_code(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    make_git_repo: MakeGitRepo,
    ssh_fleet: SSHFleet,
) -> None:
    endpoints = ssh_fleet.ensure(2)
    failing_port = endpoints[1].port
    files = {
        "check.sh": GitFile(
            "#!/bin/sh\n"
            'case "$SSH_CONNECTION" in\n'
            f'  *" {failing_port}") echo "disk is full" >&2; exit 7 ;;\n'
            "esac\n"
            "echo healthy\n",
            executable=True,
        )
    }
    admin = await api_signup(live_server.url)
    repo, scripts, hosts = await _setup(live_server, admin, make_git_repo, endpoints, files)
    deployment = await _api(
        live_server,
        admin,
        "POST",
        "/deployments",
        json={
            "name": "Health check",
            "repository_id": repo["id"],
            "script_ids": [scripts["check.sh"]],
            "host_ids": [host["id"] for host in hosts],
        },
    )
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{deployment['id']}")
    await expect(page.locator("#log-state")).to_have_text("Finished: partial.", timeout=RUN_TIMEOUT)
    await expect(page.locator("#deployment-status")).to_have_text("partial")
    failed = page.locator("#results-grid tr[data-host='node-2'] .grid-cell")
    await expect(failed).to_have_attribute("data-status", "failed")
    await expect(failed).to_have_attribute("data-exit-code", "7")
    await expect(failed).to_have_text("failed 7")
    healthy = page.locator("#results-grid tr[data-host='node-1'] .grid-cell")
    await expect(healthy).to_have_attribute("data-exit-code", "0")
    await expect(page.locator("#log")).to_contain_text("disk is full")

    # The dashboard lists it among this week's failures, and the list filter finds it.
    await page.goto("/")
    await expect(page.locator("#failed")).to_contain_text("Health check")
    await page.goto("/deployments?status=partial")
    await expect(page.locator("#deployments")).to_contain_text("Health check")


async def test_cancel_a_running_deployment(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    make_git_repo: MakeGitRepo,
    ssh_fleet: SSHFleet,
) -> None:
    admin = await api_signup(live_server.url)
    repo, scripts, hosts = await _setup(
        live_server, admin, make_git_repo, ssh_fleet.ensure(1), SCRIPTS
    )
    deployment = await _api(
        live_server,
        admin,
        "POST",
        "/deployments",
        json={
            "name": "Long migration",
            "repository_id": repo["id"],
            "script_ids": [scripts["slow.sh"]],
            "host_ids": [hosts[0]["id"]],
        },
    )
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{deployment['id']}")
    await expect(page.locator("#log")).to_contain_text("started", timeout=RUN_TIMEOUT)
    await expect(page.locator("#deployment-status")).to_have_text("in progress")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel deployment").click()
    await expect(page.locator("#log-state")).to_have_text(
        "Finished: cancelled.", timeout=RUN_TIMEOUT
    )
    await expect(page.locator("#deployment-status")).to_have_text("cancelled")
    await expect(page.locator("#log")).not_to_contain_text("never")
    await expect(page.get_by_role("button", name="Re-run")).to_be_visible()

    # Re-run starts a new deployment with the same inputs and opens it.
    await page.get_by_role("button", name="Re-run").click()
    await expect(page).not_to_have_url(f"/deployments/{deployment['id']}")
    await expect(page.get_by_role("heading", name="Long migration")).to_be_visible()
    await expect(page.locator("#log")).to_contain_text("started", timeout=RUN_TIMEOUT)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel deployment").click()
    await expect(page.locator("#deployment-status")).to_have_text("cancelled", timeout=RUN_TIMEOUT)


async def test_viewer_cannot_open_the_wizard_or_forge_a_deployment(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    viewer = await api_add_member(live_server.url, admin, "viewer")
    await use_session(context, live_server.url, viewer)
    response = await page.goto("/deployments/new")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    forged = await page.request.post(
        f"{live_server.url}/deployments/new", form={"name": "sneaky", "csrf_token": token}
    )
    assert forged.status == 403
