"""The browser side of hardening: hostile CI build links, and the UI working under a strict CSP.

A fake Jenkins reports ``javascript:``, ``data:`` and off-site build links; Chromium shows no such
``href`` and clicking the build link only opens the real build page. Every main page (dashboard,
hosts, a deployment with its live log, the wizard, CI/CD with an HTMX action) works with no
Content-Security-Policy violation reported.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Dialog, Page, expect
from sqlalchemy import update

from shipyard.cicd.models import DeploymentCicdMapping
from shipyard.db import Database
from tests.fakes.jenkins import FakeJenkins, Script
from tests.support.api import Account
from tests.support.browser import LiveServer, api_signup, use_session

FINAL = {"success", "failed", "partial", "cancelled"}
# Records violations the page reports to itself (Playwright's init scripts are not bound by CSP).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


class Watch:
    """CSP violations and dialogs seen on a page (an ``alert`` would mean script ran)."""

    def __init__(self, page: Page) -> None:
        self.console: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.console.append(message.text)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def violations(self, page: Page) -> list[str]:
        reported: list[str] = await page.evaluate("window.__cspViolations || []")
        return [*self.console, *reported]


async def _ci_only_deployment(
    live_server: LiveServer, admin: Account, jenkins_fake: FakeJenkins
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        provider = await http.post(
            "/api/v1/cicd-providers",
            json={
                "type": "jenkins",
                "name": "Build farm",
                "url": jenkins_fake.url,
                "config": {"username": jenkins_fake.username, "api_token": jenkins_fake.token},
            },
        )
        assert provider.status_code == 201, provider.text
        jobs: list[dict[str, Any]] = []
        for _ in range(100):  # the catalogue fills in the background (bounded wait)
            await http.post(f"/api/v1/cicd-providers/{provider.json()['id']}/sync")
            jobs = (await http.get("/api/v1/cicd-jobs")).json()["items"]
            if jobs:
                break
            await asyncio.sleep(0.2)
        assert jobs, "the Jenkins job never reached the catalogue"
        created = await http.post(
            "/api/v1/deployments",
            json={"name": "CI only", "cicd_steps": [{"cicd_job_id": jobs[0]["id"]}]},
        )
        assert created.status_code == 201, created.text
        deployment: dict[str, Any] = created.json()
        for _ in range(150):
            deployment = (await http.get(f"/api/v1/deployments/{deployment['id']}")).json()
            if deployment["status"] in FINAL:
                return deployment
            await asyncio.sleep(0.2)
    raise AssertionError(f"the deployment did not finish: {deployment['status']}")


async def _hrefs(page: Page) -> list[str]:
    hrefs: list[str] = await page.eval_on_selector_all(
        "a[href]", "links => links.map(link => link.getAttribute('href'))"
    )
    return hrefs


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(document.domain)", "data:text/html,<script>alert(1)</script>", "off-site"],
)
async def test_a_hostile_build_link_never_becomes_a_dangerous_href(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    jenkins_fake: FakeJenkins,
    link: str,
) -> None:
    jenkins_fake.add_job("deploy", script=lambda params: Script(["built\n"]))
    jenkins_fake.build_link = "http://evil.example/job/deploy/1/" if link == "off-site" else link
    admin = await api_signup(live_server.url, tenant_name="Links")
    await use_session(context, live_server.url, admin)
    deployment = await _ci_only_deployment(live_server, admin, jenkins_fake)
    assert deployment["status"] == "success"
    watch = Watch(page)
    await page.add_init_script(WATCH_CSP)

    await page.goto(f"/deployments/{deployment['id']}")
    steps = page.locator("#cicd-steps")
    await expect(steps).to_contain_text("deploy")
    hrefs = await _hrefs(page)
    assert not [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))]
    assert not [h for h in hrefs if "evil.example" in h]
    # The link shown is Jenkins's real build page, under the provider's own address.
    build = steps.get_by_role("link", name="#1")
    real = f"{jenkins_fake.url}/job/deploy/1/"
    await expect(build).to_have_attribute("href", real)
    async with context.expect_page() as opened:
        await build.click()
    tab = await opened.value
    await tab.wait_for_load_state()
    assert tab.url == real
    await tab.close()
    assert watch.dialogs == []
    assert await watch.violations(page) == []


async def test_a_hostile_link_already_stored_is_shown_as_plain_text(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    jenkins_fake: FakeJenkins,
) -> None:
    jenkins_fake.add_job("deploy", script=lambda params: Script(["built\n"]))
    admin = await api_signup(live_server.url, tenant_name="Legacy")
    await use_session(context, live_server.url, admin)
    deployment = await _ci_only_deployment(live_server, admin, jenkins_fake)

    async def plant(db: Database) -> None:
        async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
            await session.execute(
                update(DeploymentCicdMapping)
                .where(DeploymentCicdMapping.deployment_id == UUID(deployment["id"]))
                .values(build_url="javascript:alert(document.cookie)")
            )

    await live_server.call(plant)
    watch = Watch(page)
    await page.goto(f"/deployments/{deployment['id']}")
    steps = page.locator("#cicd-steps")
    await expect(steps).to_contain_text("deploy")
    assert await steps.locator("a").count() == 0
    assert not [h for h in await _hrefs(page) if "javascript:" in h.lower()]
    await steps.get_by_text("1", exact=True).click()
    assert watch.dialogs == []


async def test_headers_on_pages_api_and_static_files(live_server: LiveServer) -> None:
    admin = await api_signup(live_server.url, tenant_name="Headers")
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        for path in ("/login", "/api/v1/me", "/static/app.js", "/healthz", "/no-such-page"):
            response = await http.get(path)
            csp = response.headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
            assert "frame-ancestors 'none'" in csp, path
            assert response.headers["x-frame-options"] == "DENY", path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin", path
        docs = await http.get("/docs")
        assert docs.status_code == 200
        docs_csp = docs.headers["content-security-policy"]
        # Swagger UI's own inline script is allowed by its hash, nothing else inline.
        assert "'sha256-" in docs_csp and "'unsafe-inline'" not in docs_csp.split(";")[1]
        assert docs.headers["x-frame-options"] == "DENY"


async def test_main_pages_work_under_the_policy_with_no_violation(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    jenkins_fake: FakeJenkins,
) -> None:
    jenkins_fake.add_job("deploy", script=lambda params: Script(["step one\n", "step two\n"]))
    admin = await api_signup(live_server.url, tenant_name="Policy")
    await use_session(context, live_server.url, admin)
    deployment = await _ci_only_deployment(live_server, admin, jenkins_fake)
    watch = Watch(page)
    await page.add_init_script(WATCH_CSP)

    await page.goto("/")
    await expect(page.locator("main")).to_contain_text("CI only")
    # app.js ran: times are shown in the browser's timezone.
    await expect(page.locator("time[data-localised]").first).to_be_attached()

    await page.goto("/hosts")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()

    # A deployment with its live log: the stream (app.js + EventSource) replays and ends.
    await page.goto(f"/deployments/{deployment['id']}")
    await expect(page.locator("#log-state")).to_have_text("Finished: success.")
    await expect(page.locator("#log")).to_contain_text("step two")

    # The wizard: its steps and the host picker's buttons.
    await page.goto("/deployments/new")
    await page.get_by_label("Name").fill("Under CSP")
    await expect(page.get_by_role("button", name="Next: scripts")).to_be_visible()

    # HTMX under the policy: the provider's Test button swaps its result in place.
    await page.goto("/cicd")
    row = page.locator("tr[data-name='Build farm']")
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".check-result")).to_contain_text("Works:")
    assert await watch.violations(page) == []
    assert watch.dialogs == []
    # HTMX added no <style> of its own (it would be refused).
    assert await page.locator("head style").count() == 0
