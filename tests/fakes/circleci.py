"""A CircleCI API v2 imitation following its documentation.

Covers: ``GET /me``, ``GET /project/{slug}``, ``GET/POST /project/{slug}/pipeline`` (trigger
answers 201 with ``id``, ``state``, ``number``, ``created_at``), ``POST
/project/{slug}/pipeline/run`` (GitHub App projects: ``definition_id``, ``config``/``checkout``
branch; the legacy trigger is refused for them), approval jobs holding a workflow ``on_hold``, ``GET /pipeline/{id}``,
``/pipeline/{id}/config`` (the config ``source``), ``/pipeline/{id}/workflow``,
``/workflow/{id}/job``, ``POST /workflow/{id}/cancel`` (202 ``{"message": "Accepted."}``).
``Circle-Token`` authentication; errors are ``{"message": ...}``. Lists carry
``next_page_token``. Parameters that the config does not declare, or of the wrong type,
make the pipeline ``errored`` with ``errors`` as CircleCI does.

Pipelines advance deterministically: each ``GET /pipeline/{id}`` is one tick (queued ticks with no
workflow yet, then one job finishes per tick).
"""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from tests.fakes.cicd_common import FakeServer, Reply, Request
from tests.support import canary

PREFIX = "/api/v2"
SLUG = r"(?P<slug>[^/]+/[^/]+/[^/]+)"
_numbers = itertools.count(1)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class WorkflowSpec:
    name: str
    # (job name, final status: success | failed | approval). An approval job holds the
    # workflow "on_hold" until FakeCircleCI.approve(); it then counts as a success.
    jobs: list[tuple[str, str]]


@dataclass
class PipelineScript:
    workflows: list[WorkflowSpec]
    queue_ticks: int = 1
    hold: bool = False


@dataclass
class Workflow:
    id: str
    spec: WorkflowSpec
    done: int = 0
    cancelled: bool = False
    approved: bool = False
    job_ids: list[str] = field(default_factory=list)

    def job_statuses(self, hold: bool) -> list[str]:
        statuses = []
        failed = False
        for index, (_name, final) in enumerate(self.spec.jobs):
            if failed:
                statuses.append("not_run")
            elif index < self.done:
                statuses.append("success" if final == "approval" else final)
                failed = final == "failed"
            elif self.cancelled:
                statuses.append("canceled")
            elif index == self.done:
                statuses.append("on_hold" if final == "approval" else "running")
            else:
                statuses.append("blocked")
        return statuses

    def status(self, hold: bool) -> str:
        statuses = self.job_statuses(hold)
        if "failed" in statuses:
            return "failed"
        if self.cancelled:
            return "canceled"
        if "on_hold" in statuses:
            return "on_hold"
        if self.done >= len(self.spec.jobs) and not hold:
            return "success"
        return "running"


@dataclass
class Pipeline:
    id: str
    number: int
    project: Project
    branch: str
    parameters: dict[str, Any]
    script: PipelineScript
    created: float
    queue_left: int
    errors: list[dict[str, str]] = field(default_factory=list)
    workflows: list[Workflow] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "errored" if self.errors else "created"

    def tick(self) -> None:
        if self.errors:
            return
        if self.queue_left > 0:
            self.queue_left -= 1
            if self.queue_left == 0:
                self._create_workflows()
            return
        if not self.workflows:
            self._create_workflows()
            return
        for workflow in self.workflows:
            # A workflow on hold does not move until approved.
            if workflow.status(self.script.hold) == "running" and workflow.done < len(
                workflow.spec.jobs
            ):
                workflow.done += 1
                return

    def _create_workflows(self) -> None:
        for spec in self.script.workflows:
            workflow = Workflow(str(uuid.uuid4()), spec)
            workflow.job_ids = [str(uuid.uuid4()) for _ in spec.jobs]
            self.workflows.append(workflow)


@dataclass
class Project:
    slug: str
    name: str
    default_branch: str
    config: str
    branches: set[str]
    pipelines: list[Pipeline] = field(default_factory=list)
    script: Any = None
    queue_ticks: int = 1
    # Set for projects of the CircleCI GitHub App: started only with pipeline/run and this id.
    definition_id: str | None = None


