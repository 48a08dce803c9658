"""Rolling batches: which hosts run together."""

from __future__ import annotations

import math
from uuid import UUID

from shipyard.deployments.schemas import ExecutionOptions


def plan_batches(host_ids: list[UUID], options: ExecutionOptions) -> list[list[UUID]]:
    """Split hosts into rolling batches by size or percentage (one batch when neither is set)."""
    if not host_ids:
        return []
    size = len(host_ids)
    if options.batch_size:
        size = options.batch_size
    elif options.batch_percent:
        size = max(1, math.ceil(len(host_ids) * options.batch_percent / 100))
    return [host_ids[start : start + size] for start in range(0, len(host_ids), size)]
