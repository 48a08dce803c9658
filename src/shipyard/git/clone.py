"""Local checkouts of repositories for execution: cached, fetched shallow, one working tree per run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import httpx

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.credentials import clone_source
from shipyard.git.gitcmd import (
    GIT_TIMEOUT_SECONDS,
    GitCommandFailed,
    GitCredentials,
    cache_key,
    ensure_cache_repo,
    fetch_commit,
    file_lock,
    run_git,
)
from shipyard.git.scripts import ScriptFile, script_from_entry, sort_scripts
from shipyard.outbound.policy import DEFAULT_POLICY, OutboundPolicy

LOCK_TIMEOUT_SECONDS = 600.0
# The clone cache holds every tenant's repositories (private ones too): owner only.
PRIVATE_DIR_MODE = 0o700


def private_directory(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by this user only; tighten it if it exists."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR_MODE)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


@dataclass
class Checkout:
    """A working tree of one repository at one commit, private to the caller.

    ``path`` holds the files (with their executable bits); ``commit_sha`` is the full SHA the ref
    resolved to. Call :meth:`remove` when done (the cache itself stays for the next run).
    """

    path: Path
    commit_sha: str
    ref: str | None
    cache_path: Path
    _lock_path: Path = field(repr=False)

    async def remove(self) -> None:
        """Delete the working tree and its registration in the cache."""
        async with file_lock(self._lock_path, time_limit=LOCK_TIMEOUT_SECONDS):
            with contextlib.suppress(Exception):
                await run_git("worktree", "remove", "--force", str(self.path), cwd=self.cache_path)
            if self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)
            with contextlib.suppress(Exception):
                await run_git("worktree", "prune", cwd=self.cache_path)


def cache_paths(cache_dir: Path, clone_url: str) -> tuple[Path, Path]:
    """The bare cache repository of ``clone_url`` under ``cache_dir`` and its lock file."""
    key = cache_key(clone_url)
    return cache_dir / f"{key}.git", cache_dir / f"{key}.lock"


async def checkout_url(
    clone_url: str,
    *,
    ref: str | None = None,
    credentials: GitCredentials | None = None,
    cache_dir: Path,
    workdir: Path | None = None,
    time_limit: float = GIT_TIMEOUT_SECONDS,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> Checkout:
    """Check out ``clone_url`` at ``ref`` (branch, tag or SHA; the default branch when None).

    The repository is cached as a bare repository under ``cache_dir`` (one per URL) and updated
    with a shallow fetch; a file lock per repository makes concurrent calls — from tasks or
    processes — safe. The result is a fresh git worktree at ``workdir`` (default: a new directory
    under ``cache_dir/runs``), so concurrent runs at different refs never share files.
    Credentials travel as an HTTP header through the environment: never in the URL, argv,
    ``.git/config`` or a log. git connects only where ``policy`` allows (checked after DNS,
    pinned, no redirects, http and https only).
    """
    private_directory(cache_dir)
    cache, lock = cache_paths(cache_dir, clone_url)
    target = workdir or cache_dir / "runs" / uuid4().hex
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"checkout directory {target} is not empty")
    async with file_lock(lock, time_limit=LOCK_TIMEOUT_SECONDS):
        await ensure_cache_repo(cache)
        sha = await fetch_commit(
            cache, clone_url, ref, credentials, time_limit=time_limit, policy=policy
        )
        # A run that crashed left its worktree registered; forget those whose directory is gone.
        await run_git("worktree", "prune", cwd=cache)
        target.parent.mkdir(parents=True, exist_ok=True)
        await run_git("worktree", "add", "--detach", "--force", str(target), sha, cwd=cache)
    return Checkout(path=target, commit_sha=sha, ref=ref, cache_path=cache, _lock_path=lock)


async def checkout(
    *,
    db: Database,
    settings: Settings,
    tenant_id: UUID,
    repository_id: UUID,
    ref: str | None = None,
    workdir: Path | None = None,
    http: httpx.AsyncClient | None = None,
    policy: OutboundPolicy | None = None,
) -> Checkout:
    """Check out a Shipyard repository at ``ref`` (the repository's default branch when None).

    Looks the repository up in ``tenant_id``, uses its provider's token (refreshed first when
    it has expired) and caches per tenant under ``settings.clone_cache_dir``. ``policy`` is the
    runtime's outbound policy (built from ``settings`` when not given). Raises
    ``NotFound`` for an unknown repository or ref, ``ProviderError`` when the server refuses.
    """
    private_directory(settings.clone_cache_dir)
    source = await clone_source(
        db=db, settings=settings, tenant_id=tenant_id, repository_id=repository_id, http=http
    )
    return await checkout_url(
        source.clone_url,
        ref=ref or source.default_branch,
        credentials=source.credentials,
        cache_dir=settings.clone_cache_dir / str(tenant_id),
        workdir=workdir,
        time_limit=settings.git_clone_timeout_seconds,
        policy=policy or OutboundPolicy.from_settings(settings),
    )


def find_scripts(root: Path, repository_id: UUID) -> list[ScriptFile]:
    """The runnable scripts of the checkout at ``root``, with the catalogue's stable ids.

    ``*.sh``, ``*.bash``, ``*.py``, ``*.ps1`` and executable regular files; ``.git`` and symbolic
    links are skipped. ``ScriptFile.path`` is relative to ``root`` with ``/`` separators and
    ``ScriptFile.id == script_id_for(repository_id, path)``.
    """
    found: list[ScriptFile] = []
    root = root.resolve()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if name != ".git")
        for filename in filenames:
            full = Path(directory) / filename
            info = full.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            relative = full.relative_to(root).as_posix()
            script = script_from_entry(
                repository_id,
                relative,
                executable=bool(info.st_mode & stat.S_IXUSR),
                size=info.st_size,
            )
            if script is not None:
                found.append(script)
    return sort_scripts(found)


async def scan_scripts(root: Path, repository_id: UUID) -> list[ScriptFile]:
    """:func:`find_scripts` in a worker thread: a large checkout's walk never blocks the loop."""
    return await asyncio.to_thread(find_scripts, root, repository_id)


