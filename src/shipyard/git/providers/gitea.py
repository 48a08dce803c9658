"""Gitea (and Forgejo), REST API v1."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import httpx

from shipyard.git.providers.base import (
    MAX_PAGES,
    BlobEntry,
    Branch,
    FileData,
    Listing,
    ProviderClient,
    RemoteRepository,
    RemoteUser,
    RepoRef,
    RepositorySink,
    TreeEntry,
    branch_of,
    optional_str,
    require,
)
from shipyard.git.providers.github import (
    contents_entry,
    contents_file,
    contents_path,
    delete_ignoring_gone,
    github_events,
    github_style_repository,
    last_page,
    repo_path,
    tree_blobs,
)
from shipyard.outbound.api import segment

# Gitea's default MAX_RESPONSE_ITEMS; larger limits are silently cut to it.
GITEA_PAGE_SIZE = 50
TREE_PAGE_SIZE = 1000


class GiteaClient(ProviderClient):
    type: ClassVar[str] = "gitea"
    auth_scheme: ClassVar[str] = "token"
    per_page: ClassVar[int] = GITEA_PAGE_SIZE
    # write:repository: registering a template's webhook (POST /repos/{owner}/{repo}/hooks)
    # needs it; read:repository alone is refused.
    oauth_scopes: ClassVar[str] = "write:repository read:user read:organization"

    @property
    def api_base(self) -> str:
        return f"{self.server_url}/api/v1"

    @property
    def web_base(self) -> str:
        return self.server_url or ""

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.web_base}/login/oauth/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.web_base}/login/oauth/access_token"

    def page_params(self, page: int) -> dict[str, Any]:
        return {"page": page, "limit": self.per_page}

    def total_items(self, response: httpx.Response) -> int | None:
        value = response.headers.get("x-total-count")
        return int(value) if value and value.isascii() and value.isdigit() else None

    def total_pages(self, response: httpx.Response) -> int | None:
        total = self.total_items(response)
        if total is not None:
            return max(math.ceil(total / self.per_page), 1)
        return last_page(response) if "next" in response.links else None

    async def current_user(self) -> RemoteUser:
        user = await self.get_json("/user")
        return RemoteUser(
            id=str(require(user, "id", int, where="user")),
            login=require(user, "login", str, where="user"),
            name=optional_str(user, "full_name"),
        )

    async def list_repositories(self, sink: RepositorySink | None = None) -> Listing:
        # Owned, collaborative and organisation repositories of the token's user.
        return await self.collect_repositories("/user/repos", {}, sink)

    def repository(self, item: Any) -> RemoteRepository:
        return github_style_repository(item)

    async def branches(self, repo: RepoRef) -> list[Branch]:
        items, _ = await self.paginate(f"{repo_path(repo)}/branches", {})
        return [branch_of(item, sha_key="id") for item in items]

    async def tree(self, repo: RepoRef, *, ref: str, path: str) -> list[TreeEntry]:
        body = await self.get_json(contents_path(repo, path), {"ref": ref})
        items = body if isinstance(body, list) else [body]
        return [contents_entry(item) for item in items]

    async def blobs(self, repo: RepoRef, *, ref: str) -> list[BlobEntry]:
        # Gitea pages recursive trees and says so with "truncated".
        url = f"{repo_path(repo)}/git/trees/{segment(ref)}"
        blobs: list[BlobEntry] = []
        for page in range(1, MAX_PAGES + 1):
            body = await self.get_json(
                url, {"recursive": "true", "page": page, "per_page": TREE_PAGE_SIZE}
            )
            blobs.extend(tree_blobs(body))
            if not body.get("truncated"):
                break
        return blobs

    async def read_file(self, repo: RepoRef, *, ref: str, path: str, max_bytes: int) -> FileData:
        body = await self.get_json(contents_path(repo, path), {"ref": ref})
        return contents_file(body, path=path, max_bytes=max_bytes)

    async def create_hook(self, repo: RepoRef, *, url: str, secret: str, events: list[str]) -> str:
        # POST /repos/{owner}/{repo}/hooks (Gitea's CreateHookOption): type "gitea" signs
        # with X-Gitea-Signature; tag pushes arrive as `push`.
        body = await self.send_json(
            "POST",
            f"{repo_path(repo)}/hooks",
            {
                "type": "gitea",
                "active": True,
                "events": github_events(events),
                "config": {"url": url, "content_type": "json", "secret": secret},
            },
        )
        return str(require(body, "id", int, where="hook"))

    async def delete_hook(self, repo: RepoRef, hook_id: str) -> None:
        await delete_ignoring_gone(self, f"{repo_path(repo)}/hooks/{segment(hook_id)}")
