"""Repository content for the provider fakes, read from real bare repositories with git."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def _git(bare: Path, *args: str) -> bytes:
    result = subprocess.run(["git", *args], cwd=bare, capture_output=True, check=False)
    if result.returncode != 0:
        raise LookupError(result.stderr.decode(errors="replace"))
    return result.stdout


def git_resolve(bare: Path, ref: str) -> str | None:
    try:
        return _git(bare, "rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    except LookupError:
        return None


def git_branches(bare: Path) -> list[tuple[str, str]]:
    output = _git(bare, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    branches = []
    for line in output.decode().splitlines():
        name, _, sha = line.partition(" ")
        branches.append((name, sha))
    return branches


def git_tree(bare: Path, sha: str, path: str, *, recursive: bool = False) -> list[dict[str, Any]]:
    """Entries (mode, type, sha, size, path) of ``path`` at ``sha``; [] when it is not a tree."""
    spec = f"{sha}:{path}" if path else sha
    args = ["ls-tree", "-l", "-z", *(["-r", "-t"] if recursive else []), spec]
    entries = []
    for record in _git(bare, *args).decode().split("\0"):
        if not record:
            continue
        meta, _, name = record.partition("\t")
        mode, kind, object_sha, size = meta.split()
        full = f"{path}/{name}" if path else name
        entries.append(
            {
                "mode": mode,
                "type": kind,
                "sha": object_sha,
                "size": int(size) if size.isdigit() else None,
                "path": full,
                "name": name.rsplit("/", 1)[-1],
            }
        )
    return entries


def git_object_type(bare: Path, sha: str, path: str) -> str | None:
    try:
        spec = f"{sha}:{path}" if path else f"{sha}^{{tree}}"
        return _git(bare, "cat-file", "-t", spec).decode().strip()
    except LookupError:
        return None


def git_blob(bare: Path, sha: str, path: str) -> bytes:
    return _git(bare, "cat-file", "blob", f"{sha}:{path}")
