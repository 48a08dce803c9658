"""A Jenkins imitation following its remote access API documentation.

Covers what Shipyard and python-jenkins use: ``/api/json`` with ``tree`` filtering on the root,
folders (CloudBees Folders: ``/job/a/job/b/``), jobs and builds; parameter definitions of the
string, text, boolean, choice and password kinds; ``build`` / ``buildWithParameters`` answering
``201 Created`` with ``Location: .../queue/item/N/``; queue items that leave the queue with an
``executable``; ``logText/progressiveText`` with ``X-Text-Size`` / ``X-More-Data``;
``consoleText``; ``stop``; ``queue/cancelItem``; ``crumbIssuer/api/json`` with session-bound
crumbs; HTTP basic authentication with API tokens (401 "Invalid password/token for user").

Builds advance deterministically: each ``progressiveText`` read releases the next chunk of
console output; a build finishes when every chunk was released (unless ``hold``).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.fakes.cicd_common import FakeServer, Reply, Request
from tests.support import canary

JENKINS_VERSION = "2.462.3"
PARAM_CLASSES = {
    "string": "StringParameterDefinition",
    "text": "TextParameterDefinition",
    "boolean": "BooleanParameterDefinition",
    "choice": "ChoiceParameterDefinition",
    "password": "PasswordParameterDefinition",
}
VALUE_CLASSES = {
    "string": "StringParameterValue",
    "text": "TextParameterValue",
    "boolean": "BooleanParameterValue",
    "choice": "StringParameterValue",
    "password": "PasswordParameterValue",
}


@dataclass
class Param:
    name: str
    kind: str  # string | text | boolean | choice | password
    default: Any = ""
    choices: list[str] | None = None
    description: str = ""


@dataclass
class Script:
    """What a build does: console chunks, then a result."""

    chunks: list[str]
    result: str = "SUCCESS"
    hold: bool = False  # keep running until stopped


@dataclass
class Build:
    number: int
    job: Job
    params: dict[str, str]
    script: Script
    queue_id: int
    released: int = 0
    aborted: bool = False
    started: float = field(default_factory=time.time)

    @property
    def text(self) -> str:
        text = "".join(self.script.chunks[: self.released])
        if self.aborted:
            text += "Aborted by admin\nFinished: ABORTED\n"
        return text

    @property
    def building(self) -> bool:
        if self.aborted:
            return False
        return self.script.hold or self.released < len(self.script.chunks)

    @property
    def result(self) -> str | None:
        if self.aborted:
            return "ABORTED"
        return None if self.building else self.script.result

    def advance(self) -> None:
        if not self.aborted and self.released < len(self.script.chunks):
            self.released += 1


@dataclass
class QueueItem:
    id: int
    job: Job
    params: dict[str, str]
    polls_left: int | None  # None: stuck in the queue
    why: str = "Waiting for next available executor"
    cancelled: bool = False
    build: Build | None = None
    since: float = field(default_factory=time.time)


@dataclass
class Job:
    name: str
    parent: Folder | None
    params: list[Param] = field(default_factory=list)
    description: str = ""
    script: Callable[[dict[str, str]], Script] | None = None
    queue_polls: int | None = 1
    builds: list[Build] = field(default_factory=list)
    next_number: int = 1
    # Jenkins' "Disable this project": listed with buildable false and color "disabled".
    disabled: bool = False

    @property
    def full_name(self) -> str:
        return "/".join([*self.parent.segments, self.name]) if self.parent else self.name


@dataclass
class Folder:
    name: str
    parent: Folder | None
    children: dict[str, Folder | Job] = field(default_factory=dict)
    description: str = ""

    @property
    def segments(self) -> list[str]:
        if self.parent is None:
            return []
        return [*self.parent.segments, self.name]


def default_script(params: dict[str, str]) -> Script:
    lines = ["Started by user admin\n"]
    lines += [f"Parameter {name}={value}\n" for name, value in sorted(params.items())]
    return Script(chunks=[*lines, "Building...\n", "Finished: SUCCESS\n"])


def parse_tree(spec: str) -> dict[str, Any]:
    """``jobs[name,jobs[name]],url`` -> {"jobs": {"name": None, "jobs": {"name": None}}, "url": None}."""

    def parse(index: int) -> tuple[dict[str, Any], int]:
        fields: dict[str, Any] = {}
        name = ""
        while index < len(spec):
            char = spec[index]
            if char == "[":
                sub, index = parse(index + 1)
                fields[name.strip()] = sub
                name = ""
                continue
            if char == "]":
                if name.strip():
                    fields[name.strip()] = None
                return fields, index + 1
            if char == "{":
                # Range selectors ({M,N}) limit list sizes; the fake lists everything.
                index = spec.index("}", index) + 1
                continue
            if char == ",":
                if name.strip():
                    fields[name.strip()] = None
                name = ""
            else:
                name += char
            index += 1
        if name.strip():
            fields[name.strip()] = None
        return fields, index

    return parse(0)[0]


def apply_tree(value: Any, spec: dict[str, Any] | None) -> Any:
    if isinstance(value, list):
        return [apply_tree(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {"_class": value["_class"]} if "_class" in value else {}
    if spec is None:
        return result  # an object asked for without fields shows only its class
    for name, sub in spec.items():
        if name not in value:
            continue
        item = value[name]
        has_objects = isinstance(item, dict) or (
            isinstance(item, list) and any(isinstance(i, dict) for i in item)
        )
        if sub is None and not has_objects:
            result[name] = item
        else:
            result[name] = apply_tree(item, sub)
    return result


class FakeJenkins(FakeServer):
    def __init__(self, *, username: str = "admin", token: str | None = None) -> None:
        super().__init__()
        self.username = username
        self.token = canary.remember(token or secrets.token_hex(17), "Jenkins API token")
        self.users: dict[str, str] = {username: self.token}
        self.full_names: dict[str, str] = {username: "Ada Admin"}
        self.require_crumb = False
        self.crumbs: dict[str, str] = {}
        self.root = Folder("", None)
        self.queue: dict[int, QueueItem] = {}
        self.next_queue_id = 100
        # What builds report as their ``url`` (and the queue as ``executable.url``), as a hostile
        # or misconfigured Jenkins would: ``javascript:...``, ``data:...``, another host. None: the
        # fake's own address.
        self.build_link: str | None = None
        job_path = r"(?P<path>(?:/job/[^/]+)+)"
        self.route("GET", r"/?", self._root_page)
        self.route("GET", r"/api/json", self._root_json)
        self.route("GET", r"/me/api/json", self._me)
        self.route("GET", r"/crumbIssuer/api/json", self._crumb)
        self.route("GET", r"/queue/item/(?P<id>\d+)/api/json", self._queue_item)
        self.route("POST", r"/queue/cancelItem", self._cancel_item)
        self.route("GET", job_path + r"/api/json", self._item_json)
        self.route("POST", job_path + r"/build", self._build)
        self.route("POST", job_path + r"/buildWithParameters", self._build_with_parameters)
        self.route("GET", job_path + r"/(?P<n>\d+)/api/json", self._build_json)
        self.route("GET", job_path + r"/(?P<n>\d+)/?", self._build_page)
        self.route("GET", job_path + r"/(?P<n>\d+)/logText/progressiveText", self._progressive)
        self.route("GET", job_path + r"/(?P<n>\d+)/consoleText", self._console_text)
        self.route("POST", job_path + r"/(?P<n>\d+)/stop", self._stop)

    # Set-up helpers -------------------------------------------------------------------

    def add_job(
        self,
        path: str,
        *,
        params: list[Param] | None = None,
        description: str = "",
        script: Callable[[dict[str, str]], Script] | None = None,
        queue_polls: int | None = 1,
        disabled: bool = False,
    ) -> Job:
        """Add a job (and any missing folders) at ``team/app/deploy``."""
        with self.lock:
            *folders, name = path.split("/")
            parent = self.root
            for segment in folders:
                child = parent.children.get(segment)
                if child is None:
                    child = Folder(segment, parent)
                    parent.children[segment] = child
                assert isinstance(child, Folder), f"{segment} is a job, not a folder"
                parent = child
            job = Job(
                name,
                parent,
                params=list(params or []),
                description=description,
                script=script,
                queue_polls=queue_polls,
                disabled=disabled,
            )
            parent.children[name] = job
            return job

    def remove(self, path: str) -> None:
        with self.lock:
            *folders, name = path.split("/")
            parent = self.root
            for segment in folders:
                child = parent.children[segment]
                assert isinstance(child, Folder)
                parent = child
            del parent.children[name]

    def revoke(self, username: str | None = None) -> None:
        """Revoke a user's API token (the next request with it gets 401)."""
        with self.lock:
            self.users[username or self.username] = canary.remember(
                secrets.token_hex(17), "Jenkins API token"
            )

    def find(self, path: str) -> Folder | Job | None:
        node: Folder | Job = self.root
        for segment in path.split("/"):
            if not segment:
                continue
            if not isinstance(node, Folder) or segment not in node.children:
                return None
            node = node.children[segment]
        return node

    def build(self, path: str, number: int) -> Build:
        job = self.find(path)
        assert isinstance(job, Job)
        return next(b for b in job.builds if b.number == number)

    def complete(self, path: str, number: int) -> None:
        """Release every console chunk of a build (it then finishes unless held)."""
        with self.lock:
            build = self.build(path, number)
            build.released = len(build.script.chunks)

    # Auth -----------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Reply | None:
        header = request.header("authorization") or ""
        if not header.lower().startswith("basic "):
            return Reply(
                403,
                "<html><body><h2>HTTP ERROR 403 Forbidden</h2>"
                "<p>Authentication required</p></body></html>",
                {"X-You-Are-Authenticated-As": "anonymous", "X-Jenkins": JENKINS_VERSION},
                content_type="text/html;charset=utf-8",
            )
        user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        if self.users.get(user) != token:
            return Reply(
                401,
                "<html><head><title>Error 401 Unauthorized</title></head><body>"
                f"<h2>HTTP ERROR 401 Invalid password/token for user: {user}</h2></body></html>",
                {"WWW-Authenticate": 'Basic realm="Jenkins"', "X-Jenkins": JENKINS_VERSION},
                content_type="text/html;charset=utf-8",
            )
        if request.method == "POST" and self.require_crumb:
            crumb = self.crumbs.get(request.cookies().get("JSESSIONID.fake", ""))
            if crumb is None or request.header("jenkins-crumb") != crumb:
                return Reply(
                    403,
                    "<html><body><h2>HTTP ERROR 403 No valid crumb was included in the request"
                    "</h2></body></html>",
                    content_type="text/html;charset=utf-8",
                )
        return None

    def not_found(self, request: Request) -> Reply:
        return Reply(
            404,
            "<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>",
            content_type="text/html;charset=utf-8",
        )

    # Representations ------------------------------------------------------------------

    def _url(self, node: Folder | Job) -> str:
        segments = node.segments if isinstance(node, Folder) else node.full_name.split("/")
        return self.url + "/" + "".join(f"job/{s}/" for s in segments)

    def _param_json(self, param: Param) -> dict[str, Any]:
        value: dict[str, Any] = {
            "_class": f"hudson.model.{VALUE_CLASSES[param.kind]}",
            "name": param.name,
        }
        if param.kind != "password":
            value["value"] = param.default if param.kind != "choice" else (param.choices or [""])[0]
        body: dict[str, Any] = {
            "_class": f"hudson.model.{PARAM_CLASSES[param.kind]}",
            "defaultParameterValue": value,
            "description": param.description or None,
            "name": param.name,
            "type": PARAM_CLASSES[param.kind],
        }
        if param.kind == "choice":
            body["choices"] = list(param.choices or [])
        return body

    def _build_ref(self, build: Build) -> dict[str, Any]:
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "number": build.number,
            "url": self.build_link or f"{self._url(build.job)}{build.number}/",
        }

    def _node_json(self, node: Folder | Job) -> dict[str, Any]:
        if isinstance(node, Folder):
            return {
                "_class": "com.cloudbees.hudson.plugins.folder.Folder",
                "description": node.description or None,
                "displayName": node.name,
                "fullName": "/".join(node.segments),
                "name": node.name,
                "url": self._url(node),
                "jobs": [self._node_json(child) for child in node.children.values()],
            }
        last = node.builds[-1] if node.builds else None
        color = "notbuilt"
        if last is not None:
            color = {"SUCCESS": "blue", "FAILURE": "red", "ABORTED": "aborted"}.get(
                last.result or "", "blue_anime" if last.building else "red"
            )
        in_queue = [
            q for q in self.queue.values() if q.job is node and q.build is None and not q.cancelled
        ]
        return {
            "_class": "hudson.model.FreeStyleProject",
            "actions": [{"_class": "hudson.model.ParametersDefinitionProperty"}]
            if node.params
            else [],
            "description": node.description or None,
            "displayName": node.name,
            "fullDisplayName": node.full_name.replace("/", " » "),
            "fullName": node.full_name,
            "name": node.name,
            "url": self._url(node),
            "buildable": not node.disabled,
            "builds": [self._build_ref(b) for b in reversed(node.builds)],
            "color": "disabled" if node.disabled else color,
            "firstBuild": self._build_ref(node.builds[0]) if node.builds else None,
            "inQueue": bool(in_queue),
            "lastBuild": self._build_ref(last) if last else None,
            "lastCompletedBuild": next(
                (self._build_ref(b) for b in reversed(node.builds) if not b.building), None
            ),
            "nextBuildNumber": node.next_number,
            "property": (
                [
                    {
                        "_class": "hudson.model.ParametersDefinitionProperty",
                        "parameterDefinitions": [self._param_json(p) for p in node.params],
                    }
                ]
                if node.params
                else []
            ),
            "queueItem": {"_class": "hudson.model.Queue$WaitingItem", "id": in_queue[0].id}
            if in_queue
            else None,
        }

    def _render(self, request: Request, full: dict[str, Any], shallow_children: bool) -> Reply:
        tree = request.arg("tree")
        if tree:
            return Reply(200, apply_tree(full, parse_tree(tree)))
        if shallow_children and "jobs" in full:
            # depth=0: children show their class, name, url and color only.
            full = {
                **full,
                "jobs": [
                    {k: v for k, v in child.items() if k in {"_class", "name", "url", "color"}}
                    for child in full["jobs"]
                ],
            }
        return Reply(200, full)

    # Routes ---------------------------------------------------------------------------

    def _root_page(self, request: Request) -> Reply:
        return Reply(
            200,
            "<html><body>Dashboard [Jenkins]</body></html>",
            {"X-Jenkins": JENKINS_VERSION},
            content_type="text/html;charset=utf-8",
        )

    def _root_json(self, request: Request) -> Reply:
        full = {
            "_class": "hudson.model.Hudson",
            "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller's built-in node",
            "nodeName": "",
            "numExecutors": 2,
            "description": None,
            "jobs": [self._node_json(child) for child in self.root.children.values()],
            "quietingDown": False,
            "url": self.url + "/",
            "useCrumbs": self.require_crumb,
            "useSecurity": True,
        }
        reply = self._render(request, full, shallow_children=True)
        reply.headers["X-Jenkins"] = JENKINS_VERSION
        return reply

    def _me(self, request: Request) -> Reply:
        header = request.header("authorization") or ""
        user = base64.b64decode(header[6:]).decode().partition(":")[0]
        return Reply(
            200,
            {
                "_class": "hudson.model.User",
                "absoluteUrl": f"{self.url}/user/{user}",
                "description": None,
                "fullName": self.full_names.get(user, user),
                "id": user,
                "property": [],
            },
            {"X-Jenkins": JENKINS_VERSION},
        )

    def _crumb(self, request: Request) -> Reply:
        if not self.require_crumb:
            return self.not_found(request)
        session = secrets.token_hex(8)
        crumb = secrets.token_hex(32)
        self.crumbs[session] = crumb
        return Reply(
            200,
            {
                "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                "crumb": crumb,
                "crumbRequestField": "Jenkins-Crumb",
            },
            {"Set-Cookie": f"JSESSIONID.fake={session}; Path=/; HttpOnly"},
        )

    def _node_at(self, request: Request) -> Folder | Job | None:
        assert request.match is not None
        segments = [unquote(s) for s in request.match.group("path").split("/job/") if s]
        return self.find("/".join(segments))

    def _item_json(self, request: Request) -> Reply:
        node = self._node_at(request)
        if node is None:
            return self.not_found(request)
        return self._render(request, self._node_json(node), shallow_children=True)

    def _enqueue(self, job: Job, params: dict[str, str]) -> Reply:
        if job.disabled:
            # ParameterizedJobMixIn.doBuild: a job that is not buildable is a 409.
            return Reply(
                409,
                f"<html><body><h2>HTTP ERROR 409 {job.full_name} is not buildable</h2></body></html>",
                content_type="text/html;charset=utf-8",
            )
        item = QueueItem(self.next_queue_id, job, params, job.queue_polls)
        self.next_queue_id += 1
        self.queue[item.id] = item
        if item.polls_left == 0:
            self._start(item)
        return Reply(201, None, {"Location": f"{self.url}/queue/item/{item.id}/"})

    def _build(self, request: Request) -> Reply:
        job = self._node_at(request)
        if not isinstance(job, Job):
            return self.not_found(request)
        defaults = {p.name: self._default(p) for p in job.params}
        return self._enqueue(job, defaults)

    @staticmethod
    def _default(param: Param) -> str:
        if param.kind == "choice":
            return (param.choices or [""])[0]
        if param.kind == "boolean":
            return "true" if param.default else "false"
        return str(param.default)

    def _build_with_parameters(self, request: Request) -> Reply:
        job = self._node_at(request)
        if not isinstance(job, Job):
            return self.not_found(request)
        if not job.params:
            return Reply(
                400,
                f"<html><body><h2>HTTP ERROR 400 {job.full_name} is not parameterized</h2></body></html>",
                content_type="text/html;charset=utf-8",
            )
        given = {k: v[-1] for k, v in request.query.items()}
        if request.body:
            given.update(request.form())
        values: dict[str, str] = {}
        for param in job.params:
            value = given.get(param.name, self._default(param))
            if param.kind == "choice" and value not in (param.choices or []):
                return Reply(
                    400,
                    f"<html><body><h2>HTTP ERROR 400 Illegal choice for parameter {param.name}: "
                    f"{value}</h2></body></html>",
                    content_type="text/html;charset=utf-8",
                )
            values[param.name] = value
            if param.kind == "password":
                canary.remember(value, "Jenkins password parameter")
        return self._enqueue(job, values)

    def _start(self, item: QueueItem) -> None:
        job = item.job
        script = (job.script or default_script)(item.params)
        build = Build(job.next_number, job, item.params, script, item.id)
        job.next_number += 1
        job.builds.append(build)
        item.build = build

    def _queue_item(self, request: Request) -> Reply:
        assert request.match is not None
        item = self.queue.get(int(request.match.group("id")))
        if item is None:
            return self.not_found(request)
        if item.build is None and not item.cancelled and item.polls_left is not None:
            item.polls_left -= 1
            if item.polls_left <= 0:
                self._start(item)
        task = {
            "_class": "hudson.model.FreeStyleProject",
            "name": item.job.name,
            "url": self._url(item.job),
            "color": "notbuilt",
        }
        body: dict[str, Any] = {
            "actions": [
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [{"name": k, "value": v} for k, v in item.params.items()],
                }
            ],
            "blocked": False,
            "buildable": item.build is None and not item.cancelled,
            "id": item.id,
            "inQueueSince": int(item.since * 1000),
            "params": "".join(f"\n{k}={v}" for k, v in item.params.items()),
            "stuck": item.polls_left is None,
            "task": task,
            "url": f"queue/item/{item.id}/",
            "why": None if item.build or item.cancelled else item.why,
        }
        if item.build is not None or item.cancelled:
            body["_class"] = "hudson.model.Queue$LeftItem"
            body["cancelled"] = item.cancelled
            body["executable"] = self._build_ref(item.build) if item.build else None
        else:
            body["_class"] = "hudson.model.Queue$BuildableItem"
            body["pending"] = False
        return Reply(200, body)

    def _cancel_item(self, request: Request) -> Reply:
        item = self.queue.get(int(request.arg("id") or 0))
        if item is None:
            return self.not_found(request)
        if item.build is None:
            item.cancelled = True
        return Reply(204)

    def _build_at(self, request: Request) -> Build | None:
        job = self._node_at(request)
        assert request.match is not None
        if not isinstance(job, Job):
            return None
        number = int(request.match.group("n"))
        return next((b for b in job.builds if b.number == number), None)

    def _build_json(self, request: Request) -> Reply:
        build = self._build_at(request)
        if build is None:
            return self.not_found(request)
        body = {
            **self._build_ref(build),
            "actions": [
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [
                        {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                        for k, v in build.params.items()
                    ],
                }
            ],
            "building": build.building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": 0 if build.building else 1234,
            "estimatedDuration": 1234,
            "fullDisplayName": f"{build.job.full_name.replace('/', ' » ')} #{build.number}",
            "id": str(build.number),
            "queueId": build.queue_id,
            "result": build.result,
            "timestamp": int(build.started * 1000),
        }
        return self._render(request, body, shallow_children=False)

    def _build_page(self, request: Request) -> Reply:
        build = self._build_at(request)
        if build is None:
            return self.not_found(request)
        return Reply(
            200, f"<html><body>Build #{build.number}</body></html>", content_type="text/html"
        )

    def _progressive(self, request: Request) -> Reply:
        build = self._build_at(request)
        if build is None:
            return self.not_found(request)
        build.advance()
        data = build.text.encode()
        start = int(request.arg("start") or 0)
        headers = {"X-Text-Size": str(len(data))}
        if build.building:
            headers["X-More-Data"] = "true"
        return Reply(200, data[start:], headers, content_type="text/plain;charset=UTF-8")

    def _console_text(self, request: Request) -> Reply:
        build = self._build_at(request)
        if build is None:
            return self.not_found(request)
        return Reply(200, build.text, content_type="text/plain;charset=UTF-8")

    def _stop(self, request: Request) -> Reply:
        build = self._build_at(request)
        if build is None:
            return self.not_found(request)
        if build.building:
            build.aborted = True
        return Reply(302, None, {"Location": f"{self._url(build.job)}{build.number}/"})
