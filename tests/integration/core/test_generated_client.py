"""A client generated from the served OpenAPI description, by a third-party generator, works.

openapi-python-client (pinned; installed by `make pytest` in a venv of its own) must generate
without a single warning, and the code it writes must carry a whole flow against a running
Shipyard: sign up, a host, a repository by URL, a template, launch, wait, the logs.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.fixtures.deployments import WorkerControl
from tests.support.git_server import GitFile, GitHttpServer
from tests.support.live_server import serve
from tests.support.sshd import SSHFleet

REPO_ROOT = Path(__file__).resolve().parents[3]
GENERATOR = (
    REPO_ROOT / "build" / "tools" / "openapi-python-client" / "bin" / "openapi-python-client"
)
PACKAGE = "shipyard_generated_client"
FINAL = {"success", "failed", "partial", "cancelled", "interrupted"}


@pytest.fixture
def generated_path(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def generate(base_url: str, into: Path) -> str:
    """Run the generator on the served description; its whole output."""
    assert GENERATOR.exists(), "run `make pytest` (it installs the generator in build/tools)"
    # Fetched here, not by the generator: its own fetch gives up after 5 s, and the first
    # description a loaded CI machine builds under coverage can take longer.
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        served = await http.get("/openapi.json")
    assert served.status_code == 200, served.text[:500]
    description = into / "openapi.json"
    description.write_bytes(served.content)
    process = await asyncio.create_subprocess_exec(
        str(GENERATOR),
        "generate",
        "--path",
        str(description),
        "--meta",
        "none",
        "--output-path",
        str(into / PACKAGE),
        cwd=into,
        # Its post-generation hook formats the code with ruff: ours, from this venv.
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_a_generated_client_runs_a_whole_flow(
    db: Database,
    settings: Settings,
    generated_path: Path,
    worker: WorkerControl,
    ssh_fleet: SSHFleet,
    deploy_git: GitHttpServer,
) -> None:
    hosted = deploy_git.create_repo(
        f"generated-{uuid.uuid4().hex[:8]}",
        {
            "hello.sh": GitFile(
                '#!/bin/sh\necho "hello from the generated client on $SHIPYARD_HOST"\n'
            )
        },
        public=True,
    )
    (endpoint,) = ssh_fleet.ensure(1)
    async with serve(db, settings) as base_url:
        output = await generate(base_url, generated_path)
        assert "warning" not in output.lower(), output

        client_module = module("client")
        models = module("models")
        call = {
            name: module(f"api.{tag}.{name}")
            for tag, name in (
                ("accounts", "auth_signup"),
                ("hosts", "hosts_create"),
                ("git", "repositories_add"),
                ("git", "repositories_list_scripts"),
                ("templates", "templates_create"),
                ("templates", "templates_launch"),
                ("deployments", "deployments_get"),
                ("deployments", "deployments_list_logs"),
            )
        }
        anonymous = client_module.Client(base_url=base_url, raise_on_unexpected_status=True)
        try:
            await flow(call, models, client_module, anonymous, base_url, endpoint, hosted, worker)
        finally:
            # The generated clients keep pooled connections until closed.
            await anonymous.get_async_httpx_client().aclose()


async def flow(
    call: dict[str, Any],
    models: Any,
    client_module: Any,
    anonymous: Any,
    base_url: str,
    endpoint: Any,
    hosted: Any,
    worker: WorkerControl,
) -> None:
    """Sign up, a host, a repository by URL, a template, launch, wait, the logs."""
    signed_up = await call["auth_signup"].asyncio_detailed(
        client=anonymous,
        body=models.SignupRequest.from_dict(
            {
                "email": f"generated-{uuid.uuid4().hex[:8]}@example.com",
                "password": "a long enough password 1",
                "tenant_name": "Generated",
            }
        ),
    )
    assert signed_up.status_code == 201, signed_up.content
    token = signed_up.parsed.access_token
    api = client_module.AuthenticatedClient(
        base_url=base_url, token=token, raise_on_unexpected_status=True
    )
    try:
        host = await call["hosts_create"].asyncio_detailed(
            client=api,
            body=models.HostCreate.from_dict(
                {
                    "name": "generated-host",
                    "ip": endpoint.host,
                    "port": endpoint.port,
                    "user": endpoint.user,
                    "password": endpoint.password,
                }
            ),
        )
        assert host.status_code == 201, host.content
        repository = await call["repositories_add"].asyncio_detailed(
            client=api, body=models.RepositoryCreate.from_dict({"url": hosted.clone_url})
        )
        assert repository.status_code == 201, repository.content
        catalogue = await call["repositories_list_scripts"].asyncio_detailed(
            repository.parsed.id, client=api
        )
        scripts = {script.path: script.id for script in catalogue.parsed.scripts}
        template = await call["templates_create"].asyncio_detailed(
            client=api,
            body=models.TemplateCreate.from_dict(
                {
                    "name": "generated",
                    "repository_id": str(repository.parsed.id),
                    "scripts": [{"script_id": str(scripts["hello.sh"])}],
                    "target": {"host_ids": [str(host.parsed.id)]},
                }
            ),
        )
        assert template.status_code == 201, template.content

        worker.start()
        launched = await call["templates_launch"].asyncio_detailed(
            template.parsed.id, client=api, body=models.LaunchRequest.from_dict({})
        )
        assert launched.status_code == 201, launched.content
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            read = await call["deployments_get"].asyncio_detailed(launched.parsed.id, client=api)
            status = read.parsed.status
            status = getattr(status, "value", status)
            if status in FINAL:
                break
            await asyncio.sleep(0.3)
        assert status == "success"
        logs = await call["deployments_list_logs"].asyncio_detailed(launched.parsed.id, client=api)
        assert logs.status_code == 200
        messages = [line.message for line in logs.parsed.items]
        assert any(
            "hello from the generated client on generated-host" in message for message in messages
        ), messages
    finally:
        await api.get_async_httpx_client().aclose()
