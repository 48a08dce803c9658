"""CI/CD in the browser: add and test a Jenkins provider, its job catalogue, a CI step in a run."""

from __future__ import annotations

import asyncio

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.fakes.jenkins import FakeJenkins, Param, Script
from tests.fixtures.git import MakeGitRepo
from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.git_server import GitFile
from tests.support.sshd import SSHFleet

RUN_TIMEOUT = 30_000


async def _wait_for_job(page: Page, name: str) -> None:
    """The catalogue fills in the background; reload until the job is listed (bounded)."""
    for _ in range(100):
        await page.goto("/cicd/jobs")
        if await page.locator(f"#jobs li[data-name='{name}']").count():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {name} never appeared in the catalogue")


async def test_add_test_and_sync_a_jenkins_provider_then_run_a_ci_step(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    jenkins_fake: FakeJenkins,
    make_git_repo: MakeGitRepo,
    ssh_fleet: SSHFleet,
) -> None:
    jenkins_fake.add_job(
        "deploy-app",
        params=[
            Param("environment", "choice", choices=["staging", "production"]),
            Param("version", "string", default="latest", description="What to ship"),
        ],
        description="Builds and publishes the app",
        script=lambda params: Script([f"building for {params.get('environment')}\n"]),
    )
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/cicd")
    await expect(page.get_by_text("No CI/CD providers yet")).to_be_visible()
    form = page.locator("form.cicd-form")
    await form.get_by_label("Type").select_option("jenkins")
    await form.locator("#f-name").fill("Build farm")
    await form.locator("#f-url").fill(jenkins_fake.url)
    await form.get_by_label("Jenkins user").fill(jenkins_fake.username)
    await form.get_by_label("Jenkins API token").fill("wrong-token")
    await form.get_by_role("button", name="Add provider").click()
    row = page.locator("tr[data-name='Build farm']")
    await expect(row).to_be_visible()
    # Wrong credentials: the test says so in words, inline.
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".check-result")).to_contain_text("Failed:")
    await expect(page.locator("body")).not_to_contain_text(jenkins_fake.token)

    # Fix the token through the API (the form adds; editing is the API's), then test again.
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        listed = (await http.get("/api/v1/cicd-providers")).json()["items"]
        fixed = await http.patch(
            f"/api/v1/cicd-providers/{listed[0]['id']}",
            json={"config": {"api_token": jenkins_fake.token}},
        )
        assert fixed.status_code == 200, fixed.text
    await page.goto("/cicd")
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".check-result")).to_contain_text("Works:")
    await row.get_by_role("button", name="Sync jobs").click()
    await expect(page.get_by_role("status").first).to_contain_text("Sync queued")

    await _wait_for_job(page, "deploy-app")
    job = page.locator("#jobs li[data-name='deploy-app']")
    await expect(job).to_contain_text("Builds and publishes the app")
    await expect(job.locator("table.params")).to_contain_text("environment")
    await expect(job.locator("table.params")).to_contain_text("one of staging, production")
    await expect(job.locator("table.params")).to_contain_text("What to ship")

    # A deployment with a CI/CD step before its script, set up in the wizard.
    hosted = make_git_repo(
        {"ship.sh": GitFile("#!/bin/sh\necho shipped\n", executable=True)}, public=True
    )
    endpoint = ssh_fleet.ensure(1)[0]
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        repo = (await http.post("/api/v1/repositories", json={"url": hosted.clone_url})).json()
        created = await http.post(
            "/api/v1/hosts",
            json={
                "name": "app-1",
                "ip": endpoint.host,
                "port": endpoint.port,
                "user": endpoint.user,
                "password": endpoint.password,
            },
        )
        assert created.status_code == 201, created.text
    await page.goto("/deployments/new")
    await page.get_by_label("Name").fill("Built and shipped")
    await page.get_by_label("Repository").select_option(repo["id"])
    await page.get_by_role("button", name="Next: scripts").click()
    await page.get_by_role("checkbox", name="ship.sh").check()
    await page.get_by_role("button", name="Next: hosts").click()
    await page.get_by_role("checkbox", name="app-1").check()
    await page.get_by_role("button", name="Next: schedule & options").click()
    await page.get_by_label("Before the scripts").select_option(
        label="deploy-app (environment, version)"
    )
    await page.locator("#f-cicd-before-params").fill("environment=production")
    await page.get_by_role("button", name="Next: review").click()
    await expect(page.locator("#summary")).to_contain_text("deploy-app")
    await page.get_by_role("button", name="Start deployment").click()

    await expect(page.locator("#log-state")).to_have_text("Finished: success.", timeout=RUN_TIMEOUT)
    steps = page.locator("#cicd-steps")
    await expect(steps).to_contain_text("deploy-app")
    await expect(steps.locator("[data-status]")).to_have_text("success")
    await expect(page.locator("#log")).to_contain_text("shipped")


async def test_bad_ci_parameters_are_caught_at_review(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    job = "00000000-0000-4000-8000-000000000001"
    await page.goto(f"/deployments/new/review?name=x&cicd_before={job}&cicd_before_params=oops")
    await expect(page.locator("#review-errors")).to_contain_text("'oops' is not key=value")
    await expect(page.get_by_role("button", name="Start deployment")).to_be_disabled()
    # What only the service can judge is reported after the attempt, in words.
    await page.goto("/deployments/new/review?name=Nothing+to+do")
    await page.get_by_role("button", name="Start deployment").click()
    await expect(page.locator("#alerts")).to_contain_text(
        "A deployment needs scripts to run or CI/CD steps."
    )
    await expect(page.locator("#review-errors")).to_contain_text("fix it")


async def test_viewer_sees_providers_but_cannot_manage_them(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    viewer = await api_add_member(live_server.url, admin, "viewer")
    await use_session(context, live_server.url, viewer)
    await page.goto("/cicd")
    await expect(page.get_by_role("button", name="Add provider")).to_have_count(0)
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    forged = await page.request.post(
        f"{live_server.url}/cicd",
        form={"type": "jenkins", "name": "x", "url": "http://127.0.0.1:9", "csrf_token": token},
    )
    assert forged.status == 403
