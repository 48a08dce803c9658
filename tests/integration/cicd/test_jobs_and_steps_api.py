"""Job catalogue and CI/CD step records through the API; parameter validation of steps."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.cicd.models import CicdJob
from shipyard.cicd.schemas import CicdStepRequest
from shipyard.db import Database
from shipyard.errors import ValidationFailed
from tests.builders.cicd import CiBuilder
from tests.fakes.jenkins import FakeJenkins, Param
from tests.fixtures.cicd import jenkins_body
from tests.support.api import Account, add_member, error_fields

PARAMS = [
    Param("VERSION", "string", default="1.0"),
    Param("DRY_RUN", "boolean", default=False),
    Param("REGION", "choice", choices=["eu", "us"]),
    Param("TOKEN", "password"),
]


@pytest.fixture
async def catalogue(ci: CiBuilder, jenkins_fake: FakeJenkins) -> dict[str, dict[str, Any]]:
    """Three Jenkins jobs, synced: path -> the job's JSON with its provider's id."""
    jenkins_fake.add_job("team/app/deploy", params=PARAMS, description="Ship the app")
    jenkins_fake.add_job("team/app/rollback", description="Undo")
    jenkins_fake.add_job("infra/terraform")
    provider = await ci.provider(jenkins_body(jenkins_fake))
    return {job["path"]: {**job, "provider_id": provider["id"]} for job in await ci.jobs(provider)}


async def test_jobs_are_listed_filtered_searched_and_paged(
    client: httpx.AsyncClient,
    ci: CiBuilder,
    admin: Account,
    catalogue: dict[str, dict[str, Any]],
) -> None:
    jobs = catalogue
    other = FakeJenkins().start()
    try:
        other.add_job("elsewhere")
        await ci.jobs(await ci.provider(jenkins_body(other, name="second")))
    finally:
        other.stop()

    everything = await client.get("/api/v1/cicd-jobs", headers=admin.headers)
    assert everything.status_code == 200
    assert len(everything.json()["items"]) == 4
    provider_id = jobs["team/app/deploy"]["provider_id"]
    mine = await client.get(
        "/api/v1/cicd-jobs", headers=admin.headers, params={"provider_id": provider_id}
    )
    assert {j["path"] for j in mine.json()["items"]} == set(jobs)
    found = await client.get("/api/v1/cicd-jobs", headers=admin.headers, params={"search": "APP/"})
    assert {j["path"] for j in found.json()["items"]} == {"team/app/deploy", "team/app/rollback"}
    by_description = await client.get(
        "/api/v1/cicd-jobs", headers=admin.headers, params={"search": "undo"}
    )
    assert [j["path"] for j in by_description.json()["items"]] == ["team/app/rollback"]
    literal = await client.get("/api/v1/cicd-jobs", headers=admin.headers, params={"search": "%"})
    assert literal.json()["items"] == []
    page = await client.get("/api/v1/cicd-jobs", headers=admin.headers, params={"limit": 3})
    rest = await client.get(
        "/api/v1/cicd-jobs",
        headers=admin.headers,
        params={"limit": 3, "cursor": page.json()["next_cursor"]},
    )
    ids = [j["id"] for j in page.json()["items"] + rest.json()["items"]]
    assert len(ids) == len(set(ids)) == 4
    one = await client.get(
        f"/api/v1/cicd-jobs/{jobs['team/app/deploy']['id']}", headers=admin.headers
    )
    assert one.json()["description"] == "Ship the app"
    assert [p["type"] for p in one.json()["parameters"]] == [
        "string",
        "boolean",
        "choice",
        "password",
    ]
    bad = await client.get(
        "/api/v1/cicd-jobs", headers=admin.headers, params={"provider_id": "nope"}
    )
    assert bad.status_code == 422 and error_fields(bad) == ["provider_id"]
    long = await client.get(
        "/api/v1/cicd-jobs", headers=admin.headers, params={"search": "x" * 201}
    )
    assert long.status_code == 422 and error_fields(long) == ["search"]


async def test_jobs_of_another_tenant_are_invisible(
    client: httpx.AsyncClient,
    ci: CiBuilder,
    admin: Account,
    other_admin: Account,
    catalogue: dict[str, dict[str, Any]],
) -> None:
    jobs = catalogue
    job_id = jobs["team/app/deploy"]["id"]
    assert (await client.get("/api/v1/cicd-jobs", headers=other_admin.headers)).json()[
        "items"
    ] == []
    assert (
        await client.get(f"/api/v1/cicd-jobs/{job_id}", headers=other_admin.headers)
    ).status_code == 404
    viewer = await add_member(client, admin, "viewer")
    assert (
        await client.get(f"/api/v1/cicd-jobs/{job_id}", headers=viewer.headers)
    ).status_code == 200
    # A step in another tenant cannot name this job.
    deployment_id = await ci.deployment(account=other_admin)
    with pytest.raises(ValidationFailed) as caught:
        await ci.prepare(
            deployment_id, CicdStepRequest(cicd_job_id=UUID(job_id)), account=other_admin
        )
    assert caught.value.field == "cicd_steps.0.cicd_job_id"


BAD_VALUES = [
    (
        {"NOPE": "1"},
        "NOPE",
        "unknown parameter 'NOPE' (this job takes: DRY_RUN, REGION, TOKEN, VERSION)",
    ),
    ({"DRY_RUN": "maybe"}, "DRY_RUN", "parameter 'DRY_RUN' must be a boolean (true or false)"),
    ({"VERSION": 3}, "VERSION", "parameter 'VERSION' must be a string"),
    ({"REGION": "mars"}, "REGION", "parameter 'REGION' must be one of 'eu', 'us'"),
]


async def test_step_parameters_are_checked_against_the_job(
    ci: CiBuilder,
    catalogue: dict[str, dict[str, Any]],
) -> None:
    jobs = catalogue
    deployment_id = await ci.deployment()
    for values, field, message in BAD_VALUES:
        with pytest.raises(ValidationFailed) as caught:
            await ci.prepare(
                deployment_id,
                CicdStepRequest(cicd_job_id=UUID(jobs["team/app/rollback"]["id"])),
                CicdStepRequest(cicd_job_id=UUID(jobs["team/app/deploy"]["id"]), parameters=values),
            )
        assert caught.value.field == f"cicd_steps.1.parameters.{field}"
        assert caught.value.message == message


async def test_deployment_api_refuses_bad_step_parameters_naming_the_field(
    client: httpx.AsyncClient,
    admin: Account,
    catalogue: dict[str, dict[str, Any]],
) -> None:
    jobs = catalogue
    response = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={
            "name": "ship",
            "cicd_steps": [
                {"cicd_job_id": jobs["team/app/deploy"]["id"], "parameters": {"REGION": "mars"}}
            ],
        },
    )
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["cicd_steps.0.parameters.REGION"]
    unknown = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={
            "name": "ship",
            "cicd_steps": [{"cicd_job_id": "00000000-0000-0000-0000-000000000000"}],
        },
    )
    assert unknown.status_code == 422
    assert error_fields(unknown) == ["cicd_steps.0.cicd_job_id"]


async def test_step_records_show_live_status_and_mask_passwords(
    client: httpx.AsyncClient,
    db: Database,
    ci: CiBuilder,
    admin: Account,
    other_admin: Account,
    catalogue: dict[str, dict[str, Any]],
) -> None:
    jobs = catalogue
    deployment_id = await ci.deployment()
    first = await ci.step(
        jobs["team/app/deploy"]["id"],
        {"REGION": "us", "TOKEN": "tok-123456", "DRY_RUN": "true"},
        deployment_id=deployment_id,
    )
    await ci.prepare(
        deployment_id,
        CicdStepRequest(cicd_job_id=UUID(jobs["team/app/rollback"]["id"]), stage="after"),
    )

    listed = await client.get(
        f"/api/v1/deployments/{deployment_id}/cicd-mappings", headers=admin.headers
    )
    assert listed.status_code == 200
    steps = listed.json()
    assert [(s["job_path"], s["stage"], s["status"]) for s in steps] == [
        ("team/app/deploy", "before", "pending"),
        ("team/app/rollback", "after", "pending"),
    ]
    assert steps[0]["parameters"] == {
        "REGION": "us",
        "TOKEN": "***",
        "DRY_RUN": True,
        "VERSION": "1.0",
    }
    assert "tok-123456" not in listed.text
    assert steps[0]["provider_type"] == "jenkins"

    one = await client.get(f"/api/v1/cicd-mappings/{first}", headers=admin.headers)
    assert one.status_code == 200 and one.json()["build_number"] is None
    viewer = await add_member(client, admin, "viewer")
    assert (
        await client.get(f"/api/v1/cicd-mappings/{first}", headers=viewer.headers)
    ).status_code == 200
    assert (
        await client.get(f"/api/v1/cicd-mappings/{first}", headers=other_admin.headers)
    ).status_code == 404
    foreign = await client.get(
        f"/api/v1/deployments/{deployment_id}/cicd-mappings", headers=other_admin.headers
    )
    assert foreign.status_code == 404
    # Deleting the job keeps the step's record, without a job.
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        await session.delete(await session.get(CicdJob, UUID(jobs["team/app/deploy"]["id"])))
    kept = (await client.get(f"/api/v1/cicd-mappings/{first}", headers=admin.headers)).json()
    assert kept["cicd_job_id"] is None and kept["job_name"] is None and kept["status"] == "pending"
