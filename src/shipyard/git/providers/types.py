"""The values provider clients return, mapped onto Shipyard's terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class RemoteUser:
    id: str
    login: str
    name: str | None


@dataclass(frozen=True)
class RemoteRepository:
    """A repository as the provider lists it, mapped onto Shipyard's columns."""

    external_id: str
    name: str
    owner: str | None
    description: str | None
    url: str | None
    clone_url: str | None
    is_private: bool
    default_branch: str | None
    language: str | None
    # When the provider's list leaves out the language (GitLab), it is looked up separately.
    language_known: bool = True
    activity_at: datetime | None = None


@dataclass(frozen=True)
class Listing:
    repositories: list[RemoteRepository]
    # False when pages shifted under us (a short page before the last, fewer items than the
    # reported total): then nothing may be deleted as "gone upstream".
    complete: bool


@dataclass(frozen=True)
class RepoRef:
    """How a provider addresses one repository."""

    external_id: str
    owner: str | None
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}" if self.owner else self.name


@dataclass(frozen=True)
class Branch:
    name: str
    commit_sha: str | None
    protected: bool


EntryType = Literal["file", "dir", "symlink", "submodule"]


@dataclass(frozen=True)
class TreeEntry:
    name: str
    path: str
    type: EntryType
    size: int | None
    mode: str | None


@dataclass(frozen=True)
class BlobEntry:
    """A file of the recursive tree, for the script catalogue."""

    path: str
    mode: str
    size: int | None


@dataclass(frozen=True)
class FileData:
    path: str
    size: int
    # None when the file is larger than the cap (only its size is known then).
    data: bytes | None


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
