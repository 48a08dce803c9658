"""Which files are scripts, and their ids."""

from __future__ import annotations

from uuid import UUID

import pytest

from shipyard.git.scripts import normalise_path, script_from_entry, script_id_for, script_kind

REPO = UUID("8f6d2d8e-3c7b-4a6e-9a53-2f1d7d3c9b10")


@pytest.mark.parametrize(
    ("path", "executable", "kind"),
    [
        ("deploy.sh", False, "shell"),
        ("ops/Backup.BASH", False, "bash"),
        ("tool.py", False, "python"),
        ("win/setup.ps1", True, "powershell"),
        ("bin/run", True, "executable"),
        ("README.md", False, None),
        ("Makefile", False, None),
        ("config.shx", False, None),
    ],
)
def test_script_kinds(path: str, executable: bool, kind: str | None) -> None:
    assert script_kind(path, executable=executable) == kind


def test_ids_are_uuid5_of_the_repository_and_the_normalised_path() -> None:
    from uuid import uuid5

    assert script_id_for(REPO, "scripts/deploy.sh") == uuid5(REPO, "scripts/deploy.sh")
    assert script_id_for(REPO, "./scripts//deploy.sh") == script_id_for(REPO, "scripts/deploy.sh")
    assert script_id_for(REPO, "/scripts/deploy.sh") == script_id_for(REPO, "scripts/deploy.sh")
    assert script_id_for(REPO, "a.sh") != script_id_for(REPO, "b.sh")
    other = UUID("00000000-0000-4000-8000-000000000001")
    assert script_id_for(REPO, "a.sh") != script_id_for(other, "a.sh")
    assert normalise_path("scripts\\win\\a.ps1") == "scripts/win/a.ps1"


def test_catalogue_entries() -> None:
    entry = script_from_entry(REPO, "./bin/run", executable=True, size=12)
    assert entry is not None
    assert (entry.path, entry.name, entry.kind, entry.size) == ("bin/run", "run", "executable", 12)
    assert entry.id == script_id_for(REPO, "bin/run")
    assert script_from_entry(REPO, "docs/guide.md", executable=False) is None
