"""Reading repositories through git itself: URL-only repositories have no provider API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shipyard.errors import NotFound, ValidationFailed
from shipyard.git.clone import cache_paths
from shipyard.git.gitcmd import (
    GitCommandFailed,
    GitCredentials,
    ensure_cache_repo,
    fetch_commit,
    file_lock,
    run_git,
    run_git_bytes,
    run_remote_git,
    strip_userinfo,
)
from shipyard.git.providers.base import BlobEntry, Branch, EntryType, FileData, TreeEntry
from shipyard.git.refs import check_ref
from shipyard.outbound.policy import DEFAULT_POLICY, OutboundPolicy

LS_REMOTE_SECONDS = 30.0
LOCK_SECONDS = 120.0
SYMLINK_MODE = "120000"
SUBMODULE_MODE = "160000"


@dataclass(frozen=True)
class RemoteHeads:
    default_branch: str | None
    branches: list[Branch]


async def ls_remote(
    url: str,
    credentials: GitCredentials | None = None,
    *,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> RemoteHeads:
    """The remote's branches and default branch (``git ls-remote --symref``), where ``policy``
    allows git to connect."""
    url = strip_userinfo(url)
    output = await run_remote_git(
        "ls-remote",
        "--symref",
        "--",
        url,
        "HEAD",
        "refs/heads/*",
        url=url,
        policy=policy,
        credentials=credentials,
        time_limit=LS_REMOTE_SECONDS,
    )
    default: str | None = None
    branches: list[Branch] = []
    for line in output.splitlines():
        left, _, right = line.partition("\t")
        if left.startswith("ref: ") and right == "HEAD":
            default = left.removeprefix("ref: ").removeprefix("refs/heads/")
        elif right.startswith("refs/heads/"):
            branches.append(
                Branch(name=right.removeprefix("refs/heads/"), commit_sha=left, protected=False)
            )
    return RemoteHeads(default, sorted(branches, key=lambda branch: branch.name))


async def resolve(
    cache_dir: Path,
    url: str,
    ref: str,
    credentials: GitCredentials | None,
    *,
    time_limit: float,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> tuple[Path, str]:
    """Fetch ``ref`` into the cache (shared with checkouts) and return the cache and its SHA."""
    check_ref(ref)  # a refspec or an option never reaches ``git fetch``
    cache, lock = cache_paths(cache_dir, url)
    async with file_lock(lock, time_limit=LOCK_SECONDS):
        await ensure_cache_repo(cache)
        sha = await fetch_commit(cache, url, ref, credentials, time_limit=time_limit, policy=policy)
    return cache, sha


def _parse_ls_tree(output: str) -> list[tuple[str, str, str, int | None, str]]:
    """``mode type sha size\\tpath`` lines (``ls-tree -l -z``)."""
    rows = []
    for record in output.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split()
        rows.append((mode, kind, sha, int(size) if size.isdigit() else None, path))
    return rows


async def tree(cache: Path, sha: str, path: str) -> list[TreeEntry]:
    clean = path.strip("/")
    spec = f"{sha}:{clean}" if clean else f"{sha}^{{tree}}"
    try:
        kind = (await run_git("cat-file", "-t", spec, cwd=cache)).strip()
    except GitCommandFailed as exc:
        raise NotFound(f"'{clean}' does not exist at this ref", code="path_not_found") from exc
    if kind != "tree":
        raise ValidationFailed(f"'{clean}' is a file, not a directory", field="path")
    output = await run_git("ls-tree", "-l", "-z", spec, cwd=cache)
    entries = []
    for mode, kind_, _, size, name in _parse_ls_tree(output):
        entry_type: EntryType = (
            "dir"
            if kind_ == "tree"
            else "submodule"
            if mode == SUBMODULE_MODE
            else "symlink"
            if mode == SYMLINK_MODE
            else "file"
        )
        entries.append(
            TreeEntry(
                name=name,
                path=str(PurePosixPath(clean) / name) if clean else name,
                type=entry_type,
                size=size,
                mode=mode,
            )
        )
    return entries


async def blobs(cache: Path, sha: str) -> list[BlobEntry]:
    output = await run_git("ls-tree", "-r", "-l", "-z", sha, cwd=cache)
    return [
        BlobEntry(path=path, mode=mode, size=size)
        for mode, kind, _, size, path in _parse_ls_tree(output)
        if kind == "blob"
    ]


async def read_file(cache: Path, sha: str, path: str, *, max_bytes: int) -> FileData:
    clean = path.strip("/")
    if not clean:
        raise ValidationFailed("a file path is required", field="path")
    spec = f"{sha}:{clean}"
    try:
        kind = (await run_git("cat-file", "-t", spec, cwd=cache)).strip()
    except GitCommandFailed as exc:
        raise NotFound(f"'{clean}' does not exist at this ref", code="path_not_found") from exc
    if kind != "blob":
        raise ValidationFailed(f"'{clean}' is a {kind}, not a file", field="path")
    size = int((await run_git("cat-file", "-s", spec, cwd=cache)).strip())
    if size > max_bytes:
        return FileData(path=clean, size=size, data=None)
    return FileData(
        path=clean, size=size, data=await run_git_bytes("cat-file", "blob", spec, cwd=cache)
    )
