"""GitHub Actions over the REST API: workflows with ``workflow_dispatch`` are the jobs."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from shipyard.cicd.parameters import parameter
from shipyard.cicd.providers.base import (
    BuildState,
    BuildStatus,
    CicdClient,
    JobRef,
    RemoteJob,
)
from shipyard.outbound.api import ProviderApi, RetryPolicy, segment, segments
from shipyard.outbound.errors import UpstreamNotFound

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
MAX_PAGES = 50
CONTENT_CONCURRENCY = 8
_QUEUED = frozenset({"queued", "waiting", "requested", "pending"})
_CONCLUSIONS: dict[str, BuildStatus] = {
    "success": "success",
    "neutral": "success",
    "cancelled": "cancelled",
}
_INPUT_TYPES = {"string": "string", "boolean": "boolean", "choice": "choice", "number": "number"}
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


def dispatch_inputs(workflow_yaml: str) -> dict[str, Any] | None:
    """The ``workflow_dispatch`` inputs of a workflow file; None when it cannot be dispatched."""
    document = yaml.safe_load(workflow_yaml)
    if not isinstance(document, dict):
        return None
    # YAML 1.1 reads a bare `on` key as the boolean true.
    triggers = document.get("on", document.get(True))
    if isinstance(triggers, str):
        return {} if triggers == "workflow_dispatch" else None
    if isinstance(triggers, list):
        return {} if "workflow_dispatch" in triggers else None
    if isinstance(triggers, dict) and "workflow_dispatch" in triggers:
        config = triggers["workflow_dispatch"] or {}
        inputs = config.get("inputs") if isinstance(config, dict) else None
        return inputs if isinstance(inputs, dict) else {}
    return None


def normalise_inputs(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for name, spec in inputs.items():
        spec = spec if isinstance(spec, dict) else {}
        kind = _INPUT_TYPES.get(str(spec.get("type", "string")), "string")
        default = spec.get("default")
        if kind == "boolean" and isinstance(default, str):
            default = default.lower() == "true"
        elif kind in {"string", "choice"} and default is not None:
            default = str(default)
        options = spec.get("options")
        required = bool(spec.get("required", False))
        result.append(
            parameter(
                str(name),
                kind,
                default=default,
                choices=[str(option) for option in options]
                if kind == "choice" and options
                else None,
                description=spec.get("description"),
                required=required,
                # A required input without a default must be given: GitHub refuses the dispatch
                # otherwise, and guessing the first option could deploy the wrong thing.
                first_choice_default=not required,
            )
        )
    return result


def input_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _github_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def web_origin(api_url: str) -> str:
    """The web origin of a GitHub API: api.github.com -> github.com (and api.<x>.ghe.com ->
    <x>.ghe.com); GitHub Enterprise Server, ``https://host/api/v3`` -> ``https://host``."""
    parts = urlsplit(api_url)
    host = parts.netloc
    if parts.path.strip("/") == "" and host.lower().startswith("api."):
        host = host[len("api.") :]
    return f"{parts.scheme}://{host}"