# Shared checkouts ---------------------------------------------------------------------------
# Runs that start together in one worker process share one working tree per (cache, commit):
# a thousand runs of one template due in the same second make one fetch and one worktree, not a
# thousand. Runs only read the tree (scripts are uploaded from it), so sharing it is safe.
FULL_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# A branch or tag resolved by one run is reused by another run of the same cache and ref only
# when that resolution started after the other run was requested, and within this window.
RESOLVE_WINDOW_SECONDS = 5.0
# A tree made for runs that all went away before using it is removed after this long.
ORPHAN_TREE_SECONDS = 5.0


@dataclass
class _Tree:
    checkout: Checkout
    key: tuple[Path, str]
    users: int = 0
    scans: dict[UUID, asyncio.Task[list[ScriptFile]]] = field(default_factory=dict)


@dataclass
class _Resolution:
    started_at: datetime
    started_monotonic: float
    task: asyncio.Task[str]


@dataclass
class _SharedTrees:
    """One event loop's shared trees (a worker process has one loop; tests may have several)."""

    trees: dict[tuple[Path, str], _Tree] = field(default_factory=dict)
    making: dict[tuple[Path, str], asyncio.Task[_Tree]] = field(default_factory=dict)
    resolutions: dict[tuple[Path, str], _Resolution] = field(default_factory=dict)
    # Removals under way, kept referenced until they end.
    removing: set[asyncio.Task[None]] = field(default_factory=set)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedTrees] = (
    weakref.WeakKeyDictionary()
)


def _shared() -> _SharedTrees:
    loop = asyncio.get_running_loop()
    shared = _SHARED.get(loop)
    if shared is None:
        shared = _SHARED[loop] = _SharedTrees()
    return shared


def shared_tree_count() -> int:
    """How many shared working trees this event loop holds now (for tests and metrics)."""
    return len(_shared().trees)


@dataclass
class SharedCheckout(Checkout):
    """One run's use of a shared working tree: :meth:`remove` lets go of it, and the tree is
    deleted when the last run using it lets go."""

    _tree: _Tree | None = field(default=None, repr=False)

    async def scripts(self, repository_id: UUID) -> list[ScriptFile]:
        """:func:`scan_scripts` of the tree, walked once for every run sharing it."""
        assert self._tree is not None, "checkout already removed"
        scan = self._tree.scans.get(repository_id)
        if scan is None or (scan.done() and scan.exception() is not None):
            scan = asyncio.create_task(scan_scripts(self.path, repository_id))
            self._tree.scans[repository_id] = scan
        return list(await asyncio.shield(scan))

    async def remove(self) -> None:
        tree, self._tree = self._tree, None
        if tree is None:
            return
        tree.users -= 1
        if tree.users > 0:
            return
        shared = _shared()
        if shared.trees.get(tree.key) is tree:
            del shared.trees[tree.key]
        await tree.checkout.remove()


async def _resolve_ref(
    shared: _SharedTrees,
    *,
    clone_url: str,
    cache: Path,
    lock: Path,
    ref: str | None,
    credentials: GitCredentials | None,
    time_limit: float,
    policy: OutboundPolicy,
    not_before: datetime | None,
) -> str:
    """The commit ``ref`` names now, fetched into the cache; one fetch for the runs asking at once."""
    key = (cache, ref or "")
    now = time.monotonic()
    known = shared.resolutions.get(key)
    if (
        known is not None
        and (not_before is None or known.started_at >= not_before)
        and now - known.started_monotonic < RESOLVE_WINDOW_SECONDS
        and not (known.task.done() and known.task.exception() is not None)
    ):
        return await asyncio.shield(known.task)

    async def fetch() -> str:
        async with file_lock(lock, time_limit=LOCK_TIMEOUT_SECONDS):
            await ensure_cache_repo(cache)
            return await fetch_commit(
                cache, clone_url, ref, credentials, time_limit=time_limit, policy=policy
            )

    resolution = _Resolution(datetime.now(UTC), now, asyncio.create_task(fetch()))
    shared.resolutions[key] = resolution

    def forget(task: asyncio.Task[str]) -> None:
        failed = not task.cancelled() and task.exception() is not None
        if failed and shared.resolutions.get(key) is resolution:
            del shared.resolutions[key]

    resolution.task.add_done_callback(forget)
    return await asyncio.shield(resolution.task)


