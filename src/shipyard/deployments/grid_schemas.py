"""The results grid in the API: ``GET /api/v1/deployments/{id}/results``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from shipyard.deployments.grid import ResultsGrid


class ResultScript(BaseModel):
    position: int = Field(description="The script's place in the run order (0-based).")
    name: str | None
    path: str | None


class ResultCell(BaseModel):
    id: UUID = Field(description="The deployment_scripts row (the log's deployment_script_id).")
    position: int
    script_id: UUID | None
    status: str
    exit_code: int | None
    started_at: datetime | None
    completed_at: datetime | None
    error: str | None


class ResultHost(BaseModel):
    host_id: UUID | None
    name: str
    deleted: bool = Field(description="The host was deleted since the run.")
    done: bool = Field(description="None of its scripts is waiting or running.")
    failed: bool = Field(description="One of its scripts failed or was interrupted.")
    cells: list[ResultCell]


class ResultProgress(BaseModel):
    hosts_total: int
    hosts_done: int
    hosts_failed: int
    cells: dict[str, int] = Field(description="Cells of the whole run by status.")
    text: str = Field(examples=["37/200 hosts done, 2 failed"])


class ResultsRead(BaseModel):
    deployment_id: UUID
    status: str
    final: bool
    progress: ResultProgress
    scripts: list[ResultScript]
    hosts: list[ResultHost] = Field(description="One page of hosts, by name.")
    matching: int = Field(description="Hosts matching the filter, over every page.")
    next_offset: int | None

    @classmethod
    def from_grid(cls, grid: ResultsGrid) -> ResultsRead:
        return cls(
            deployment_id=grid.deployment.id,
            status=grid.deployment.status,
            final=grid.final,
            progress=ResultProgress(
                hosts_total=grid.progress.hosts_total,
                hosts_done=grid.progress.hosts_done,
                hosts_failed=grid.progress.hosts_failed,
                cells=grid.progress.cells,
                text=grid.progress.text,
            ),
            scripts=[
                ResultScript(position=s.position, name=s.name, path=s.path) for s in grid.scripts
            ],
            hosts=[
                ResultHost(
                    host_id=h.host_id,
                    name=h.name,
                    deleted=h.deleted,
                    done=h.done,
                    failed=h.failed,
                    cells=[
                        ResultCell(
                            id=c.id,
                            position=c.position,
                            script_id=c.script_id,
                            status=c.status,
                            exit_code=c.exit_code,
                            started_at=c.started_at,
                            completed_at=c.completed_at,
                            error=c.error,
                        )
                        for _, c in sorted(h.cells.items())
                    ],
                )
                for h in grid.hosts
            ],
            matching=grid.matching,
            next_offset=grid.next_offset,
        )