class GithubActionsClient(CicdClient):
    label = "GitHub Actions"
    claim_key = "run_id"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str | None,
        repository: str,
        token: str,
        ref: str | None,
        retry_seconds: float,
        timeout: float | None = None,
    ) -> None:
        self._token = token
        self.repository = repository
        self.link_base = f"{web_origin(api_url or DEFAULT_API_URL)}/{repository.strip('/')}/"
        self.ref = ref
        self.http = http
        self.api = ProviderApi(
            http,
            label=self.label,
            base_url=api_url or DEFAULT_API_URL,
            retry=RetryPolicy(retry_seconds),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            secrets=(token,),
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def _repo(self, suffix: str = "") -> str:
        return f"repos/{segments(self.repository)}{suffix}"

    async def check(self) -> str:
        body = (await self.api.request("GET", self._repo())).json()
        return f"repository {body.get('full_name', self.repository)} is reachable"

    async def _pages(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, Any] | None = {**params, "per_page": 100}
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = await self.api.request("GET", url, params=query)
            items.extend(response.json().get(key) or [])
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            # The next link carries every query parameter itself.
            url, query = (match.group(1), None) if match else (None, None)
        return items

    async def list_jobs(self) -> list[RemoteJob]:
        workflows = [
            workflow
            for workflow in await self._pages(self._repo("/actions/workflows"), "workflows", {})
            if workflow.get("state") == "active"
        ]
        # One file read per workflow: a few at a time, in the listing's order.
        gate = asyncio.Semaphore(CONTENT_CONCURRENCY)

        async def read(workflow: dict[str, Any]) -> RemoteJob | None:
            async with gate:
                return await self._job(workflow)

        found = await asyncio.gather(*(read(workflow) for workflow in workflows))
        return [job for job in found if job is not None]

    async def _job(self, workflow: dict[str, Any]) -> RemoteJob | None:
        path = str(workflow.get("path", ""))
        try:
            content = await self.api.request("GET", self._repo(f"/contents/{segments(path)}"))
            raw = base64.b64decode(content.json().get("content", "")).decode()
            inputs = dispatch_inputs(raw)
        except UpstreamNotFound:
            return None
        except (ValueError, yaml.YAMLError) as exc:
            logger.warning("skipping workflow %s: not readable (%s)", path, type(exc).__name__)
            return None
        if inputs is None:
            return None
        return RemoteJob(
            external_id=str(workflow["id"]),
            name=str(workflow.get("name") or path),
            path=path,
            description=f"{self.repository}: {path}",
            parameters=normalise_inputs(inputs),
        )

    async def _ref(self) -> str:
        if self.ref:
            return self.ref
        body = (await self.api.request("GET", self._repo())).json()
        return str(body.get("default_branch") or "main")

    async def trigger(self, job: JobRef, parameters: dict[str, Any]) -> dict[str, Any]:
        ref = await self._ref()
        # GitHub's `created` filter has second precision; allow for clock skew between us and it.
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        await self.api.request(
            "POST",
            self._repo(f"/actions/workflows/{segment(job.external_id)}/dispatches"),
            ok=(204,),
            json={"ref": ref, "inputs": {k: input_value(v) for k, v in parameters.items()}},
            idempotent=False,
        )
        return {
            "workflow_id": job.external_id,
            "ref": ref,
            "dispatched_at": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "queued_at": time.time(),
        }

    async def _find_run(self, tracking: dict[str, Any]) -> dict[str, Any] | None:
        response = await self.api.request(
            "GET",
            self._repo(f"/actions/workflows/{segment(str(tracking['workflow_id']))}/runs"),
            params={
                "event": "workflow_dispatch",
                "branch": tracking["ref"],
                "created": f">={tracking['dispatched_at']}",
                "per_page": 100,
            },
        )
        claimed = {str(run_id) for run_id in tracking.get("claimed", [])}
        runs = [
            run
            for run in response.json().get("workflow_runs") or []
            if str(run.get("id")) not in claimed
        ]
        runs.sort(key=lambda run: (_github_time(str(run["created_at"])), int(run["id"])))
        return runs[0] if runs else None

    async def poll(self, tracking: dict[str, Any]) -> BuildState:
        if "run_id" not in tracking:
            found = await self._find_run(tracking)
            if found is None:
                return BuildState("queued", detail="waiting for GitHub to create the workflow run")
            tracking["run_id"] = int(found["id"])
            run = found
        else:
            run = (
                await self.api.request("GET", self._repo(f"/actions/runs/{tracking['run_id']}"))
            ).json()
        number, url = str(run.get("run_number") or run["id"]), run.get("html_url")
        status = str(run.get("status"))
        if status in _QUEUED:
            return BuildState("queued", number=number, url=url, detail=f"the run is {status}")
        if status != "completed":
            return BuildState("running", number=number, url=url)
        conclusion = str(run.get("conclusion"))
        return BuildState(
            _CONCLUSIONS.get(conclusion, "failed"),
            number=number,
            url=url,
            detail=f"GitHub Actions conclusion: {conclusion}",
        )

    async def console(self, tracking: dict[str, Any]) -> str:
        """Job and step progress as it happens, then each finished job's log."""
        if "run_id" not in tracking:
            return ""
        jobs = await self._pages(self._repo(f"/actions/runs/{tracking['run_id']}/jobs"), "jobs", {})
        seen: dict[str, dict[str, Any]] = tracking.setdefault("jobs", {})
        lines: list[str] = []
        for job in sorted(jobs, key=lambda j: int(j["id"])):
            state = seen.setdefault(
                str(job["id"]), {"status": "queued", "steps": 0, "logged": False}
            )
            name = job.get("name", job["id"])
            if job.get("status") != "queued" and state["status"] == "queued":
                lines.append(f"== job {name} started")
                state["status"] = "in_progress"
            steps = [s for s in job.get("steps") or [] if s.get("status") == "completed"]
            for step in steps[state["steps"] :]:
                lines.append(f"-- {name}: step '{step.get('name')}' {step.get('conclusion')}")
            state["steps"] = max(state["steps"], len(steps))
            if job.get("status") == "completed" and not state["logged"]:
                lines.extend(await self._job_log(int(job["id"])))
                lines.append(f"== job {name} finished: {job.get('conclusion')}")
                state["status"] = "completed"
                state["logged"] = True
        return "".join(f"{line}\n" for line in lines)

    async def _job_log(self, job_id: int) -> list[str]:
        response = await self.api.request(
            "GET", self._repo(f"/actions/jobs/{job_id}/logs"), ok=(200, 302), passthrough=(404, 410)
        )
        if response.status_code in {404, 410}:
            return [f"(the log of job {job_id} is not available)"]
        if response.status_code == 302:
            # A short-lived signed URL on another host: fetched without our token.
            try:
                download = await self.http.get(response.headers["location"], follow_redirects=True)
            except httpx.TransportError:
                return [f"(the log of job {job_id} could not be downloaded)"]
            if download.status_code != 200:
                return [
                    f"(the log of job {job_id} could not be downloaded: HTTP {download.status_code})"
                ]
            text = download.text
        else:
            text = response.text
        return [_LOG_TIMESTAMP.sub("", line) for line in text.splitlines()]

    async def cancel(self, tracking: dict[str, Any]) -> bool:
        if "run_id" not in tracking:
            return False
        await self.api.request(
            "POST",
            self._repo(f"/actions/runs/{tracking['run_id']}/cancel"),
            ok=(202,),
            passthrough=(409,),
        )
        return True