async def _make_tree(
    shared: _SharedTrees,
    *,
    clone_url: str,
    cache: Path,
    lock: Path,
    sha: str,
    fetch_ref: str | None,
    credentials: GitCredentials | None,
    time_limit: float,
    policy: OutboundPolicy,
) -> _Tree:
    key = (cache, sha)
    async with file_lock(lock, time_limit=LOCK_TIMEOUT_SECONDS):
        await ensure_cache_repo(cache)
        if fetch_ref is not None:
            fetched = await fetch_commit(
                cache, clone_url, fetch_ref, credentials, time_limit=time_limit, policy=policy
            )
            if fetched != sha:  # pragma: no cover - a full SHA fetches itself
                raise GitCommandFailed(f"fetching {sha} gave {fetched}")
        await run_git("worktree", "prune", cwd=cache)
        target = cache.parent / "runs" / uuid4().hex
        target.parent.mkdir(parents=True, exist_ok=True)
        await run_git("worktree", "add", "--detach", "--force", str(target), sha, cwd=cache)
    tree = _Tree(
        checkout=Checkout(path=target, commit_sha=sha, ref=None, cache_path=cache, _lock_path=lock),
        key=key,
    )
    shared.trees[key] = tree

    def reap_if_unused() -> None:
        if tree.users == 0 and shared.trees.get(key) is tree:
            del shared.trees[key]
            removal = asyncio.ensure_future(tree.checkout.remove())
            shared.removing.add(removal)
            removal.add_done_callback(shared.removing.discard)

    asyncio.get_running_loop().call_later(ORPHAN_TREE_SECONDS, reap_if_unused)
    return tree


async def checkout_url_shared(
    clone_url: str,
    *,
    ref: str | None = None,
    credentials: GitCredentials | None = None,
    cache_dir: Path,
    time_limit: float = GIT_TIMEOUT_SECONDS,
    policy: OutboundPolicy = DEFAULT_POLICY,
    not_before: datetime | None = None,
) -> SharedCheckout:
    """Like :func:`checkout_url`, but the working tree is shared with this process's other runs
    of the same cache and commit (read it, never write to it).

    A full commit SHA gets exactly that commit (fetched when no run here has it checked out).
    A branch or tag is resolved by fetching it, and runs asking together share that fetch: a
    resolution is reused when it started at or after ``not_before`` (when the run was asked
    for) and less than ``RESOLVE_WINDOW_SECONDS`` ago. The result's ``commit_sha`` is what the
    tree holds: record that as what the run ran.
    """
    private_directory(cache_dir)
    cache, lock = cache_paths(cache_dir, clone_url)
    shared = _shared()
    if ref and FULL_SHA_RE.match(ref):
        sha, fetch_ref = ref, ref
    else:
        sha = await _resolve_ref(
            shared,
            clone_url=clone_url,
            cache=cache,
            lock=lock,
            ref=ref,
            credentials=credentials,
            time_limit=time_limit,
            policy=policy,
            not_before=not_before,
        )
        fetch_ref = None  # the resolution fetched it into the cache
    key = (cache, sha)
    while True:
        tree = shared.trees.get(key)
        if tree is not None and tree.checkout.path.exists():
            tree.users += 1
            return SharedCheckout(
                path=tree.checkout.path,
                commit_sha=sha,
                ref=ref,
                cache_path=cache,
                _lock_path=lock,
                _tree=tree,
            )
        making = shared.making.get(key)
        if making is None:
            making = asyncio.create_task(
                _make_tree(
                    shared,
                    clone_url=clone_url,
                    cache=cache,
                    lock=lock,
                    sha=sha,
                    fetch_ref=fetch_ref,
                    credentials=credentials,
                    time_limit=time_limit,
                    policy=policy,
                )
            )
            shared.making[key] = making
            making.add_done_callback(lambda _task: shared.making.pop(key, None))
        await asyncio.shield(making)


async def shared_checkout(
    *,
    db: Database,
    settings: Settings,
    tenant_id: UUID,
    repository_id: UUID,
    ref: str | None = None,
    http: httpx.AsyncClient | None = None,
    not_before: datetime | None = None,
) -> SharedCheckout:
    """:func:`checkout` through :func:`checkout_url_shared` (a run's read-only tree)."""
    private_directory(settings.clone_cache_dir)
    source = await clone_source(
        db=db, settings=settings, tenant_id=tenant_id, repository_id=repository_id, http=http
    )
    return await checkout_url_shared(
        source.clone_url,
        ref=ref or source.default_branch,
        credentials=source.credentials,
        cache_dir=settings.clone_cache_dir / str(tenant_id),
        time_limit=settings.git_clone_timeout_seconds,
        policy=OutboundPolicy.from_settings(settings),
        not_before=not_before,
    )
