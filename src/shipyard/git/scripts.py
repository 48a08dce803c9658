"""The script catalogue rule: which files of a repository are runnable, and their stable ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from uuid import UUID, uuid5

ScriptKind = Literal["shell", "bash", "python", "powershell", "executable"]

SCRIPT_EXTENSIONS: dict[str, ScriptKind] = {
    ".sh": "shell",
    ".bash": "bash",
    ".py": "python",
    ".ps1": "powershell",
}
# Git records a file's executable bit as mode 100755; everything else is 100644, 120000, ...
EXECUTABLE_MODE = "100755"


def script_id_for(repository_id: UUID, path: str) -> UUID:
    """The id of the script at ``path`` (repository-relative, ``/``-separated) of a repository.

    ``uuid5(repository_id, path)``: the same file keeps its id across syncs, refs and clones, so
    a deployment's ``script_ids`` always name the same paths.
    """
    return uuid5(repository_id, normalise_path(path))


def normalise_path(path: str) -> str:
    """``./a//b.sh`` and ``/a/b.sh`` are the script ``a/b.sh``."""
    parts = [
        part for part in PurePosixPath(path.replace("\\", "/")).parts if part not in {"/", "."}
    ]
    return "/".join(parts)


def script_kind(path: str, *, executable: bool) -> ScriptKind | None:
    """The kind of script ``path`` is, or None when it is not runnable."""
    suffix = PurePosixPath(path).suffix.lower()
    kind = SCRIPT_EXTENSIONS.get(suffix)
    if kind is not None:
        return kind
    return "executable" if executable else None


@dataclass(frozen=True)
class ScriptFile:
    """One runnable file of a repository at some commit."""

    id: UUID
    path: str
    name: str
    kind: ScriptKind
    executable: bool
    size: int | None = None


def script_from_entry(
    repository_id: UUID, path: str, *, executable: bool, size: int | None = None
) -> ScriptFile | None:
    """A catalogue entry for the file at ``path``, or None when it is not a script."""
    clean = normalise_path(path)
    kind = script_kind(clean, executable=executable)
    if kind is None or not clean:
        return None
    return ScriptFile(
        id=script_id_for(repository_id, clean),
        path=clean,
        name=PurePosixPath(clean).name,
        kind=kind,
        executable=executable,
        size=size,
    )


def sort_scripts(scripts: list[ScriptFile]) -> list[ScriptFile]:
    return sorted(scripts, key=lambda script: script.path)
