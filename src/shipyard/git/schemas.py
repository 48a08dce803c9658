"""Request and response bodies of the git API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shipyard.git.scripts import ScriptKind

ProviderType = Literal["github", "gitlab", "gitea"]
RepositoryProviderType = Literal["github", "gitlab", "gitea", "url"]
SyncStatus = Literal["pending", "syncing", "synced", "error"]
Token = Field(min_length=1, max_length=4096)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GitProviderCreate(StrictModel):
    """Connect with a personal access token; Shipyard checks it against the provider."""

    type: ProviderType
    server_url: str | None = Field(default=None, max_length=2000)
    access_token: str = Token
    display_name: str | None = Field(default=None, max_length=200)


class GitProviderUpdate(StrictModel):
    display_name: str | None = Field(default=None, max_length=200)
    access_token: str | None = Field(default=None, min_length=1, max_length=4096)
    # Moving to another server needs access_token in the same request: a stored token is
    # only ever sent to the server it was given for.
    server_url: str | None = Field(default=None, max_length=2000)


class GitProviderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    type: ProviderType
    name: str | None
    display_name: str | None
    server_url: str | None
    is_configured: bool
    has_access_token: bool
    has_refresh_token: bool
    expires_at: datetime | None
    last_synced: datetime | None
    sync_status: SyncStatus | None
    error: str | None
    repository_count: int = 0
    created_at: datetime
    updated_at: datetime


class SyncQueued(BaseModel):
    provider_id: UUID
    sync_status: SyncStatus
    queued: bool


class OAuthAppCreate(StrictModel):
    type: ProviderType
    server_url: str | None = Field(default=None, max_length=2000)
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: str = Field(min_length=1, max_length=4096)


class OAuthAppUpdate(StrictModel):
    client_id: str | None = Field(default=None, min_length=1, max_length=500)
    client_secret: str | None = Field(default=None, min_length=1, max_length=4096)


class OAuthAppRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    type: ProviderType
    server_url: str
    client_id: str
    has_client_secret: bool
    redirect_uri: str
    created_at: datetime
    updated_at: datetime


class RepositoryCreate(StrictModel):
    """A public repository added by its clone URL, without a provider."""

    url: str = Field(min_length=1, max_length=2000)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class RepositoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    provider_id: UUID | None
    provider_type: RepositoryProviderType | None
    external_id: str | None
    name: str
    owner: str | None
    full_name: str
    description: str | None
    url: str | None
    clone_url: str | None
    is_private: bool
    default_branch: str | None
    language: str | None
    sync_status: SyncStatus | None
    last_synced_at: datetime | None
    error: str | None
    is_pinned: bool
    created_at: datetime
    updated_at: datetime


class PinRead(BaseModel):
    repository_id: UUID
    is_pinned: bool


class BranchRead(BaseModel):
    name: str
    commit_sha: str | None
    protected: bool
    is_default: bool


class TreeEntryRead(BaseModel):
    name: str
    path: str
    type: Literal["file", "dir", "symlink", "submodule"]
    size: int | None
    is_script: bool


class TreeRead(BaseModel):
    ref: str
    path: str
    entries: list[TreeEntryRead]


class FileRead(BaseModel):
    ref: str
    path: str
    size: int
    is_binary: bool
    truncated: bool
    encoding: Literal["utf-8"] | None
    content: str | None


class ScriptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    path: str
    name: str
    kind: ScriptKind
    executable: bool
    size: int | None


class ScriptCatalogue(BaseModel):
    repository_id: UUID
    ref: str
    scripts: list[ScriptRead]
