"""A GitHub REST API imitation for the Actions endpoints, following GitHub's documentation.

Covers: ``GET /repos/{owner}/{repo}``, ``.../contents/{path}`` (base64), workflows listed with
``page``/``per_page`` pagination and ``Link`` headers, ``POST .../dispatches`` answering 204
(422 for a missing ref, unknown or missing required inputs, or a workflow without
``workflow_dispatch``), runs listed with the ``event``, ``branch``, ``status`` and ``created``
filters, a run, its jobs with steps, a job's logs as a 302 to a signed download URL,
``POST .../cancel`` (202; 409 when completed). Authentication with ``Authorization: Bearer`` or
``token``; ``401 Bad credentials`` with GitHub's error body; rate-limit headers everywhere.

Runs advance deterministically: each ``GET`` of a run is one tick (queued ticks first, then one
step completes per tick).
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

from tests.fakes.cicd_common import FakeServer, Reply, Request
from tests.support import canary

DOCS = "https://docs.github.com/rest"
_ids = itertools.count(30433642)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class JobSpec:
    name: str
    steps: list[tuple[str, str]]  # (step name, conclusion)
    log: list[str] = field(default_factory=list)


@dataclass
class RunScript:
    jobs: list[JobSpec]
    queue_ticks: int = 1
    hold: bool = False  # stay in progress after the last step until cancelled


@dataclass
class Workflow:
    id: int
    name: str
    path: str
    content: str
    state: str = "active"
    script: Any = None  # callable(inputs) -> RunScript
    run_number: int = 0
    # Runs it creates stay out of run lists for this many list requests (GitHub's lag).
    visible_after_lists: int = 0


@dataclass
class Run:
    id: int
    workflow: Workflow
    number: int
    ref: str
    inputs: dict[str, Any]
    script: RunScript
    created: float
    visible_after_lists: int = 0
    queue_left: int = 0
    steps_done: int = 0
    cancel_requested: bool = False
    cancelled: bool = False
    job_ids: list[int] = field(default_factory=list)

    def step_states(self) -> list[list[tuple[str, str | None]]]:
        """Per job, per step: (status, conclusion) after ``steps_done`` steps."""
        result = []
        remaining = self.steps_done
        failed = False
        for job in self.script.jobs:
            states: list[tuple[str, str | None]] = []
            for _name, conclusion in job.steps:
                if failed:
                    states.append(("completed", "skipped"))
                elif remaining > 0:
                    states.append(("completed", conclusion))
                    remaining -= 1
                    failed = conclusion == "failure"
                elif self.cancelled:
                    states.append(("completed", "cancelled"))
                else:
                    states.append(("queued", None))
            result.append(states)
        return result

    @property
    def total_steps(self) -> int:
        return sum(len(job.steps) for job in self.script.jobs)

    @property
    def failed(self) -> bool:
        return any(c == "failure" for job in self.step_states() for _, c in job)

    @property
    def status(self) -> str:
        if self.cancelled or self.failed:
            return "completed"
        if self.queue_left > 0:
            return "queued"
        if self.steps_done >= self.total_steps and not self.script.hold:
            return "completed"
        return "in_progress"

    @property
    def conclusion(self) -> str | None:
        if self.status != "completed":
            return None
        if self.cancelled:
            return "cancelled"
        return "failure" if self.failed else "success"

    def tick(self) -> None:
        if self.status == "completed":
            return
        if self.cancel_requested:
            self.cancelled = True
        elif self.queue_left > 0:
            self.queue_left -= 1
        elif self.steps_done < self.total_steps:
            self.steps_done += 1


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    default_branch: str = "main"
    branches: set[str] = field(default_factory=lambda: {"main"})
    workflows: dict[int, Workflow] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def default_script(inputs: dict[str, Any]) -> RunScript:
    log = [f"input {name}={value}" for name, value in sorted(inputs.items())]
    return RunScript(
        jobs=[
            JobSpec(
                "deploy",
                [("Set up job", "success"), ("Run deploy", "success")],
                log=[*log, "deploying", "done"],
            )
        ]
    )


def dispatch_inputs(content: str) -> dict[str, Any] | None:
    import yaml

    document = yaml.safe_load(content) or {}
    triggers = document.get("on", document.get(True))
    if isinstance(triggers, str):
        triggers = {triggers: None}
    elif isinstance(triggers, list):
        triggers = dict.fromkeys(triggers)
    if not isinstance(triggers, dict) or "workflow_dispatch" not in triggers:
        return None
    config = triggers["workflow_dispatch"] or {}
    return dict(config.get("inputs") or {})


class FakeGitHubActions(FakeServer):
    def __init__(self, *, token: str | None = None, login: str = "octo-admin") -> None:
        super().__init__()
        self.token = canary.remember(token or "ghp_" + secrets.token_hex(18), "GitHub token")
        self.tokens: dict[str, str] = {self.token: login}
        self.repos: dict[str, Repo] = {}
        self.jobs: dict[int, tuple[Run, int]] = {}
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        self.route("GET", r"/user", self._user)
        self.route("GET", repo, self._repo)
        self.route("GET", repo + r"/contents/(?P<path>.+)", self._contents)
        self.route("GET", repo + r"/actions/workflows", self._workflows)
        self.route("GET", repo + r"/actions/workflows/(?P<wf>[^/]+)", self._workflow)
        self.route("POST", repo + r"/actions/workflows/(?P<wf>[^/]+)/dispatches", self._dispatch)
        self.route("GET", repo + r"/actions/workflows/(?P<wf>[^/]+)/runs", self._workflow_runs)
        self.route("GET", repo + r"/actions/runs", self._all_runs)
        self.route("GET", repo + r"/actions/runs/(?P<run>\d+)", self._run)
        self.route("GET", repo + r"/actions/runs/(?P<run>\d+)/jobs", self._run_jobs)
        self.route("POST", repo + r"/actions/runs/(?P<run>\d+)/cancel", self._cancel)
        self.route("GET", repo + r"/actions/jobs/(?P<job>\d+)/logs", self._job_logs)
        self.route("GET", r"/_blobs/job-logs/(?P<job>\d+)", self._blob)

    # Set-up helpers -------------------------------------------------------------------

    def add_repo(self, full_name: str, *, default_branch: str = "main") -> Repo:
        owner, name = full_name.split("/")
        repo = Repo(owner, name, next(_ids), default_branch, {default_branch})
        self.repos[full_name] = repo
        return repo

    def add_workflow(
        self,
        full_name: str,
        path: str,
        content: str,
        *,
        name: str | None = None,
        script: Any = None,
    ) -> Workflow:
        with self.lock:
            repo = self.repos[full_name]
            workflow = Workflow(
                next(_ids), name or path.rsplit("/", 1)[-1], path, content, script=script
            )
            repo.workflows[workflow.id] = workflow
            return workflow

    def revoke(self, token: str | None = None) -> None:
        with self.lock:
            self.tokens.pop(token or self.token, None)

    # Plumbing -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
            "X-GitHub-Media-Type": "github.v3; format=json",
        }

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, body, {**self._headers(), **(headers or {})})

    def _error(self, status: int, message: str) -> Reply:
        return self._reply(
            status, {"message": message, "documentation_url": DOCS, "status": str(status)}
        )

    def authenticate(self, request: Request) -> Reply | None:
        if request.path.startswith("/_blobs/"):
            return None
        header = request.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if not value:
            return self._error(401, "Requires authentication")
        if scheme.lower() not in {"bearer", "token"} or value not in self.tokens:
            return self._error(401, "Bad credentials")
        return None

    def not_found(self, request: Request) -> Reply:
        return self._error(404, "Not Found")

    def _repo_of(self, request: Request) -> Repo | None:
        assert request.match is not None
        return self.repos.get(f"{request.match.group('owner')}/{request.match.group('repo')}")

    def _api(self, repo: Repo, suffix: str = "") -> str:
        return f"{self.url}/repos/{repo.full_name}{suffix}"

    def _workflow_of(self, repo: Repo, request: Request) -> Workflow | None:
        assert request.match is not None
        key = unquote(request.match.group("wf"))
        for workflow in repo.workflows.values():
            if key == str(workflow.id) or key == workflow.path.rsplit("/", 1)[-1]:
                return workflow
        return None

    def _page(self, request: Request, items: list[Any], key: str) -> Reply:
        per_page = max(1, min(100, int(request.arg("per_page") or 30)))
        page = max(1, int(request.arg("page") or 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        last = max(1, -(-len(items) // per_page))
        if page < last:
            query = {k: v[-1] for k, v in request.query.items()}

            def link(number: int) -> str:
                return f"{self.url}{request.path}?{urlencode({**query, 'page': number})}"

            headers["Link"] = f'<{link(page + 1)}>; rel="next", <{link(last)}>; rel="last"'
        return self._reply(200, {"total_count": len(items), key: chunk}, headers)

    # Representations ------------------------------------------------------------------

    def _repo_json(self, repo: Repo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": {
                "login": repo.owner,
                "id": 1,
                "type": "Organization",
                "url": f"{self.url}/users/{repo.owner}",
            },
            "html_url": f"{self.url}/{repo.full_name}",
            "url": self._api(repo),
            "default_branch": repo.default_branch,
            "permissions": {"admin": True, "push": True, "pull": True},
        }

    def _workflow_json(self, repo: Repo, workflow: Workflow) -> dict[str, Any]:
        return {
            "id": workflow.id,
            "node_id": f"W_{workflow.id}",
            "name": workflow.name,
            "path": workflow.path,
            "state": workflow.state,
            "created_at": "2024-01-02T03:04:05Z",
            "updated_at": "2024-01-02T03:04:05Z",
            "url": self._api(repo, f"/actions/workflows/{workflow.id}"),
            "html_url": f"{self.url}/{repo.full_name}/blob/{repo.default_branch}/{workflow.path}",
            "badge_url": f"{self.url}/{repo.full_name}/workflows/{workflow.name}/badge.svg",
        }

    def _run_json(self, repo: Repo, run: Run) -> dict[str, Any]:
        return {
            "id": run.id,
            "name": run.workflow.name,
            "node_id": f"WFR_{run.id}",
            "head_branch": run.ref,
            "head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "path": run.workflow.path,
            "run_number": run.number,
            "run_attempt": 1,
            "event": "workflow_dispatch",
            "display_title": run.workflow.name,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": run.workflow.id,
            "url": self._api(repo, f"/actions/runs/{run.id}"),
            "html_url": f"{self.url}/{repo.full_name}/actions/runs/{run.id}",
            "jobs_url": self._api(repo, f"/actions/runs/{run.id}/jobs"),
            "cancel_url": self._api(repo, f"/actions/runs/{run.id}/cancel"),
            "workflow_url": self._api(repo, f"/actions/workflows/{run.workflow.id}"),
            "created_at": _iso(run.created),
            "updated_at": _iso(time.time()),
            "run_started_at": _iso(run.created),
            "repository": {"id": repo.id, "full_name": repo.full_name},
        }

    # Routes ---------------------------------------------------------------------------

    def _user(self, request: Request) -> Reply:
        token = (request.header("authorization") or "").partition(" ")[2]
        return self._reply(200, {"login": self.tokens[token], "id": 1, "type": "User"})

    def _repo(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        return self._reply(200, self._repo_json(repo)) if repo else self.not_found(request)

    def _contents(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        assert request.match is not None
        path = unquote(request.match.group("path"))
        workflow = (
            next((w for w in repo.workflows.values() if w.path == path), None) if repo else None
        )
        if repo is None or workflow is None:
            return self.not_found(request)
        raw = base64.b64encode(workflow.content.encode()).decode()
        wrapped = "\n".join(raw[i : i + 60] for i in range(0, len(raw), 60)) + "\n"
        return self._reply(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(workflow.content),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": wrapped,
                "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
                "url": self._api(repo, f"/contents/{path}"),
            },
        )

    def _workflows(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        if repo is None:
            return self.not_found(request)
        items = [self._workflow_json(repo, w) for w in repo.workflows.values()]
        return self._page(request, items, "workflows")

    def _workflow(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        workflow = self._workflow_of(repo, request) if repo else None
        if repo is None or workflow is None:
            return self.not_found(request)
        return self._reply(200, self._workflow_json(repo, workflow))

    def _dispatch(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        workflow = self._workflow_of(repo, request) if repo else None
        if repo is None or workflow is None:
            return self.not_found(request)
        body = request.json() or {}
        ref = str(body.get("ref") or "")
        if not ref:
            return self._error(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
        if ref.removeprefix("refs/heads/") not in repo.branches:
            return self._error(422, f"No ref found for: {ref}")
        declared = dispatch_inputs(workflow.content)
        if declared is None:
            return self._error(422, "Workflow does not have 'workflow_dispatch' trigger")
        inputs = dict(body.get("inputs") or {})
        unexpected = sorted(set(inputs) - set(declared))
        if unexpected:
            return self._error(422, f"Unexpected inputs provided: {unexpected}")
        for name, spec in declared.items():
            spec = spec or {}
            if spec.get("required") and name not in inputs and spec.get("default") is None:
                return self._error(422, f"Required input '{name}' not provided")
            if (
                spec.get("type") == "choice"
                and name in inputs
                and inputs[name] not in spec.get("options", [])
            ):
                return self._error(
                    422,
                    f"Provided value '{inputs[name]}' for input '{name}' not in the list of allowed values",
                )
        workflow.run_number += 1
        script = (workflow.script or default_script)(inputs)
        run = Run(
            id=next(_ids),
            workflow=workflow,
            number=workflow.run_number,
            ref=ref.removeprefix("refs/heads/"),
            inputs=inputs,
            script=script,
            created=time.time(),
            visible_after_lists=workflow.visible_after_lists,
            queue_left=script.queue_ticks,
        )
        for _ in script.jobs:
            job_id = next(_ids)
            run.job_ids.append(job_id)
            self.jobs[job_id] = (run, len(run.job_ids) - 1)
        repo.runs.append(run)
        return self._reply(204)

    def _filtered(self, request: Request, runs: list[Run]) -> list[Run]:
        event, branch, status = request.arg("event"), request.arg("branch"), request.arg("status")
        created = request.arg("created")
        result = []
        for run in runs:
            if run.visible_after_lists > 0:
                run.visible_after_lists -= 1
                continue
            if event and event != "workflow_dispatch":
                continue
            if branch and branch != run.ref:
                continue
            if status and status not in {run.status, run.conclusion}:
                continue
            if created and not _created_matches(created, run.created):
                continue
            result.append(run)
        return sorted(result, key=lambda r: -r.id)

    def _workflow_runs(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        workflow = self._workflow_of(repo, request) if repo else None
        if repo is None or workflow is None:
            return self.not_found(request)
        runs = self._filtered(request, [r for r in repo.runs if r.workflow is workflow])
        return self._page(request, [self._run_json(repo, r) for r in runs], "workflow_runs")

    def _all_runs(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        if repo is None:
            return self.not_found(request)
        runs = self._filtered(request, list(repo.runs))
        return self._page(request, [self._run_json(repo, r) for r in runs], "workflow_runs")

    def _run_of(self, repo: Repo | None, request: Request) -> Run | None:
        assert request.match is not None
        run_id = int(request.match.group("run"))
        return next((r for r in repo.runs if r.id == run_id), None) if repo else None

    def _run(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        run = self._run_of(repo, request)
        if repo is None or run is None:
            return self.not_found(request)
        run.tick()
        return self._reply(200, self._run_json(repo, run))

    def _job_json(self, repo: Repo, run: Run, index: int) -> dict[str, Any]:
        spec = run.script.jobs[index]
        states = run.step_states()[index]
        if all(s == "queued" for s, _ in states) and run.status != "completed":
            status, conclusion = "queued", None
        elif all(s == "completed" for s, _ in states):
            status = "completed"
            conclusions = [c for _, c in states]
            conclusion = (
                "failure"
                if "failure" in conclusions
                else "cancelled"
                if "cancelled" in conclusions
                else "success"
            )
        else:
            status, conclusion = "in_progress", None
        job_id = run.job_ids[index]
        return {
            "id": job_id,
            "run_id": run.id,
            "run_url": self._api(repo, f"/actions/runs/{run.id}"),
            "node_id": f"CR_{job_id}",
            "head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "url": self._api(repo, f"/actions/jobs/{job_id}"),
            "html_url": f"{self.url}/{repo.full_name}/actions/runs/{run.id}/job/{job_id}",
            "status": status,
            "conclusion": conclusion,
            "started_at": _iso(run.created),
            "completed_at": _iso(time.time()) if status == "completed" else None,
            "name": spec.name,
            "steps": [
                {"name": name, "status": s, "conclusion": c, "number": n + 1}
                for n, ((name, _), (s, c)) in enumerate(zip(spec.steps, states, strict=True))
            ],
            "labels": ["ubuntu-latest"],
        }

    def _run_jobs(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        run = self._run_of(repo, request)
        if repo is None or run is None:
            return self.not_found(request)
        items = [self._job_json(repo, run, i) for i in range(len(run.script.jobs))]
        return self._page(request, items, "jobs")

    def _cancel(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        run = self._run_of(repo, request)
        if repo is None or run is None:
            return self.not_found(request)
        if run.status == "completed":
            return self._error(409, "Cannot cancel a workflow run that is completed.")
        run.cancel_requested = True
        return self._reply(202, {})

    def _job_logs(self, request: Request) -> Reply:
        assert request.match is not None
        job_id = int(request.match.group("job"))
        if job_id not in self.jobs:
            return self.not_found(request)
        signature = secrets.token_hex(8)
        return self._reply(
            302, None, {"Location": f"{self.url}/_blobs/job-logs/{job_id}?sig={signature}"}
        )

    def _blob(self, request: Request) -> Reply:
        assert request.match is not None
        run, index = self.jobs[int(request.match.group("job"))]
        stamp = datetime.fromtimestamp(run.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        lines = run.script.jobs[index].log
        return Reply(200, "".join(f"{stamp} {line}\n" for line in lines), content_type="text/plain")


def _created_matches(spec: str, created: float) -> bool:
    moment = datetime.fromtimestamp(int(created), UTC)
    for prefix in (">=", "<=", ">", "<"):
        if spec.startswith(prefix):
            bound = datetime.fromisoformat(spec[len(prefix) :].replace("Z", "+00:00"))
            return {
                ">=": moment >= bound,
                "<=": moment <= bound,
                ">": moment > bound,
                "<": moment < bound,
            }[prefix]
    if ".." in spec:
        low, high = (datetime.fromisoformat(s.replace("Z", "+00:00")) for s in spec.split(".."))
        return low <= moment <= high
    return moment.date().isoformat() == spec[:10]
