"""A GitLab imitation: REST API v4 under ``/api/v4`` and OAuth under ``/oauth``.

Follows docs.gitlab.com/ee/api: offset pagination with ``x-total``, ``x-total-pages``,
``x-per-page``, ``x-page``, ``x-next-page``, ``x-prev-page`` and ``Link`` (totals left out past
10,000 rows, as GitLab does), ``RateLimit-*`` headers and 429 ``Retry later`` answers, errors as
``{"message": "401 Unauthorized"}``, ``PRIVATE-TOKEN`` or bearer auth, projects, languages,
branches, trees and files (with ``HEAD`` and ``X-Gitlab-Size``), and OAuth with rotating refresh
tokens. python-gitlab accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any
from urllib.parse import quote, unquote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.common import (
    FakeRepo,
    FakeUser,
    Forge,
    int_arg,
    page_slice,
)
from tests.fakes.common_git import (
    git_blob,
    git_branches,
    git_object_type,
    git_resolve,
    git_tree,
)
from tests.fakes.common_http import ThreadedApp, read_json_body, serve

# GitLab stops counting past this many rows (performance); then only x-next-page says more.
COUNT_LIMIT = 10_000


def message(status: int, text: str) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status)


def unauthorized(had_token: bool) -> Response:
    return message(401, "401 Unauthorized")


class FakeGitLab:
    def __init__(self) -> None:
        self.forge = Forge(kind="gitlab")
        self._threaded = ThreadedApp(self.app())
        self.languages: dict[int, dict[str, float]] = {}
        self.count_limit = COUNT_LIMIT

    def reset(self) -> None:
        """Forget every user, token, repository and fault (between tests)."""
        self.forge = Forge(kind="gitlab")
        self.languages = {}
        self.count_limit = COUNT_LIMIT

    def start(self) -> FakeGitLab:
        self._threaded.start()
        return self

    def stop(self) -> None:
        self._threaded.stop()

    @property
    def server_url(self) -> str:
        return self._threaded.url

    @property
    def api_url(self) -> str:
        return f"{self.server_url}/api/v4"

    def rate_limit(
        self, *, after: int, retry_after: int = 1, path_contains: str = "/projects"
    ) -> None:
        """After ``after`` more matching requests, answer one with GitLab's 429."""
        self.forge.fail(
            429,
            "Retry later",
            path_contains=path_contains,
            after=after,
            raw=True,
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Limit": "600",
                "RateLimit-Observed": "601",
                "RateLimit-Remaining": "0",
                "RateLimit-Name": "throttle_authenticated_api",
            },
        )

    def user_json(self, user: FakeUser) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.login,
            "name": user.name,
            "state": "active",
            "locked": False,
            "avatar_url": f"{self.server_url}/uploads/-/system/user/avatar/{user.id}/avatar.png",
            "web_url": f"{self.server_url}/{user.login}",
            "email": user.email,
            "created_at": "2020-01-01T00:00:00.000Z",
            "is_admin": False,
        }

    def project_json(self, repo: FakeRepo) -> dict[str, Any]:
        web = f"{self.server_url}/{repo.full_name}"
        return {
            "id": repo.id,
            "description": repo.description,
            "name": repo.name.replace("-", " ").title(),
            "name_with_namespace": f"{repo.owner} / {repo.name}",
            "path": repo.name,
            "path_with_namespace": repo.full_name,
            "created_at": "2020-01-01T00:00:00.000Z",
            "default_branch": repo.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@127.0.0.1:{repo.full_name}.git",
            "http_url_to_repo": repo.clone_url or f"{web}.git",
            "web_url": web,
            "readme_url": None,
            "forks_count": 0,
            "avatar_url": None,
            "star_count": 0,
            "last_activity_at": repo.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "namespace": {
                "id": abs(hash(repo.owner)) % 10**6,
                "name": repo.owner,
                "path": repo.owner.rsplit("/", 1)[-1],
                "kind": "group" if repo.owner_kind == "Organization" else "user",
                "full_path": repo.owner,
                "parent_id": None,
                "web_url": f"{self.server_url}/{repo.owner}",
            },
            "visibility": "private" if repo.private else "public",
            "archived": False,
            "empty_repo": repo.bare is None,
        }

    def app(self) -> Starlette:
        def api(path: str, handler: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
            async def endpoint(request: Request) -> Response:
                return await serve(
                    self.forge,
                    request,
                    handler,
                    unauthorized=unauthorized,
                    schemes=("bearer",),
                )

            return Route(f"/api/v4{path}", endpoint, methods=list(methods))

        def write(path: str, handler: Any, methods: tuple[str, ...]) -> Route:
            async def endpoint(request: Request) -> Response:
                await read_json_body(request)
                return await serve(
                    self.forge, request, handler, unauthorized=unauthorized, schemes=("bearer",)
                )

            return Route(f"/api/v4{path}", endpoint, methods=list(methods))

        return Starlette(
            routes=[
                api("/user", self.get_user),
                api("/projects", self.list_projects),
                api("/projects/{id:int}", self.get_project),
                api("/projects/{id:int}/languages", self.project_languages),
                api("/projects/{id:int}/repository/branches", self.branches),
                api("/projects/{id:int}/repository/tree", self.tree),
                api(
                    "/projects/{id:int}/repository/files/{path:path}",
                    self.file,
                    methods=("GET", "HEAD"),
                ),
                write("/projects/{id:int}/hooks", self.hooks, ("GET", "POST")),
                write("/projects/{id:int}/hooks/{hook_id:int}", self.hook, ("GET", "DELETE")),
                Route("/oauth/authorize", self.authorize),
                Route("/oauth/token", self.token, methods=["POST"]),
            ]
        )

    # -- project webhooks (docs.gitlab.com/api/project_webhooks) ----------------------------
    EVENT_FLAGS = ("push_events", "tag_push_events", "releases_events", "merge_requests_events")

    def hook_json(self, repo: FakeRepo, hook: dict[str, Any]) -> dict[str, Any]:
        body = {
            "id": hook["id"],
            "url": hook["url"],
            "name": None,
            "description": None,
            "project_id": repo.id,
            "enable_ssl_verification": hook["enable_ssl_verification"],
            "created_at": "2020-01-01T00:00:00.000Z",
            "alert_status": "executable",
            "disabled_until": None,
            "url_variables": [],
            "push_events_branch_filter": None,
            "branch_filter_strategy": "wildcard",
            "custom_webhook_template": None,
        }
        body.update({flag: hook[flag] for flag in self.EVENT_FLAGS})
        return body  # the token is never shown again

    def hooks(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        if repo is None:
            return message(404, "404 Project Not Found")
        if request.method == "GET":
            return JSONResponse([self.hook_json(repo, h) for h in self.forge.repo_hooks(repo)])
        body = request.state.json
        if not isinstance(body, dict) or not body.get("url"):
            return JSONResponse({"error": "url is missing"}, status_code=400)
        hook: dict[str, Any] = {
            "url": body["url"],
            "enable_ssl_verification": bool(body.get("enable_ssl_verification", True)),
            "_secret": body.get("token"),
        }
        # GitLab's defaults: push events on, the others off.
        for flag in self.EVENT_FLAGS:
            hook[flag] = bool(body.get(flag, flag == "push_events"))
        stored = self.forge.add_hook(repo, hook)
        return JSONResponse(self.hook_json(repo, stored), status_code=201)

    def hook(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        hook_id = request.path_params["hook_id"]
        found = (
            next((h for h in self.forge.repo_hooks(repo) if h["id"] == hook_id), None)
            if repo
            else None
        )
        if repo is None or found is None:
            return message(404, "404 Not found")
        if request.method == "DELETE":
            self.forge.remove_hook(repo, hook_id)
            return Response(status_code=204)
        return JSONResponse(self.hook_json(repo, found))

    def paged(self, request: Request, items: list[Any], *, default_per_page: int = 20) -> Response:
        per_page = int_arg(request, "per_page", default_per_page, high=100)
        page = int_arg(request, "page", 1)
        total = len(items)
        pages = max(math.ceil(total / per_page), 1)
        body = page_slice(items, page, per_page)
        headers = {"x-per-page": str(per_page), "x-page": str(page)}
        headers["x-next-page"] = str(page + 1) if page < pages else ""
        headers["x-prev-page"] = str(page - 1) if page > 1 else ""
        links = []

        def url(number: int) -> str:
            return str(request.url.include_query_params(page=number))

        if page < pages:
            links.append(f'<{url(page + 1)}>; rel="next"')
        if page > 1:
            links.append(f'<{url(page - 1)}>; rel="prev"')
        links.append(f'<{url(1)}>; rel="first"')
        if total <= self.count_limit:
            headers["x-total"] = str(total)
            headers["x-total-pages"] = str(pages)
            links.append(f'<{url(pages)}>; rel="last"')
        headers["link"] = ", ".join(links)
        return JSONResponse(body, headers=headers)

    def get_user(self, request: Request, user: FakeUser | None) -> Response:
        assert user is not None
        return JSONResponse(self.user_json(user))

    def list_projects(self, request: Request, user: FakeUser | None) -> Response:
        assert user is not None
        repos = self.forge.visible(user.login)
        if request.query_params.get("order_by", "created_at") == "id":
            reverse = request.query_params.get("sort", "desc") == "desc"
            repos.sort(key=lambda repo: repo.id, reverse=reverse)
        return self.paged(request, [self.project_json(repo) for repo in repos])

    def _project(self, request: Request, user: FakeUser | None) -> FakeRepo | None:
        repo = self.forge.repos.get(request.path_params["id"])
        if repo is None or user is None or (repo.members and user.login not in repo.members):
            return None
        return repo

    def get_project(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        if repo is None:
            return message(404, "404 Project Not Found")
        return JSONResponse(self.project_json(repo))

    def project_languages(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        if repo is None:
            return message(404, "404 Project Not Found")
        shares = self.languages.get(repo.id)
        if shares is None:
            shares = {repo.language: 87.5, "Dockerfile": 12.5} if repo.language else {}
        return JSONResponse(shares)

    def branches(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        if repo is None:
            return message(404, "404 Project Not Found")
        branches = git_branches(repo.bare) if repo.bare else []
        return self.paged(
            request,
            [
                {
                    "name": name,
                    "commit": {"id": sha, "short_id": sha[:8], "title": "commit"},
                    "merged": False,
                    "protected": name == repo.default_branch,
                    "default": name == repo.default_branch,
                    "web_url": f"{self.server_url}/{repo.full_name}/-/tree/{name}",
                }
                for name, sha in branches
            ],
        )

    def tree(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        if repo is None:
            return message(404, "404 Project Not Found")
        if repo.bare is None:
            return message(404, "404 Tree Not Found")
        sha = git_resolve(repo.bare, request.query_params.get("ref") or repo.default_branch)
        path = request.query_params.get("path", "").strip("/")
        if sha is None or git_object_type(repo.bare, sha, path) != "tree":
            return message(404, "404 Tree Not Found")
        recursive = request.query_params.get("recursive") == "true"
        entries = git_tree(repo.bare, sha, path, recursive=recursive)
        return self.paged(
            request,
            [
                {
                    "id": entry["sha"],
                    "name": entry["name"],
                    "type": entry["type"],
                    "path": entry["path"],
                    "mode": entry["mode"],
                }
                for entry in entries
            ],
        )

    def file(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._project(request, user)
        if repo is None:
            return message(404, "404 Project Not Found")
        ref = request.query_params.get("ref")
        if not ref:
            return message(400, "400 Bad request - ref is missing")
        path = unquote(request.path_params["path"])
        sha = git_resolve(repo.bare, ref) if repo.bare else None
        if sha is None or repo.bare is None or git_object_type(repo.bare, sha, path) != "blob":
            return message(404, "404 File Not Found")
        data = git_blob(repo.bare, sha, path)
        blob_id = next(
            e["sha"]
            for e in git_tree(repo.bare, sha, path.rsplit("/", 1)[0] if "/" in path else "")
            if e["path"] == path
        )
        headers = {
            "X-Gitlab-Blob-Id": blob_id,
            "X-Gitlab-Commit-Id": sha,
            "X-Gitlab-Content-Sha256": hashlib.sha256(data).hexdigest(),
            "X-Gitlab-Encoding": "base64",
            "X-Gitlab-File-Name": path.rsplit("/", 1)[-1],
            "X-Gitlab-File-Path": path,
            "X-Gitlab-Ref": ref,
            "X-Gitlab-Size": str(len(data)),
        }
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        return JSONResponse(
            {
                "file_name": path.rsplit("/", 1)[-1],
                "file_path": path,
                "size": len(data),
                "encoding": "base64",
                "content": base64.b64encode(data).decode(),
                "content_sha256": hashlib.sha256(data).hexdigest(),
                "ref": ref,
                "blob_id": blob_id,
                "commit_id": sha,
                "last_commit_id": sha,
                "execute_filemode": False,
            },
            headers=headers,
        )

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id", "") not in self.forge.oauth_clients:
            return HTMLResponse(
                "<p>The client application is not known to this server.</p>", status_code=400
            )
        login = request.headers.get("x-fake-login")
        if not login or login not in self.forge.users:
            return HTMLResponse("<form>Sign in</form>")
        redirect_uri = params.get("redirect_uri", "")
        code = self.forge.grant_code(params["client_id"], login, redirect_uri)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.forge.record(request)
        status, body = self.forge.token_grant(form)
        if status == 200:
            body["token_type"] = "Bearer"
        return JSONResponse(body, status_code=status)


def project_path(repo: FakeRepo) -> str:
    return quote(repo.full_name, safe="")
