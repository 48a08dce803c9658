"""Background jobs of this domain, registered on the job app by ``shipyard.worker``."""

from __future__ import annotations

from uuid import UUID

from shipyard.hosts.flows import check_all_hosts
from shipyard.jobs import JobRun, TaskSet

tasks = TaskSet("hosts")


# Queued as ``shipyard.hosts.service.TEST_ALL_TASK`` by ``service.queue_host_tests``.
@tasks.task("test_all_hosts", retry_when_stalled=True)
async def run_host_tests(job: JobRun, tenant_id: str) -> None:
    # The worker's executor: its caps hold across this test and every deployment it runs.
    await check_all_hosts(runtime=job.runtime, tenant_id=UUID(tenant_id))
