"""A Gitea imitation: REST API v1 under ``/api/v1`` and OAuth under ``/login/oauth``.

Follows Gitea's API documentation (swagger): ``page``/``limit`` pagination capped at 50 with
``x-total-count`` and ``Link``, ``Authorization: token`` (or bearer), errors as
``{"message", "url"}``, repositories with ``owner.login``, the contents API (GitHub's shape) and
paged recursive git trees, and OAuth at ``/login/oauth/access_token``.
"""

from __future__ import annotations

import base64
import math
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.common import (
    FakeRepo,
    FakeUser,
    Forge,
    int_arg,
    link_header,
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

MAX_RESPONSE_ITEMS = 50


class FakeGitea:
    def __init__(self) -> None:
        self.forge = Forge(kind="gitea")
        self._threaded = ThreadedApp(self.app())

    def reset(self) -> None:
        """Forget every user, token, repository and fault (between tests)."""
        self.forge = Forge(kind="gitea")

    def start(self) -> FakeGitea:
        self._threaded.start()
        return self

    def stop(self) -> None:
        self._threaded.stop()

    @property
    def server_url(self) -> str:
        return self._threaded.url

    @property
    def api_url(self) -> str:
        return f"{self.server_url}/api/v1"

    def error(self, status: int, text: str) -> JSONResponse:
        return JSONResponse(
            {"message": text, "url": f"{self.server_url}/api/swagger"}, status_code=status
        )

    def unauthorized(self, had_token: bool) -> Response:
        if had_token:
            return self.error(401, "user does not exist [uid: 0, name: ]")
        return self.error(401, "token is required")

    def too_many_requests(self, *, after: int, retry_after: int = 1) -> None:
        """After ``after`` more repository-list requests, answer one 429 with Retry-After."""
        self.forge.fail(
            429,
            {"message": "rate limit exceeded", "url": f"{self.server_url}/api/swagger"},
            path_contains="/user/repos",
            after=after,
            headers={"Retry-After": str(retry_after)},
        )

    def user_json(self, user: FakeUser) -> dict[str, Any]:
        return {
            "id": user.id,
            "login": user.login,
            "login_name": "",
            "full_name": user.name,
            "email": user.email,
            "avatar_url": f"{self.server_url}/avatars/{user.id}",
            "language": "en-US",
            "is_admin": False,
            "active": True,
            "created": "2020-01-01T00:00:00Z",
            "username": user.login,
        }

    def repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        html = f"{self.server_url}/{repo.full_name}"
        return {
            "id": repo.id,
            "owner": {
                "id": abs(hash(repo.owner)) % 10**6,
                "login": repo.owner,
                "full_name": repo.owner.title(),
                "username": repo.owner,
            },
            "name": repo.name,
            "full_name": repo.full_name,
            "description": repo.description or "",
            "empty": repo.bare is None,
            "private": repo.private,
            "fork": False,
            "template": False,
            "mirror": False,
            "size": 25,
            "language": repo.language or "",
            "languages_url": f"{self.api_url}/repos/{repo.full_name}/languages",
            "html_url": html,
            "url": f"{self.api_url}/repos/{repo.full_name}",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "clone_url": repo.clone_url or f"{html}.git",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 1,
            "open_issues_count": 0,
            "default_branch": repo.default_branch,
            "archived": False,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": repo.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": {"admin": True, "push": True, "pull": True},
            "internal": False,
        }

    def app(self) -> Starlette:
        def api(path: str, handler: Any) -> Route:
            async def endpoint(request: Request) -> Response:
                return await serve(self.forge, request, handler, unauthorized=self.unauthorized)

            return Route(f"/api/v1{path}", endpoint)

        def write(path: str, handler: Any, methods: tuple[str, ...]) -> Route:
            async def endpoint(request: Request) -> Response:
                await read_json_body(request)
                return await serve(self.forge, request, handler, unauthorized=self.unauthorized)

            return Route(f"/api/v1{path}", endpoint, methods=list(methods))

        return Starlette(
            routes=[
                api("/user", self.get_user),
                api("/user/repos", self.list_repos),
                api("/repos/{owner}/{repo}", self.get_repo),
                api("/repos/{owner}/{repo}/branches", self.branches),
                api("/repos/{owner}/{repo}/contents", self.contents),
                api("/repos/{owner}/{repo}/contents/{path:path}", self.contents),
                api("/repos/{owner}/{repo}/git/trees/{ref:path}", self.git_tree),
                write("/repos/{owner}/{repo}/hooks", self.hooks, ("GET", "POST")),
                write("/repos/{owner}/{repo}/hooks/{hook_id:int}", self.hook, ("GET", "DELETE")),
                Route("/login/oauth/authorize", self.authorize),
                Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
            ]
        )

    # -- repository webhooks (Gitea's API: CreateHookOption, Hook) -------------------------
    def hook_json(self, repo: FakeRepo, hook: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": hook["id"],
            "type": hook["type"],
            "branch_filter": "",
            "config": {k: v for k, v in hook["config"].items() if k != "secret"},
            "events": hook["events"],
            "authorization_header": "",
            "active": hook["active"],
            "updated_at": "2020-01-01T00:00:00Z",
            "created_at": "2020-01-01T00:00:00Z",
        }

    def hooks(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return self.error(404, "The target couldn't be found.")
        if request.method == "GET":
            return JSONResponse([self.hook_json(repo, h) for h in self.forge.repo_hooks(repo)])
        body = request.state.json
        config = body.get("config") if isinstance(body, dict) else None
        if not isinstance(config, dict) or not config.get("url") or not config.get("content_type"):
            return self.error(422, "Missing config option: url / content_type")
        hook = self.forge.add_hook(
            repo,
            {
                "type": body.get("type", "gitea"),
                "active": bool(body.get("active", False)),
                "events": list(body.get("events") or ["push"]),
                "config": dict(config),
                "_secret": config.get("secret"),
            },
        )
        return JSONResponse(self.hook_json(repo, hook), status_code=201)

    def hook(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        hook_id = request.path_params["hook_id"]
        found = (
            next((h for h in self.forge.repo_hooks(repo) if h["id"] == hook_id), None)
            if repo
            else None
        )
        if repo is None or found is None:
            return self.error(404, "The target couldn't be found.")
        if request.method == "DELETE":
            self.forge.remove_hook(repo, hook_id)
            return Response(status_code=204)
        return JSONResponse(self.hook_json(repo, found))

    def paged(self, request: Request, items: list[Any]) -> Response:
        limit = int_arg(request, "limit", MAX_RESPONSE_ITEMS, high=MAX_RESPONSE_ITEMS)
        page = int_arg(request, "page", 1)
        last = max(math.ceil(len(items) / limit), 1)
        headers = {"x-total-count": str(len(items))}
        link = link_header(request, page, last)
        if link:
            headers["link"] = link
        return JSONResponse(page_slice(items, page, limit), headers=headers)

    def get_user(self, request: Request, user: FakeUser | None) -> Response:
        assert user is not None
        return JSONResponse(self.user_json(user))

    def list_repos(self, request: Request, user: FakeUser | None) -> Response:
        assert user is not None
        return self.paged(request, [self.repo_json(r) for r in self.forge.visible(user.login)])

    def _repo(self, request: Request, user: FakeUser | None) -> FakeRepo | None:
        repo = self.forge.find(request.path_params["owner"], request.path_params["repo"])
        if repo is None or user is None or (repo.members and user.login not in repo.members):
            return None
        return repo

    def get_repo(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return self.error(404, "The target couldn't be found.")
        return JSONResponse(self.repo_json(repo))

    def branches(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return self.error(404, "The target couldn't be found.")
        branches = git_branches(repo.bare) if repo.bare else []
        return self.paged(
            request,
            [
                {
                    "name": name,
                    "commit": {
                        "id": sha,
                        "message": "commit",
                        "url": f"{self.server_url}/{repo.full_name}/commit/{sha}",
                    },
                    "protected": False,
                    "user_can_push": True,
                }
                for name, sha in branches
            ],
        )

    def contents(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None or repo.bare is None:
            return self.error(404, "The target couldn't be found.")
        ref = request.query_params.get("ref") or repo.default_branch
        sha = git_resolve(repo.bare, ref)
        if sha is None:
            return self.error(404, f"object does not exist [id: {ref}, rel_path: ]")
        path = request.path_params.get("path", "").strip("/")
        kind = git_object_type(repo.bare, sha, path)
        if kind is None:
            return self.error(404, f"object does not exist [id: , rel_path: {path}]")
        if kind == "tree":
            return JSONResponse([self._item(repo, e, ref) for e in git_tree(repo.bare, sha, path)])
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        entry = next(e for e in git_tree(repo.bare, sha, parent) if e["path"] == path)
        item = self._item(repo, entry, ref)
        if item["type"] == "file":
            item["encoding"] = "base64"
            item["content"] = base64.b64encode(git_blob(repo.bare, sha, path)).decode()
        return JSONResponse(item)

    def _item(self, repo: FakeRepo, entry: dict[str, Any], ref: str) -> dict[str, Any]:
        kind = {"tree": "dir", "commit": "submodule"}.get(entry["type"], "file")
        if entry["mode"] == "120000":
            kind = "symlink"
        return {
            "name": entry["name"],
            "path": entry["path"],
            "sha": entry["sha"],
            "last_commit_sha": None,
            "type": kind,
            "size": entry["size"] or 0,
            "encoding": None,
            "content": None,
            "target": None,
            "url": f"{self.api_url}/repos/{repo.full_name}/contents/{entry['path']}?ref={ref}",
            "html_url": f"{self.server_url}/{repo.full_name}/src/branch/{ref}/{entry['path']}",
            "git_url": f"{self.api_url}/repos/{repo.full_name}/git/blobs/{entry['sha']}",
            "download_url": f"{self.server_url}/{repo.full_name}/raw/branch/{ref}/{entry['path']}",
            "submodule_git_url": None,
            "_links": {"self": f"{self.api_url}/repos/{repo.full_name}/contents/{entry['path']}"},
        }

    def git_tree(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None or repo.bare is None:
            return self.error(404, "The target couldn't be found.")
        sha = git_resolve(repo.bare, request.path_params["ref"])
        if sha is None:
            return self.error(400, "sha not found")
        recursive = request.query_params.get("recursive") in ("true", "1")
        per_page = int_arg(request, "per_page", 1000, high=10000)
        page = int_arg(request, "page", 1)
        entries = git_tree(repo.bare, sha, "", recursive=recursive)
        chunk = page_slice(entries, page, per_page)
        return JSONResponse(
            {
                "sha": sha,
                "url": f"{self.api_url}/repos/{repo.full_name}/git/trees/{sha}",
                "tree": [
                    {
                        "path": e["path"],
                        "mode": e["mode"],
                        "type": e["type"],
                        "size": e["size"] or 0,
                        "sha": e["sha"],
                        "url": f"{self.api_url}/repos/{repo.full_name}/git/blobs/{e['sha']}",
                    }
                    for e in chunk
                ],
                "truncated": page * per_page < len(entries),
                "page": page,
                "total_count": len(entries),
            }
        )

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id", "") not in self.forge.oauth_clients:
            return HTMLResponse("<p>Client ID not registered</p>", status_code=400)
        login = request.headers.get("x-fake-login")
        if not login or login not in self.forge.users:
            return HTMLResponse("<form>Sign in</form>")
        redirect_uri = params.get("redirect_uri", "")
        code = self.forge.grant_code(params["client_id"], login, redirect_uri)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    async def access_token(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            form = {key: str(value) for key, value in (await request.json()).items()}
        else:
            form = {key: str(value) for key, value in (await request.form()).items()}
        self.forge.record(request)
        status, body = self.forge.token_grant(form)
        if status == 200:
            body.pop("scope", None)
            body.pop("created_at", None)
        return JSONResponse(body, status_code=status)
