"""CircleCI over API v2: each project's pipeline is a job; its workflows decide the result."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import yaml

from shipyard.cicd.parameters import parameter
from shipyard.cicd.providers.base import (
    BuildState,
    CicdClient,
    JobRef,
    RemoteJob,
)
from shipyard.outbound.api import ProviderApi, RetryPolicy, segment, segments
from shipyard.outbound.errors import UpstreamNotFound

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://circleci.com/api/v2"
DEFAULT_APP_URL = "https://app.circleci.com"
_PARAMETER_TYPES = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "enum": "choice",
}
_ACTIVE = frozenset({"running", "failing", "on_hold"})
# Slugs of projects connected through the CircleCI GitHub App (circleci/<org id>/<project id>):
# they are triggered with a pipeline definition, not the legacy trigger endpoint.
GITHUB_APP_SLUG_PREFIX = "circleci/"
_FAILED = frozenset({"failed", "error", "unauthorized", "failing"})
_QUEUED_PIPELINE = frozenset({"created", "pending", "setup-pending", "setup"})


def pipeline_parameters(config_yaml: str) -> list[dict[str, Any]]:
    """Normalised ``parameters:`` of a CircleCI config (pipeline parameters)."""
    document = yaml.safe_load(config_yaml)
    declared = document.get("parameters") if isinstance(document, dict) else None
    if not isinstance(declared, dict):
        return []
    result = []
    for name, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {}
        kind = _PARAMETER_TYPES.get(str(spec.get("type", "string")), "string")
        choices = spec.get("enum") if kind == "choice" else None
        result.append(
            parameter(
                str(name),
                kind,
                default=spec.get("default"),
                choices=[str(choice) for choice in choices] if choices else None,
                description=spec.get("description"),
                required="default" not in spec,
            )
        )
    return result


class CircleCIClient(CicdClient):
    label = "CircleCI"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str | None,
        app_url: str | None,
        project_slugs: list[str],
        token: str,
        branch: str | None,
        retry_seconds: float,
        definition_ids: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self._token = token
        self.project_slugs = project_slugs
        self.branch = branch
        # Project slug -> pipeline definition id, for projects run with pipeline/run.
        self.definition_ids = dict(definition_ids or {})
        self.app_url = (app_url or DEFAULT_APP_URL).rstrip("/")
        # Shipyard builds the pipeline links itself, under the web app's address.
        self.link_base = self.app_url + "/"
        self.api = ProviderApi(
            http,
            label=self.label,
            base_url=api_url or DEFAULT_API_URL,
            retry=RetryPolicy(retry_seconds),
            timeout=timeout,
            headers={"Circle-Token": token, "Accept": "application/json"},
            secrets=(token,),
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    @staticmethod
    def _slug(slug: str) -> str:
        return segments(slug)

    async def check(self) -> str:
        me = (await self.api.request("GET", "me")).json()
        for slug in self.project_slugs:
            await self.api.request("GET", f"project/{self._slug(slug)}")
        who = me.get("login") or me.get("name") or me.get("id")
        return f"authenticated as {who}; projects {', '.join(self.project_slugs)} reachable"

    async def list_jobs(self) -> list[RemoteJob]:
        jobs = []
        for slug in self.project_slugs:
            project = (await self.api.request("GET", f"project/{self._slug(slug)}")).json()
            branch = self.branch or (project.get("vcs_info") or {}).get("default_branch")
            jobs.append(
                RemoteJob(
                    external_id=slug,
                    name=str(project.get("name") or slug),
                    path=slug,
                    description=f"Pipeline of {slug}" + (f" on {branch}" if branch else ""),
                    parameters=await self._parameters(slug, branch),
                )
            )
        return jobs

    async def _parameters(self, slug: str, branch: str | None) -> list[dict[str, Any]]:
        """Parameters declared by the config of the latest pipeline (none before a first run)."""
        params = {"branch": branch} if branch else {}
        pipelines = (
            await self.api.request("GET", f"project/{self._slug(slug)}/pipeline", params=params)
        ).json()
        items = pipelines.get("items") or []
        if not items:
            return []
        try:
            config = (
                await self.api.request("GET", f"pipeline/{segment(str(items[0]['id']))}/config")
            ).json()
            return pipeline_parameters(str(config.get("source") or ""))
        except UpstreamNotFound:
            return []
        except yaml.YAMLError:
            logger.warning("CircleCI config of %s is not valid YAML; no parameters read", slug)
            return []

    async def _branch(self, slug: str) -> str | None:
        if self.branch:
            return self.branch
        project = (await self.api.request("GET", f"project/{self._slug(slug)}")).json()
        branch = (project.get("vcs_info") or {}).get("default_branch")
        return str(branch) if branch else None

    async def trigger(self, job: JobRef, parameters: dict[str, Any]) -> dict[str, Any]:
        slug = job.external_id
        branch = await self._branch(slug)
        definition_id = self.definition_ids.get(slug)
        if definition_id is not None:
            # Projects of the CircleCI GitHub App: the legacy trigger is not available to them.
            body: dict[str, Any] = {"definition_id": definition_id, "parameters": parameters}
            if branch:
                body["config"] = {"branch": branch}
                body["checkout"] = {"branch": branch}
            path = f"project/{self._slug(slug)}/pipeline/run"
        else:
            body = {"parameters": parameters}
            if branch:
                body["branch"] = branch
            path = f"project/{self._slug(slug)}/pipeline"
        response = await self.api.request("POST", path, ok=(200, 201), json=body, idempotent=False)
        pipeline = response.json()
        return {
            "slug": slug,
            "pipeline_id": pipeline["id"],
            "number": int(pipeline["number"]),
            "url": f"{self.app_url}/pipelines/{slug}/{pipeline['number']}",
            "queued_at": time.time(),
        }

    async def _workflows(self, tracking: dict[str, Any]) -> list[dict[str, Any]]:
        body = (
            await self.api.request(
                "GET", f"pipeline/{segment(str(tracking['pipeline_id']))}/workflow"
            )
        ).json()
        items: list[dict[str, Any]] = body.get("items") or []
        return items

    async def poll(self, tracking: dict[str, Any]) -> BuildState:
        number, url = str(tracking["number"]), tracking.get("url")
        pipeline = (
            await self.api.request("GET", f"pipeline/{segment(str(tracking['pipeline_id']))}")
        ).json()
        if pipeline.get("state") == "errored":
            errors = "; ".join(str(error.get("message")) for error in pipeline.get("errors") or [])
            return BuildState(
                "failed", number=number, url=url, detail=f"the pipeline errored: {errors}"
            )
        workflows = await self._workflows(tracking)
        if not workflows:
            state = pipeline.get("state", "created")
            return BuildState("queued", number=number, url=url, detail=f"pipeline is {state}")
        statuses = [str(workflow.get("status")) for workflow in workflows]
        if any(status in {"running", "failing"} for status in statuses):
            return BuildState("running", number=number, url=url)
        if "on_hold" in statuses:
            held = ", ".join(str(w.get("name")) for w in workflows if w.get("status") == "on_hold")
            return BuildState(
                "waiting", number=number, url=url, detail=f"workflow {held} is on hold for approval"
            )
        summary = ", ".join(f"{w.get('name')}: {w.get('status')}" for w in workflows)
        if any(status in _FAILED for status in statuses):
            return BuildState("failed", number=number, url=url, detail=f"workflows {summary}")
        if any(status == "canceled" for status in statuses):
            return BuildState("cancelled", number=number, url=url, detail=f"workflows {summary}")
        if all(status in {"success", "not_run"} for status in statuses):
            return BuildState("success", number=number, url=url, detail=f"workflows {summary}")
        return BuildState("running", number=number, url=url)

    async def console(self, tracking: dict[str, Any]) -> str:
        """Workflow and job transitions as they happen (CircleCI v2 exposes no step output)."""
        seen: dict[str, str] = tracking.setdefault("seen", {})
        lines: list[str] = []
        for workflow in await self._workflows(tracking):
            key, status = f"w:{workflow['id']}", str(workflow.get("status"))
            if seen.get(key) != status:
                lines.append(f"== workflow {workflow.get('name')}: {status}")
                seen[key] = status
            body = (
                await self.api.request("GET", f"workflow/{segment(str(workflow['id']))}/job")
            ).json()
            for job in body.get("items") or []:
                job_key, job_status = f"j:{job['id']}", str(job.get("status"))
                if seen.get(job_key) != job_status:
                    number = f" #{job['job_number']}" if job.get("job_number") else ""
                    lines.append(f"-- job {job.get('name')}{number}: {job_status}")
                    seen[job_key] = job_status
        return "".join(f"{line}\n" for line in lines)

    async def cancel(self, tracking: dict[str, Any]) -> bool:
        workflows = await self._workflows(tracking)
        cancelled = False
        for workflow in workflows:
            if workflow.get("status") in _ACTIVE:
                await self.api.request(
                    "POST",
                    f"workflow/{segment(str(workflow['id']))}/cancel",
                    ok=(200, 202),
                    idempotent=False,
                )
                cancelled = True
        return cancelled
