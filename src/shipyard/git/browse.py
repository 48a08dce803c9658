"""Browsing a repository: branches, trees, files and the script catalogue, briefly cached."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import httpx

from shipyard.config import Settings
from shipyard.errors import NotFound
from shipyard.git import local
from shipyard.git.models import GitProvider, Repository
from shipyard.git.providers import provider_client
from shipyard.git.providers.base import FileData, ProviderClient, RepoRef
from shipyard.git.refs import check_path, check_ref
from shipyard.git.repositories import repository_read
from shipyard.git.schemas import (
    BranchRead,
    FileRead,
    RepositoryRead,
    ScriptCatalogue,
    ScriptRead,
    TreeEntryRead,
    TreeRead,
)
from shipyard.git.scripts import (
    EXECUTABLE_MODE,
    ScriptFile,
    script_from_entry,
    script_kind,
    sort_scripts,
)
from shipyard.git.service import interactive_gate
from shipyard.git.tokens import ProviderTokenSource, SessionOpener
from shipyard.outbound.policy import OutboundPolicy

T = TypeVar("T")
BINARY_SNIFF_BYTES = 8000
DEFAULT_CACHE_ENTRIES = 2048
# Regular files only: a symbolic link named *.sh is not a script (a checkout skips them too).
SCRIPT_FILE_MODES = {"100644", "100755", "100664"}


class TTLCache:
    """A small least-recently-used cache whose entries expire after ``ttl`` seconds."""

    def __init__(
        self,
        ttl: float,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires < self.clock():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_load(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        hit, value = self.get(key)
        if hit:
            result: T = value
            return result
        loaded = await load()
        self.put(key, loaded)
        return loaded


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def file_read(ref: str, data: FileData) -> FileRead:
    if data.data is None:
        return FileRead(
            ref=ref,
            path=data.path,
            size=data.size,
            is_binary=False,
            truncated=True,
            encoding=None,
            content=None,
        )
    binary = is_binary(data.data)
    return FileRead(
        ref=ref,
        path=data.path,
        size=data.size,
        is_binary=binary,
        truncated=False,
        encoding=None if binary else "utf-8",
        content=None if binary else data.data.decode("utf-8"),
    )


class Browser:
    """Reads one repository: through its provider's API, or through git for URL repositories."""

    def __init__(
        self,
        *,
        db: SessionOpener,
        settings: Settings,
        http: httpx.AsyncClient,
        cache: TTLCache,
        repository: Repository,
        provider: GitProvider | None,
        is_pinned: bool = False,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.repository = repository
        self.provider = provider
        self.is_pinned = is_pinned
        self.client: ProviderClient | None = None
        if provider is not None:
            self.client = provider_client(
                provider.type,
                http=http,
                settings=settings,
                server_url=provider.server_url,
                token=ProviderTokenSource(db=db, settings=settings, http=http, provider=provider),
                gate=interactive_gate(settings),
            )
        self.ref_repo = RepoRef(
            external_id=repository.external_id or "",
            owner=repository.owner,
            name=repository.name,
        )

    @property
    def view(self) -> RepositoryRead:
        """The repository as the API shows it to the caller who opened this browser."""
        return repository_read(self.repository, is_pinned=self.is_pinned)

    def _key(self, *parts: Any) -> tuple[Any, ...]:
        # Tenant and repository in every key: nothing cached is shared across them.
        return (self.repository.tenant_id, self.repository.id, *parts)

    def default_ref(self, ref: str | None) -> str:
        if ref:
            return check_ref(ref)
        chosen = self.repository.default_branch
        if not chosen:
            raise NotFound("the repository is empty (it has no default branch)", code="empty")
        return check_ref(chosen)

    async def _local(self, ref: str) -> tuple[Path, str]:
        """Fetch ``ref`` of a URL repository (public: no credentials) into the clone cache."""
        check_ref(ref)  # never a refspec or an option on git's command line
        return await local.resolve(
            self.settings.clone_cache_dir / str(self.repository.tenant_id),
            self.repository.clone_url or self.repository.url or "",
            ref,
            None,
            time_limit=self.settings.git_clone_timeout_seconds,
            policy=OutboundPolicy.from_settings(self.settings),
        )

    async def branches(self) -> list[BranchRead]:
        async def load() -> list[BranchRead]:
            if self.client is not None:
                branches = await self.client.branches(self.ref_repo)
            else:
                heads = await local.ls_remote(
                    self.repository.clone_url or "",
                    policy=OutboundPolicy.from_settings(self.settings),
                )
                branches = heads.branches
            default = self.repository.default_branch
            return [
                BranchRead(
                    name=branch.name,
                    commit_sha=branch.commit_sha,
                    protected=branch.protected,
                    is_default=branch.name == default,
                )
                for branch in branches
            ]

        return await self.cache.get_or_load(self._key("branches"), load)

    async def tree(self, ref: str | None, path: str) -> TreeRead:
        chosen = self.default_ref(ref)
        clean = check_path(path).strip("/")

        async def load() -> TreeRead:
            if self.client is not None:
                entries = await self.client.tree(self.ref_repo, ref=chosen, path=clean)
            else:
                cache, sha = await self._local(chosen)
                entries = await local.tree(cache, sha, clean)
            return TreeRead(
                ref=chosen,
                path=clean,
                entries=sorted(
                    (
                        TreeEntryRead(
                            name=entry.name,
                            path=entry.path,
                            type=entry.type,
                            size=entry.size,
                            is_script=entry.type == "file"
                            and script_kind(entry.path, executable=entry.mode == EXECUTABLE_MODE)
                            is not None,
                        )
                        for entry in entries
                    ),
                    key=lambda entry: (entry.type != "dir", entry.name.lower()),
                ),
            )

        return await self.cache.get_or_load(self._key("tree", chosen, clean), load)

    async def file(self, ref: str | None, path: str) -> FileRead:
        chosen = self.default_ref(ref)
        clean = str(PurePosixPath("/", check_path(path).strip("/"))).lstrip("/")
        max_bytes = self.settings.git_file_max_bytes

        async def load() -> FileRead:
            if self.client is not None:
                data = await self.client.read_file(
                    self.ref_repo, ref=chosen, path=clean, max_bytes=max_bytes
                )
            else:
                cache, sha = await self._local(chosen)
                data = await local.read_file(cache, sha, clean, max_bytes=max_bytes)
            return file_read(chosen, data)

        return await self.cache.get_or_load(self._key("file", chosen, clean), load)

    async def script_files(self, ref: str) -> list[ScriptFile]:
        """The catalogue at ``ref``, uncached."""
        check_ref(ref)
        if self.client is not None:
            blobs = await self.client.blobs(self.ref_repo, ref=ref)
        else:
            cache, sha = await self._local(ref)
            blobs = await local.blobs(cache, sha)
        found = [
            script
            for blob in blobs
            if blob.mode in SCRIPT_FILE_MODES
            and (
                script := script_from_entry(
                    self.repository.id,
                    blob.path,
                    executable=blob.mode == EXECUTABLE_MODE,
                    size=blob.size,
                )
            )
            is not None
        ]
        return sort_scripts(found)

    async def scripts(self, ref: str | None) -> ScriptCatalogue:
        chosen = self.default_ref(ref)

        async def load() -> ScriptCatalogue:
            return ScriptCatalogue(
                repository_id=self.repository.id,
                ref=chosen,
                scripts=[
                    ScriptRead.model_validate(script) for script in await self.script_files(chosen)
                ],
            )

        return await self.cache.get_or_load(self._key("scripts", chosen), load)
