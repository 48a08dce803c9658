"""The small interface every CI/CD provider client implements.

Their HTTP goes through :mod:`shipyard.outbound.api`, so they raise the same errors as the Git
providers (:mod:`shipyard.outbound.errors`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

BuildStatus = Literal["queued", "running", "waiting", "success", "failed", "cancelled"]
FINAL_BUILD_STATUSES = ("success", "failed", "cancelled")


@dataclass(frozen=True)
class RemoteJob:
    """A job as the provider lists it, parameters already normalised."""

    external_id: str
    name: str
    path: str | None
    description: str | None
    parameters: list[dict[str, Any]] = field(default_factory=list)
    # False when the provider will refuse to start it (a disabled Jenkins job).
    buildable: bool = True


@dataclass(frozen=True)
class JobRef:
    """What a client needs to trigger a catalogued job."""

    external_id: str
    name: str
    path: str | None
    parameters: list[dict[str, Any]]


@dataclass
class BuildState:
    """Where a triggered build is; ``detail`` says why it is queued or waiting, or how it ended.

    ``waiting`` means the build is paused on a person (a CircleCI approval job), not working.
    """

    status: BuildStatus
    number: str | None = None
    url: str | None = None
    detail: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_BUILD_STATUSES


class CicdClient(ABC):
    """One provider connection.

    ``tracking`` is a JSON-able dict a client keeps its own state in (queue item, run id, console
    offset); the caller persists it after every call, so a new process can pick up where the last
    one stopped.
    """

    label: str = "CI/CD provider"
    # Where this provider's build pages live: a build link is kept only when it lies under this
    # address (same scheme, host and port, path below), so a provider cannot make Shipyard show
    # a ``javascript:`` link or one to another site (see outbound.links).
    link_base: str = ""
    # The tracking key of a build the client finds by listing (not from the trigger's answer);
    # the runner then passes the values other steps already follow as ``tracking["claimed"]``.
    claim_key: str | None = None

    @property
    @abstractmethod
    def secrets(self) -> tuple[str, ...]:
        """Credential values to mask from anything shown to users."""

    @abstractmethod
    async def check(self) -> str:
        """Verify credentials and reachability; return who or what we are connected to."""

    @abstractmethod
    async def list_jobs(self) -> list[RemoteJob]:
        """Every triggerable job, with normalised parameter definitions."""

    @abstractmethod
    async def trigger(self, job: JobRef, parameters: dict[str, Any]) -> dict[str, Any]:
        """Start ``job``; return the initial tracking state."""

    @abstractmethod
    async def poll(self, tracking: dict[str, Any]) -> BuildState:
        """Where the build is now (updates ``tracking`` in place)."""

    @abstractmethod
    async def console(self, tracking: dict[str, Any]) -> str:
        """Console text produced since the last call (updates ``tracking`` in place)."""

    @abstractmethod
    async def cancel(self, tracking: dict[str, Any]) -> bool:
        """Abort the queued or running build; False when the provider cannot."""
