"""A GitHub Enterprise Server imitation: REST API v3 under ``/api/v3`` and OAuth under ``/login``.

Follows docs.github.com/rest: ``Link`` pagination (``per_page`` up to 100, absolute URLs),
``x-ratelimit-*`` headers, errors as ``{"message", "documentation_url"}``, secondary rate limits
as 403 with ``retry-after``, the contents and git-trees APIs, and the OAuth web flow whose token
endpoint answers errors with status 200 and an ``error`` member. PyGithub accepts it.
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

DOCS = "https://docs.github.com/rest"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
CONTENT_LIMIT = 1024 * 1024


def error(status: int, message: str, documentation_url: str = DOCS) -> JSONResponse:
    return JSONResponse(
        {"message": message, "documentation_url": documentation_url, "status": str(status)},
        status_code=status,
    )


def unauthorized(had_token: bool) -> Response:
    return error(401, "Bad credentials" if had_token else "Requires authentication")


class FakeGitHub:
    """``start()`` it, then point a provider at ``server_url`` (GitHub Enterprise style)."""

    def __init__(self) -> None:
        self.forge = Forge(kind="github")
        self._pages: dict[tuple[str, str, int], tuple[bytes, dict[str, str]]] = {}
        self._threaded = ThreadedApp(self.app())

    def reset(self) -> None:
        """Forget every user, token, repository and fault (between tests)."""
        self.forge = Forge(kind="github")
        self._pages = {}

    def start(self) -> FakeGitHub:
        self._threaded.start()
        return self

    def stop(self) -> None:
        self._threaded.stop()

    @property
    def server_url(self) -> str:
        return self._threaded.url

    @property
    def api_url(self) -> str:
        return f"{self.server_url}/api/v3"

    def secondary_rate_limit(self, *, after: int, retry_after: int = 1, count: int = 1) -> None:
        """After ``after`` more repository-list requests, refuse ``count`` of them as GitHub does."""
        self.forge.fail(
            403,
            {
                "message": SECONDARY_LIMIT_MESSAGE,
                "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            },
            path_contains="/user/repos",
            after=after,
            count=count,
            headers={"retry-after": str(retry_after)},
        )

    # -- JSON shapes ----------------------------------------------------------------------
    def user_json(self, user: FakeUser) -> dict[str, Any]:
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_{user.id}",
            "avatar_url": f"{self.server_url}/avatars/u/{user.id}",
            "url": f"{self.api_url}/users/{user.login}",
            "html_url": f"{self.server_url}/{user.login}",
            "type": "User",
            "site_admin": False,
            "name": user.name,
            "email": user.email,
            "public_repos": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        }

    def repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}"
        html = f"{self.server_url}/{repo.full_name}"
        stamp = repo.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": {
                "login": repo.owner,
                "id": abs(hash(repo.owner)) % 10**8,
                "node_id": f"O_{repo.owner}",
                "avatar_url": f"{self.server_url}/avatars/{repo.owner}",
                "url": f"{self.api_url}/users/{repo.owner}",
                "html_url": f"{self.server_url}/{repo.owner}",
                "type": repo.owner_kind,
                "site_admin": False,
            },
            "html_url": html,
            "description": repo.description,
            "fork": False,
            "url": api,
            "branches_url": f"{api}/branches{{/branch}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "git_url": f"git://{self.server_url.split('://', 1)[1]}/{repo.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "clone_url": repo.clone_url or f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 108,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": repo.language,
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "forks_count": 0,
            "archived": False,
            "disabled": False,
            "open_issues_count": 0,
            "license": None,
            "topics": [],
            "visibility": "private" if repo.private else "public",
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "default_branch": repo.default_branch,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": stamp,
            "pushed_at": stamp,
            "permissions": {
                "admin": True,
                "maintain": True,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }

    # -- routes ---------------------------------------------------------------------------
    def app(self) -> Starlette:
        def api(path: str, handler: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
            async def endpoint(request: Request) -> Response:
                return await serve(self.forge, request, handler, unauthorized=unauthorized)

            return Route(f"/api/v3{path}", endpoint, methods=list(methods))

        def write(path: str, handler: Any, methods: tuple[str, ...]) -> Route:
            async def endpoint(request: Request) -> Response:
                await read_json_body(request)
                return await serve(self.forge, request, handler, unauthorized=unauthorized)

            return Route(f"/api/v3{path}", endpoint, methods=list(methods))

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

    def get_user(self, request: Request, user: FakeUser | None) -> Response:
        assert user is not None
        return JSONResponse(self.user_json(user))

    def list_repos(self, request: Request, user: FakeUser | None) -> Response:
        assert user is not None
        # Serialising thousands of repositories is the fake's own cost, not the client's: pages
        # are kept until the repositories change, so a benchmark measures the client.
        key = (user.login, request.url.query, self.forge.version)
        cached = self._pages.get(key)
        if cached is not None:
            body, headers = cached
            return Response(body, media_type="application/json", headers=headers)
        response = self._list_repos(request, user)
        link = response.headers.get("link")
        self._pages[key] = (bytes(response.body), {"link": link} if link else {})
        return response

    def _list_repos(self, request: Request, user: FakeUser) -> Response:
        per_page = int_arg(request, "per_page", 30, high=100)
        page = int_arg(request, "page", 1)
        repos = self.forge.visible(user.login)
        visibility = request.query_params.get("visibility", "all")
        if visibility != "all":
            repos = [r for r in repos if r.private == (visibility == "private")]
        if request.query_params.get("sort") == "full_name":
            repos.sort(key=lambda r: r.full_name.lower())
        last = max(math.ceil(len(repos) / per_page), 1)
        headers = {}
        link = link_header(request, page, last)
        if link:
            headers["link"] = link
        body = [self.repo_json(r) for r in page_slice(repos, page, per_page)]
        return JSONResponse(body, headers=headers)

    def _repo(self, request: Request, user: FakeUser | None) -> FakeRepo | None:
        repo = self.forge.find(request.path_params["owner"], request.path_params["repo"])
        if repo is None or user is None or (repo.members and user.login not in repo.members):
            return None
        return repo

    def get_repo(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return error(404, "Not Found", f"{DOCS}/repos/repos#get-a-repository")
        return JSONResponse(self.repo_json(repo))

    def branches(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return error(404, "Not Found")
        branches = git_branches(repo.bare) if repo.bare else []
        per_page = int_arg(request, "per_page", 30, high=100)
        page = int_arg(request, "page", 1)
        last = max(math.ceil(len(branches) / per_page), 1)
        body = [
            {
                "name": name,
                "commit": {
                    "sha": sha,
                    "url": f"{self.api_url}/repos/{repo.full_name}/commits/{sha}",
                },
                "protected": name == repo.default_branch,
            }
            for name, sha in page_slice(branches, page, per_page)
        ]
        link = link_header(request, page, last)
        return JSONResponse(body, headers={"link": link} if link else {})

    def _commit(self, repo: FakeRepo, ref: str | None) -> str | None:
        if repo.bare is None:
            return None
        return git_resolve(repo.bare, ref or repo.default_branch)

    def contents(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return error(404, "Not Found")
        if repo.bare is None:
            return error(404, "This repository is empty.")
        sha = self._commit(repo, request.query_params.get("ref"))
        if sha is None:
            return error(404, f"No commit found for the ref {request.query_params.get('ref')}")
        path = request.path_params.get("path", "").strip("/")
        kind = git_object_type(repo.bare, sha, path)
        if kind is None:
            return error(404, "Not Found", f"{DOCS}/repos/contents#get-repository-content")
        if kind == "tree":
            return JSONResponse(
                [self._content_item(repo, entry) for entry in git_tree(repo.bare, sha, path)]
            )
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        entry = next(e for e in git_tree(repo.bare, sha, parent) if e["path"] == path)
        item = self._content_item(repo, entry)
        if item["type"] == "file":
            data = git_blob(repo.bare, sha, path)
            if len(data) > CONTENT_LIMIT:
                item.update(encoding="none", content="")
            else:
                encoded = base64.b64encode(data).decode()
                lines = [encoded[i : i + 60] for i in range(0, len(encoded), 60)]
                item.update(encoding="base64", content="\n".join(lines) + "\n")
        return JSONResponse(item)

    def _content_item(self, repo: FakeRepo, entry: dict[str, Any]) -> dict[str, Any]:
        kind = {"tree": "dir", "commit": "submodule"}.get(entry["type"], "file")
        if entry["mode"] == "120000":
            kind = "symlink"
        api = f"{self.api_url}/repos/{repo.full_name}/contents/{entry['path']}"
        return {
            "type": kind,
            "size": entry["size"] or 0,
            "name": entry["name"],
            "path": entry["path"],
            "sha": entry["sha"],
            "url": api,
            "git_url": f"{self.api_url}/repos/{repo.full_name}/git/blobs/{entry['sha']}",
            "html_url": f"{self.server_url}/{repo.full_name}/blob/main/{entry['path']}",
            "download_url": None,
            "_links": {"self": api},
        }

    def git_tree(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None or repo.bare is None:
            return error(404, "Not Found")
        sha = self._commit(repo, request.path_params["ref"])
        if sha is None:
            return error(404, "Not Found", f"{DOCS}/git/trees#get-a-tree")
        recursive = request.query_params.get("recursive") not in (None, "", "0", "false")
        entries = git_tree(repo.bare, sha, "", recursive=recursive)
        tree = []
        for entry in entries:
            item = {
                "path": entry["path"],
                "mode": entry["mode"],
                "type": entry["type"],
                "sha": entry["sha"],
                "url": f"{self.api_url}/repos/{repo.full_name}/git/{entry['type']}s/{entry['sha']}",
            }
            if entry["type"] == "blob":
                item["size"] = entry["size"]
            tree.append(item)
        return JSONResponse(
            {
                "sha": sha,
                "url": f"{self.api_url}/repos/{repo.full_name}/git/trees/{sha}",
                "tree": tree,
                "truncated": False,
            }
        )

    # -- repository webhooks (docs.github.com/rest/repos/webhooks) -------------------------
    def hook_json(self, repo: FakeRepo, hook: dict[str, Any]) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}/hooks/{hook['id']}"
        config = dict(hook["config"])
        if "secret" in config:
            config["secret"] = "********"  # GitHub never shows a hook's secret again
        return {
            "type": "Repository",
            "id": hook["id"],
            "name": "web",
            "active": hook["active"],
            "events": hook["events"],
            "config": config,
            "updated_at": "2020-01-01T00:00:00Z",
            "created_at": "2020-01-01T00:00:00Z",
            "url": api,
            "test_url": f"{api}/test",
            "ping_url": f"{api}/pings",
            "deliveries_url": f"{api}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None},
        }

    def hooks(self, request: Request, user: FakeUser | None) -> Response:
        repo = self._repo(request, user)
        if repo is None:
            return error(404, "Not Found", f"{DOCS}/repos/webhooks#create-a-repository-webhook")
        if request.method == "GET":
            return JSONResponse([self.hook_json(repo, h) for h in self.forge.repo_hooks(repo)])
        body = request.state.json
        config = body.get("config") if isinstance(body, dict) else None
        if not isinstance(config, dict) or not config.get("url"):
            return JSONResponse(
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "Hook", "code": "custom", "message": "url is missing"}],
                    "documentation_url": f"{DOCS}/repos/webhooks#create-a-repository-webhook",
                    "status": "422",
                },
                status_code=422,
            )
        hook = self.forge.add_hook(
            repo,
            {
                "active": bool(body.get("active", True)),
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
            return error(404, "Not Found", f"{DOCS}/repos/webhooks#delete-a-repository-webhook")
        if request.method == "DELETE":
            self.forge.remove_hook(repo, hook_id)
            return Response(status_code=204)
        return JSONResponse(self.hook_json(repo, found))

    # -- OAuth web flow -------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        """The consent page; a test consents as ``X-Fake-Login: <login>``."""
        params = request.query_params
        client_id = params.get("client_id", "")
        if client_id not in self.forge.oauth_clients:
            return HTMLResponse("<h1>404 — application not found</h1>", status_code=404)
        login = request.headers.get("x-fake-login")
        if not login or login not in self.forge.users:
            return HTMLResponse("<form>Sign in to authorize the application</form>")
        redirect_uri = params.get("redirect_uri", "")
        if request.headers.get("x-fake-deny"):
            query = urlencode(
                {
                    "error": "access_denied",
                    "error_description": "The user has denied your application access.",
                    "state": params.get("state", ""),
                }
            )
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)
        code = self.forge.grant_code(client_id, login, redirect_uri)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    async def access_token(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.forge.record(request)
        status, body = self.forge.token_grant(form)
        if status != 200:
            # GitHub's token endpoint reports failures with 200 and an "error" member.
            names = {
                "invalid_client": "incorrect_client_credentials",
                "invalid_grant": "bad_refresh_token"
                if form.get("grant_type") == "refresh_token"
                else "bad_verification_code",
            }
            body = {
                "error": names.get(body["error"], body["error"]),
                "error_description": body["error_description"],
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
            }
        else:
            body = {
                "access_token": body["access_token"],
                "expires_in": body["expires_in"],
                "refresh_token": body["refresh_token"],
                "refresh_token_expires_in": 15897600,
                "scope": "",
                "token_type": "bearer",
            }
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return Response(urlencode(body), media_type="application/x-www-form-urlencoded")
