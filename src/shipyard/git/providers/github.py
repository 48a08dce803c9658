"""GitHub and GitHub Enterprise Server (REST API v3)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

from shipyard.errors import ValidationFailed
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
from shipyard.outbound.api import segment, segments

GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"
CONTENT_TYPES: dict[str, EntryType] = {
    "file": "file",
    "dir": "dir",
    "symlink": "symlink",
    "submodule": "submodule",
}


def last_page(response: httpx.Response) -> int | None:
    """The page number of ``rel="last"`` in a ``Link`` header (GitHub, Gitea)."""
    link = response.links.get("last")
    if not link or not link.get("url"):
        return None
    values = parse_qs(urlsplit(link["url"]).query).get("page")
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


def repo_path(repo: RepoRef) -> str:
    """``/repos/{owner}/{name}`` with each segment quoted (GitHub and Gitea)."""
    return f"/repos/{segments(repo.full_name)}"


def contents_path(repo: RepoRef, path: str) -> str:
    """``/repos/{owner}/{name}/contents[/{path}]`` (GitHub and Gitea)."""
    clean = path.strip("/")
    suffix = f"/{segments(clean)}" if clean else ""
    return f"{repo_path(repo)}/contents{suffix}"


def decode_content(item: dict[str, Any], *, where: str) -> bytes:
    content = require(item, "content", str, where=where)
    try:
        return base64.b64decode(content, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse(f"the provider's {where} content is not base64") from exc


class GitHubClient(ProviderClient):
    type: ClassVar[str] = "github"
    oauth_scopes: ClassVar[str] = "repo read:org read:user"

    @property
    def api_base(self) -> str:
        # github.com has its own API host; Enterprise Server serves the API under /api/v3.
        return f"{self.server_url}/api/v3" if self.server_url else GITHUB_API

    @property
    def web_base(self) -> str:
        return self.server_url or GITHUB_WEB

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.web_base}/login/oauth/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.web_base}/login/oauth/access_token"

    def total_pages(self, response: httpx.Response) -> int | None:
        return last_page(response) if "next" in response.links else 1

    async def current_user(self) -> RemoteUser:
        user = await self.get_json("/user")
        return RemoteUser(
            id=str(require(user, "id", int, where="user")),
            login=require(user, "login", str, where="user"),
            name=optional_str(user, "name"),
        )

    async def list_repositories(self, sink: RepositorySink | None = None) -> Listing:
        return await self.collect_repositories(
            "/user/repos",
            {
                "affiliation": "owner,collaborator,organization_member",
                "visibility": "all",
                "sort": "full_name",
            },
            sink,
        )

    def repository(self, item: Any) -> RemoteRepository:
        return github_style_repository(item)

    async def branches(self, repo: RepoRef) -> list[Branch]:
        items, _ = await self.paginate(f"{repo_path(repo)}/branches", {})
        return [branch_of(item, sha_key="sha") for item in items]

    async def tree(self, repo: RepoRef, *, ref: str, path: str) -> list[TreeEntry]:
        body = await self.get_json(contents_path(repo, path), {"ref": ref})
        items = body if isinstance(body, list) else [body]
        return [contents_entry(item) for item in items]

    async def blobs(self, repo: RepoRef, *, ref: str) -> list[BlobEntry]:
        body = await self.get_json(
            f"{repo_path(repo)}/git/trees/{segment(ref)}", {"recursive": "1"}
        )
        return tree_blobs(body)

    async def read_file(self, repo: RepoRef, *, ref: str, path: str, max_bytes: int) -> FileData:
        body = await self.get_json(contents_path(repo, path), {"ref": ref})
        return contents_file(body, path=path, max_bytes=max_bytes)

    async def create_hook(self, repo: RepoRef, *, url: str, secret: str, events: list[str]) -> str:
        # POST /repos/{owner}/{repo}/hooks (docs.github.com/rest/repos/webhooks): a tag push
        # is a `push` event on GitHub.
        body = await self.send_json(
            "POST",
            f"{repo_path(repo)}/hooks",
            {
                "name": "web",
                "active": True,
                "events": github_events(events),
                "config": {
                    "url": url,
                    "content_type": "json",
                    "secret": secret,
                    "insecure_ssl": "0",
                },
            },
        )
        return str(require(body, "id", int, where="hook"))

    async def delete_hook(self, repo: RepoRef, hook_id: str) -> None:
        await delete_ignoring_gone(self, f"{repo_path(repo)}/hooks/{segment(hook_id)}")


def github_events(kinds: list[str]) -> list[str]:
    """GitHub's (and Gitea's) hook events for Shipyard's kinds: tags arrive as pushes."""
    events = ["push"] if {"push", "tag"} & set(kinds) else []
    if "release" in kinds:
        events.append("release")
    return events or ["push"]


async def delete_ignoring_gone(client: ProviderClient, path: str) -> None:
    """DELETE ``path``; a hook someone already removed at the provider is not an error."""
    await client.api.request("DELETE", client.url(path), passthrough=(404, 410))


def contents_entry(item: Any) -> TreeEntry:
    """One item of a contents-API directory listing (GitHub and Gitea share the shape)."""
    kind = require(item, "type", str, where="contents entry")
    if kind not in CONTENT_TYPES:
        raise MalformedResponse(f"unknown contents entry type '{kind}'")
    size = item.get("size")
    return TreeEntry(
        name=require(item, "name", str, where="contents entry"),
        path=require(item, "path", str, where="contents entry"),
        type=CONTENT_TYPES[kind],
        size=size if isinstance(size, int) else None,
        mode=None,
    )


def contents_file(body: Any, *, path: str, max_bytes: int) -> FileData:
    if isinstance(body, list) or (isinstance(body, dict) and body.get("type") == "dir"):
        raise ValidationFailed(f"'{path}' is a directory, not a file", field="path")
    if require(body, "type", str, where="file") != "file":
        raise ValidationFailed(f"'{path}' is a {body['type']}, not a file", field="path")
    size = require(body, "size", int, where="file")
    # Past 1 MB the contents API sends no content ("encoding": "none"): only the size is known.
    if size > max_bytes or body.get("encoding") != "base64":
        return FileData(path=path, size=size, data=None)
    return FileData(path=path, size=size, data=decode_content(body, where="file"))


def tree_blobs(body: Any) -> list[BlobEntry]:
    """The files of a recursive git tree (GitHub and Gitea share the shape)."""
    tree = require(body, "tree", list, where="tree")
    blobs = []
    for item in tree:
        if require(item, "type", str, where="tree entry") != "blob":
            continue
        size = item.get("size")
        blobs.append(
            BlobEntry(
                path=require(item, "path", str, where="tree entry"),
                mode=require(item, "mode", str, where="tree entry"),
                size=size if isinstance(size, int) else None,
            )
        )
    return blobs


def github_style_repository(item: Any) -> RemoteRepository:
    """A repository object as GitHub returns it (Gitea's API uses the same fields)."""
    owner = item.get("owner") if isinstance(item, dict) else None
    return RemoteRepository(
        external_id=str(require(item, "id", int, where="repository")),
        name=require(item, "name", str, where="repository"),
        owner=optional_str(owner, "login") if isinstance(owner, dict) else None,
        description=optional_str(item, "description"),
        url=optional_str(item, "html_url"),
        clone_url=optional_str(item, "clone_url"),
        is_private=bool(item.get("private", False)),
        default_branch=optional_str(item, "default_branch"),
        language=optional_str(item, "language"),
    )
