"""The hosts task set: what the service queues is what the worker registers."""

from __future__ import annotations

from shipyard.hosts.service import TEST_ALL_TASK
from shipyard.hosts.tasks import tasks


def test_test_all_is_queued_under_the_name_the_worker_registers() -> None:
    assert TEST_ALL_TASK in {spec.name for spec in tasks.specs}
