"""Smoke test of an install (``make smoke-lowest`` runs it with the lowest allowed versions).

Serves Shipyard on the embedded database, signs up, adds a ``local`` host and a repository served
over HTTP on loopback, runs a deployment of its script and waits for success. Run it with the
Python of the environment under test: ``VENV/bin/python -m tests.smoke.lowest``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.smoke.common import cli, serve
from tests.support.git_server import GitFile, GitHttpServer

MARKER = "smoke deployment ran"
FINAL = ("success", "failed", "cancelled", "interrupted")


def check(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


def deploy(base: str, clone_url: str) -> None:
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30) as client:
        account = check(
            client.post(
                "/auth/signup",
                json={
                    "email": "smoke@example.com",
                    "password": "a long smoke-test password",
                    "tenant_name": "Smoke",
                    "full_name": "Smoke Test",
                },
            ),
            201,
        )
        client.headers["Authorization"] = f"Bearer {account['access_token']}"
        host = check(client.post("/hosts", json={"name": "this-box", "type": "local"}), 201)
        repo = check(client.post("/repositories", json={"url": clone_url}), 201)
        catalogue = check(client.get(f"/repositories/{repo['id']}/scripts"), 200)
        script = next(s for s in catalogue["scripts"] if s["path"] == "deploy.sh")
        deployment = check(
            client.post(
                "/deployments",
                json={
                    "name": "smoke",
                    "repository_id": repo["id"],
                    "script_ids": [script["id"]],
                    "host_ids": [host["id"]],
                },
            ),
            201,
        )
        deadline = time.monotonic() + 120
        while deployment["status"] not in FINAL:
            if time.monotonic() > deadline:
                raise SystemExit(f"deployment still {deployment['status']} after 120 s")
            time.sleep(0.5)
            deployment = check(client.get(f"/deployments/{deployment['id']}"), 200)
        logs = check(client.get(f"/deployments/{deployment['id']}/logs"), 200)
        lines = [str(item["message"]) for item in logs["items"]]
        if deployment["status"] != "success" or not any(MARKER in line for line in lines):
            raise SystemExit(f"deployment {deployment['status']}:\n" + "\n".join(lines))


def main() -> None:
    bin_dir = Path(sys.executable).parent
    shipyard = bin_dir / "shipyard"
    print(cli(shipyard, "--version").strip())
    for group in ("db", "serve"):  # typer crashes showed in these (a --x/--no-x flag)
        cli(shipyard, group, "--help")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sy-smoke-git-") as root:
        git_server = GitHttpServer(Path(root)).start()
        try:
            repo = git_server.create_repo(
                "app",
                {"deploy.sh": GitFile(f"#!/bin/sh\necho '{MARKER}' on $(hostname)\n", True)},
                public=True,
            )
            with serve(shipyard, SHIPYARD_ALLOW_LOCAL_HOSTS="true") as base:
                deploy(base, repo.clone_url)
        finally:
            git_server.stop()
    print(
        f"smoke: sign-up, local host, deployment from git: success in {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
