"""A CI server's build link is shown only when it is http(s) under the provider's own address."""

from __future__ import annotations

import asyncio
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update

from shipyard.cicd.models import DeploymentCicdMapping
from shipyard.cicd.steps import run_step
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.outbound.links import link_under
from shipyard.web.templating import safe_href
from tests.fakes.jenkins import FakeJenkins
from tests.fixtures.cicd import EmitRecorder, create_provider, jenkins_body, new_step, sync_jobs
from tests.support.api import Account
from tests.support.browser_http import browser_client

HOSTILE_LINKS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https://evil.example/job/deploy/1/",
    "java\tscript:alert(1)",
]


@pytest.mark.parametrize("link", HOSTILE_LINKS)
async def test_a_hostile_jenkins_build_link_is_replaced_by_the_real_build_page(
    client: httpx.AsyncClient,
    db: Database,
    cicd_settings: Settings,
    admin: Account,
    jenkins_fake: FakeJenkins,
    link: str,
) -> None:
    jenkins_fake.add_job("deploy")
    jenkins_fake.build_link = link
    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))
    jobs = await sync_jobs(db, cicd_settings, admin, provider["id"])
    mapping_id = await new_step(db, admin.tenant_id, jobs[0]["id"])
    emit = EmitRecorder()
    status = await asyncio.wait_for(
        run_step(
            db=db,
            settings=cicd_settings,
            mapping_id=mapping_id,
            tenant_id=UUID(admin.tenant_id),
            emit=emit,
            should_cancel=lambda: False,
        ),
        timeout=30,
    )
    assert status == "success"
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        mapping = await session.get(DeploymentCicdMapping, mapping_id)
        assert mapping is not None
    # What Jenkins said is not stored; the build page under Jenkins's own address is.
    assert mapping.build_url == f"{jenkins_fake.url}/job/deploy/1/"
    assert not any(link in line for _, line in emit.lines)


async def test_a_stored_hostile_link_is_neither_returned_nor_rendered(
    client: httpx.AsyncClient,
    db: Database,
    cicd_settings: Settings,
    admin: Account,
    jenkins_fake: FakeJenkins,
) -> None:
    """A row written before links were checked (or by anything else) is checked on the way out."""
    jenkins_fake.add_job("deploy")
    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))
    jobs = await sync_jobs(db, cicd_settings, admin, provider["id"])
    mapping_id = await new_step(db, admin.tenant_id, jobs[0]["id"])
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        deployment_id = (await session.get(DeploymentCicdMapping, mapping_id)).deployment_id  # type: ignore[union-attr]
    for link, shown in [
        ("javascript:alert(1)", None),
        ("https://evil.example/job/deploy/7/", None),
        (f"{jenkins_fake.url}/job/deploy/7/", f"{jenkins_fake.url}/job/deploy/7/"),
    ]:
        async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
            await session.execute(
                update(DeploymentCicdMapping)
                .where(DeploymentCicdMapping.id == mapping_id)
                .values(build_url=link, build_number="7")
            )
        listed = await client.get(
            f"/api/v1/deployments/{deployment_id}/cicd-mappings", headers=admin.headers
        )
        assert listed.status_code == 200, listed.text
        assert [step["build_url"] for step in listed.json()] == [shown]
        async with browser_client(client, admin) as browser:
            page = await browser.get(f"/deployments/{deployment_id}")
        assert page.status_code == 200
        assert "javascript:" not in page.text and "evil.example" not in page.text
        if shown:
            assert f'href="{shown}"' in page.text
        else:
            assert "#7" not in page.text and ">7<" in page.text


def test_safe_href_allows_only_http_links_and_only_under_the_given_base() -> None:
    base = "https://ci.example.com:8443/jenkins/"
    assert safe_href("https://ci.example.com:8443/jenkins/job/a/1/", base)
    assert safe_href("https://CI.example.com:8443/jenkins/job/a/1/", base)
    for refused in [
        "javascript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "https://ci.example.com/jenkins/job/a/1/",  # another port
        "http://ci.example.com:8443/jenkins/job/a/1/",  # another scheme
        "https://ci.example.com:8443/other/job/a/1/",  # outside the base path
        "https://ci.example.com:8443/jenkinsx/",  # a sibling sharing the prefix
        "https://ci.example.com:8443/jenkins/../admin",
        "https://ci.example.com:8443/jenkins/%2e%2e/admin",
        "https://ci.example.com:8443\\@evil.example/jenkins/",
        "https://user:pass@ci.example.com:8443/jenkins/",
        "https://evil.example/jenkins/",
    ]:
        assert safe_href(refused, base) == "", refused
    # Without a base: any http(s) URL; Shipyard's own paths pass; protocol-relative ones do not.
    assert safe_href("http://example.org/x") == "http://example.org/x"
    assert safe_href("/hosts") == "/hosts"
    assert safe_href("//evil.example/") == ""
    assert safe_href("javascript:alert(1)") == ""
    assert link_under("https://github.com/acme/app/actions/runs/1", "https://github.com/acme/app/")
    assert not link_under(
        "https://github.com/other/app/actions/runs/1", "https://github.com/acme/app/"
    )