def default_script(parameters: dict[str, Any]) -> PipelineScript:
    return PipelineScript(
        workflows=[WorkflowSpec("build-and-deploy", [("build", "success"), ("deploy", "success")])]
    )


class FakeCircleCI(FakeServer):
    def __init__(self, *, token: str | None = None) -> None:
        super().__init__()
        self.token = canary.remember(token or "CCIPAT_" + secrets.token_hex(20), "CircleCI token")
        self.tokens = {self.token}
        self.projects: dict[str, Project] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.workflows: dict[str, tuple[Pipeline, Workflow]] = {}
        self.route("GET", PREFIX + r"/me", self._me)
        self.route("GET", PREFIX + r"/project/" + SLUG, self._project)
        self.route("GET", PREFIX + r"/project/" + SLUG + r"/pipeline", self._pipelines)
        self.route("POST", PREFIX + r"/project/" + SLUG + r"/pipeline", self._trigger)
        self.route("POST", PREFIX + r"/project/" + SLUG + r"/pipeline/run", self._run)
        self.route("GET", PREFIX + r"/pipeline/(?P<id>[^/]+)", self._pipeline)
        self.route("GET", PREFIX + r"/pipeline/(?P<id>[^/]+)/config", self._config)
        self.route("GET", PREFIX + r"/pipeline/(?P<id>[^/]+)/workflow", self._pipeline_workflows)
        self.route("GET", PREFIX + r"/workflow/(?P<id>[^/]+)", self._workflow)
        self.route("GET", PREFIX + r"/workflow/(?P<id>[^/]+)/job", self._workflow_jobs)
        self.route("POST", PREFIX + r"/workflow/(?P<id>[^/]+)/cancel", self._cancel)

    @property
    def api_url(self) -> str:
        return self.url + PREFIX

    # Set-up helpers -------------------------------------------------------------------

    def add_project(
        self,
        slug: str,
        *,
        config: str,
        default_branch: str = "main",
        script: Any = None,
        queue_ticks: int = 1,
        seed_pipeline: bool = True,
        definition_id: str | None = None,
    ) -> Project:
        """A project; ``seed_pipeline`` records a past pipeline so its config can be read.

        ``definition_id`` makes it a GitHub App project: the legacy trigger is refused and
        ``POST /project/{slug}/pipeline/run`` with that ``definition_id`` starts pipelines.
        """
        with self.lock:
            project = Project(
                slug,
                slug.rsplit("/", 1)[-1],
                default_branch,
                config,
                {default_branch},
                script=script,
                queue_ticks=queue_ticks,
                definition_id=definition_id,
            )
            self.projects[slug] = project
            if seed_pipeline:
                pipeline = self._new_pipeline(project, default_branch, {})
                pipeline.queue_left = 0
                pipeline.workflows = []
            return project

    def approve(self, pipeline_number: int) -> None:
        """Approve every workflow of the pipeline that is on hold."""
        with self.lock:
            for pipeline in self.pipelines.values():
                if pipeline.number != pipeline_number:
                    continue
                for workflow in pipeline.workflows:
                    if workflow.status(pipeline.script.hold) == "on_hold":
                        workflow.approved = True
                        workflow.done += 1

    def revoke(self, token: str | None = None) -> None:
        with self.lock:
            self.tokens.discard(token or self.token)

    # Plumbing -------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Reply | None:
        if request.header("circle-token") not in self.tokens:
            return Reply(401, {"message": "You must log in first."})
        return None

    def not_found(self, request: Request) -> Reply:
        return Reply(404, {"message": "Not found."})

    def _project_of(self, request: Request) -> Project | None:
        assert request.match is not None
        return self.projects.get(request.match.group("slug"))

    def _new_pipeline(self, project: Project, branch: str, parameters: dict[str, Any]) -> Pipeline:
        script = (project.script or default_script)(parameters)
        pipeline = Pipeline(
            id=str(uuid.uuid4()),
            number=next(_numbers),
            project=project,
            branch=branch,
            parameters=parameters,
            script=script,
            created=time.time(),
            queue_left=project.queue_ticks,
        )
        pipeline.errors = self._parameter_errors(project, parameters)
        project.pipelines.append(pipeline)
        self.pipelines[pipeline.id] = pipeline
        return pipeline

    @staticmethod
    def _parameter_errors(project: Project, parameters: dict[str, Any]) -> list[dict[str, str]]:
        declared = (yaml.safe_load(project.config) or {}).get("parameters") or {}
        unexpected = sorted(set(parameters) - set(declared))
        if unexpected:
            return [
                {"type": "config", "message": f"Unexpected argument(s): {', '.join(unexpected)}"}
            ]
        checks = {"string": str, "boolean": bool, "integer": int}
        for name, spec in declared.items():
            if name not in parameters:
                if "default" not in spec:
                    return [{"type": "config", "message": f"Missing required argument(s): {name}"}]
                continue
            value = parameters[name]
            kind = spec.get("type", "string")
            if kind == "enum" and value not in spec.get("enum", []):
                return [
                    {"type": "config", "message": f"{name}: value not in enum {spec.get('enum')}"}
                ]
            expected = checks.get(kind)
            if expected is not None and (
                not isinstance(value, expected) or (expected is int and isinstance(value, bool))
            ):
                return [{"type": "config", "message": f"{name}: expected type {kind}"}]
        return []

    def _pipeline_json(self, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id,
            "errors": pipeline.errors,
            "project_slug": pipeline.project.slug,
            "updated_at": _iso(time.time()),
            "number": pipeline.number,
            "state": pipeline.state,
            "created_at": _iso(pipeline.created),
            "trigger": {
                "type": "api",
                "received_at": _iso(pipeline.created),
                "actor": {"login": "ada"},
            },
            "trigger_parameters": pipeline.parameters,
            "vcs": {
                "provider_name": "GitHub",
                "origin_repository_url": f"https://github.com/{pipeline.project.slug.split('/', 1)[1]}",
                "branch": pipeline.branch,
                "revision": "f454a02b5d10fcccfd7d9dd7608a76d6493a98b4",
            },
        }

    def _workflow_json(self, pipeline: Pipeline, workflow: Workflow) -> dict[str, Any]:
        status = workflow.status(pipeline.script.hold)
        return {
            "pipeline_id": pipeline.id,
            "id": workflow.id,
            "name": workflow.spec.name,
            "project_slug": pipeline.project.slug,
            "status": status,
            "started_by": "5e8f6a2b-0000-0000-0000-000000000000",
            "pipeline_number": pipeline.number,
            "created_at": _iso(pipeline.created),
            "stopped_at": None if status in {"running", "on_hold"} else _iso(time.time()),
        }

    # Routes ---------------------------------------------------------------------------

    def _me(self, request: Request) -> Reply:
        return Reply(
            200, {"id": "5e8f6a2b-0000-0000-0000-000000000000", "login": "ada", "name": "Ada"}
        )

    def _project(self, request: Request) -> Reply:
        project = self._project_of(request)
        if project is None:
            return Reply(404, {"message": "Project not found"})
        org = project.slug.split("/")[1]
        return Reply(
            200,
            {
                "slug": project.slug,
                "name": project.name,
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, project.slug)),
                "organization_name": org,
                "organization_slug": "/".join(project.slug.split("/")[:2]),
                "organization_id": str(uuid.uuid5(uuid.NAMESPACE_URL, org)),
                "vcs_info": {
                    "vcs_url": f"https://github.com/{project.slug.split('/', 1)[1]}",
                    "provider": "GitHub",
                    "default_branch": project.default_branch,
                },
            },
        )

    def _pipelines(self, request: Request) -> Reply:
        project = self._project_of(request)
        if project is None:
            return Reply(404, {"message": "Project not found"})
        branch = request.arg("branch")
        items = [p for p in reversed(project.pipelines) if branch is None or p.branch == branch]
        return Reply(
            200, {"items": [self._pipeline_json(p) for p in items], "next_page_token": None}
        )

    def _trigger(self, request: Request) -> Reply:
        project = self._project_of(request)
        if project is None:
            return Reply(404, {"message": "Project not found"})
        if project.definition_id is not None:
            return Reply(
                400,
                {
                    "message": "This endpoint does not support projects integrated via the "
                    "GitHub App; use POST /api/v2/project/{project-slug}/pipeline/run"
                },
            )
        body = request.json() or {}
        return self._start_pipeline(project, body.get("branch"), body.get("parameters"))

    def _run(self, request: Request) -> Reply:
        """``pipeline/run``: ``definition_id``, ``config``/``checkout`` branch, ``parameters``."""
        project = self._project_of(request)
        if project is None:
            return Reply(404, {"message": "Project not found"})
        body = request.json() or {}
        definition_id = body.get("definition_id")
        if not definition_id:
            return Reply(400, {"message": "definition_id is required"})
        if definition_id != project.definition_id:
            return Reply(404, {"message": "Pipeline definition not found"})
        config = body.get("config") or {}
        checkout = body.get("checkout") or {}
        branch = checkout.get("branch") or config.get("branch")
        return self._start_pipeline(project, branch, body.get("parameters"))

    def _start_pipeline(self, project: Project, branch: str | None, parameters: Any) -> Reply:
        branch = branch or project.default_branch
        if branch not in project.branches:
            return Reply(400, {"message": f"Branch not found: {branch}"})
        parameters = parameters or {}
        if not isinstance(parameters, dict):
            return Reply(400, {"message": "parameters must be an object"})
        pipeline = self._new_pipeline(project, branch, parameters)
        return Reply(
            201,
            {
                "id": pipeline.id,
                "state": "pending",
                "number": pipeline.number,
                "created_at": _iso(pipeline.created),
            },
        )

    def _pipeline_of(self, request: Request) -> Pipeline | None:
        assert request.match is not None
        return self.pipelines.get(request.match.group("id"))

    def _pipeline(self, request: Request) -> Reply:
        pipeline = self._pipeline_of(request)
        if pipeline is None:
            return Reply(404, {"message": "Pipeline not found"})
        pipeline.tick()
        return Reply(200, self._pipeline_json(pipeline))

    def _config(self, request: Request) -> Reply:
        pipeline = self._pipeline_of(request)
        if pipeline is None:
            return Reply(404, {"message": "Pipeline not found"})
        source = pipeline.project.config
        return Reply(
            200,
            {"source": source, "compiled": source, "setup-config": "", "compiled-setup-config": ""},
        )

    def _pipeline_workflows(self, request: Request) -> Reply:
        pipeline = self._pipeline_of(request)
        if pipeline is None:
            return Reply(404, {"message": "Pipeline not found"})
        for workflow in pipeline.workflows:
            self.workflows[workflow.id] = (pipeline, workflow)
        items = [self._workflow_json(pipeline, w) for w in pipeline.workflows]
        return Reply(200, {"items": items, "next_page_token": None})

    def _workflow_of(self, request: Request) -> tuple[Pipeline, Workflow] | None:
        assert request.match is not None
        return self.workflows.get(request.match.group("id"))

    def _workflow(self, request: Request) -> Reply:
        found = self._workflow_of(request)
        if found is None:
            return Reply(404, {"message": "Workflow not found"})
        return Reply(200, self._workflow_json(*found))

    def _workflow_jobs(self, request: Request) -> Reply:
        found = self._workflow_of(request)
        if found is None:
            return Reply(404, {"message": "Workflow not found"})
        pipeline, workflow = found
        statuses = workflow.job_statuses(pipeline.script.hold)
        items: list[dict[str, Any]] = [
            {
                "dependencies": [],
                "job_number": 1000 + index if status not in {"blocked", "not_run"} else None,
                "id": workflow.job_ids[index],
                "started_at": _iso(pipeline.created) if status != "blocked" else None,
                "name": name,
                "project_slug": pipeline.project.slug,
                "status": status,
                "type": "approval" if workflow.spec.jobs[index][1] == "approval" else "build",
                "stopped_at": None
                if status in {"running", "blocked", "on_hold"}
                else _iso(time.time()),
            }
            for index, ((name, _), status) in enumerate(
                zip(workflow.spec.jobs, statuses, strict=True)
            )
        ]
        return Reply(200, {"items": items, "next_page_token": None})

    def _cancel(self, request: Request) -> Reply:
        found = self._workflow_of(request)
        if found is None:
            return Reply(404, {"message": "Workflow not found"})
        _pipeline, workflow = found
        workflow.cancelled = True
        return Reply(202, {"message": "Accepted."})
