"""GitLab (gitlab.com or self-managed, REST API v4)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

import httpx

from shipyard.errors import ShipyardError, ValidationFailed
from shipyard.git.providers.base import (
    BlobEntry,
    Branch,
    EntryType,
    FileData,
    Listing,
    MalformedResponse,
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
from shipyard.git.providers.github import decode_content, delete_ignoring_gone
from shipyard.outbound.api import segment

GITLAB_COM = "https://gitlab.com"
TREE_TYPES: dict[str, EntryType] = {"tree": "dir", "blob": "file", "commit": "submodule"}
SYMLINK_MODE = "120000"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class GitLabClient(ProviderClient):
    type: ClassVar[str] = "gitlab"
    default_server: ClassVar[str | None] = GITLAB_COM
    # `api` rather than `read_api`: registering a template's webhook on a project (POST
    # /projects/:id/hooks) needs write access to the API; read_api alone answers 403.
    oauth_scopes: ClassVar[str] = "api read_repository read_user"

    @property
    def api_base(self) -> str:
        return f"{self.server_url}/api/v4"

    @property
    def web_base(self) -> str:
        return self.server_url or GITLAB_COM

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.web_base}/oauth/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.web_base}/oauth/token"

    def total_pages(self, response: httpx.Response) -> int | None:
        # GitLab leaves the totals out past 10,000 rows; then pages are followed one by one.
        value = response.headers.get("x-total-pages")
        return int(value) if value and value.isascii() and value.isdigit() else None

    def total_items(self, response: httpx.Response) -> int | None:
        value = response.headers.get("x-total")
        return int(value) if value and value.isascii() and value.isdigit() else None

    def next_url(self, response: httpx.Response) -> str | None:
        link = super().next_url(response)
        if link:
            return link
        next_page = response.headers.get("x-next-page")
        if not next_page or not (next_page.isascii() and next_page.isdigit()):
            return None
        return str(response.request.url.copy_merge_params({"page": next_page}))

    async def current_user(self) -> RemoteUser:
        user = await self.get_json("/user")
        return RemoteUser(
            id=str(require(user, "id", int, where="user")),
            login=require(user, "username", str, where="user"),
            name=optional_str(user, "name"),
        )

    async def list_repositories(self, sink: RepositorySink | None = None) -> Listing:
        # membership=true: personal projects and every group project the user belongs to.
        return await self.collect_repositories(
            "/projects", {"membership": "true", "order_by": "id", "sort": "asc"}, sink
        )

    def repository(self, item: Any) -> RemoteRepository:
        namespace = item.get("namespace") if isinstance(item, dict) else None
        visibility = item.get("visibility", "private")
        return RemoteRepository(
            external_id=str(require(item, "id", int, where="project")),
            name=require(item, "path", str, where="project"),
            owner=optional_str(namespace, "full_path") if isinstance(namespace, dict) else None,
            description=optional_str(item, "description"),
            url=optional_str(item, "web_url"),
            clone_url=optional_str(item, "http_url_to_repo"),
            is_private=visibility != "public",
            default_branch=optional_str(item, "default_branch"),
            language=None,
            language_known=False,
            activity_at=parse_time(item.get("last_activity_at")),
        )

    async def languages(self, external_ids: list[str]) -> dict[str, str | None]:
        """The main language of each project (the list endpoint does not include it)."""
        semaphore = asyncio.Semaphore(self.settings.git_page_concurrency)

        async def one(external_id: str) -> tuple[str, str | None]:
            async with semaphore:
                body = await self.get_json(f"/projects/{segment(external_id)}/languages")
            if not isinstance(body, dict):
                raise MalformedResponse("the provider's languages answer is not an object")
            shares = {k: v for k, v in body.items() if isinstance(v, int | float)}
            return external_id, max(shares, key=lambda k: shares[k]) if shares else None

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(external_id)) for external_id in external_ids]
        except* ShipyardError as errors:
            raise errors.exceptions[0] from None
        return dict(task.result() for task in tasks)

    def _project(self, repo: RepoRef) -> str:
        return f"/projects/{segment(repo.external_id)}"

    async def branches(self, repo: RepoRef) -> list[Branch]:
        items, _ = await self.paginate(f"{self._project(repo)}/repository/branches", {})
        return [branch_of(item, sha_key="id") for item in items]

    async def tree(self, repo: RepoRef, *, ref: str, path: str) -> list[TreeEntry]:
        params = {"ref": ref, "path": path.strip("/")} if path.strip("/") else {"ref": ref}
        items, _ = await self.paginate(f"{self._project(repo)}/repository/tree", params)
        entries = []
        for item in items:
            kind = require(item, "type", str, where="tree entry")
            mode = optional_str(item, "mode")
            if kind not in TREE_TYPES:
                raise MalformedResponse(f"unknown tree entry type '{kind}'")
            entries.append(
                TreeEntry(
                    name=require(item, "name", str, where="tree entry"),
                    path=require(item, "path", str, where="tree entry"),
                    type="symlink" if mode == SYMLINK_MODE else TREE_TYPES[kind],
                    size=None,
                    mode=mode,
                )
            )
        return entries

    async def blobs(self, repo: RepoRef, *, ref: str) -> list[BlobEntry]:
        items, _ = await self.paginate(
            f"{self._project(repo)}/repository/tree", {"ref": ref, "recursive": "true"}
        )
        return [
            BlobEntry(
                path=require(item, "path", str, where="tree entry"),
                mode=require(item, "mode", str, where="tree entry"),
                size=None,
            )
            for item in items
            if require(item, "type", str, where="tree entry") == "blob"
        ]

    async def read_file(self, repo: RepoRef, *, ref: str, path: str, max_bytes: int) -> FileData:
        clean = path.strip("/")
        if not clean:
            raise ValidationFailed("a file path is required", field="path")
        url = self.url(f"{self._project(repo)}/repository/files/{segment(clean)}")
        # HEAD first: the size header tells whether the content is worth downloading.
        head = await self.request("HEAD", url, params={"ref": ref})
        size_header = head.headers.get("x-gitlab-size", "")
        if size_header.isascii() and size_header.isdigit() and int(size_header) > max_bytes:
            return FileData(path=clean, size=int(size_header), data=None)
        body = await self.get_json(url, {"ref": ref})
        size = require(body, "size", int, where="file")
        if size > max_bytes:
            return FileData(path=clean, size=size, data=None)
        return FileData(path=clean, size=size, data=decode_content(body, where="file"))

    async def create_hook(self, repo: RepoRef, *, url: str, secret: str, events: list[str]) -> str:
        # POST /projects/:id/hooks (docs.gitlab.com/api/project_webhooks): the secret is the
        # hook's `token`, sent back as X-Gitlab-Token.
        body = await self.send_json(
            "POST",
            f"{self._project(repo)}/hooks",
            {
                "url": url,
                "token": secret,
                "push_events": "push" in events,
                "tag_push_events": "tag" in events,
                "releases_events": "release" in events,
                "enable_ssl_verification": True,
            },
        )
        return str(require(body, "id", int, where="hook"))

    async def delete_hook(self, repo: RepoRef, hook_id: str) -> None:
        await delete_ignoring_gone(self, f"{self._project(repo)}/hooks/{segment(hook_id)}")
