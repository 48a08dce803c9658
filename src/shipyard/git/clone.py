"""Local checkouts of repositories for execution: cached, fetched shallow, one working tree per run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import httpx

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.credentials import clone_source
from shipyard.git.gitcmd import (
    GIT_TIMEOUT_SECONDS,
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
