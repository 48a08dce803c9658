"""Background jobs of single sign-on: the hourly directory check."""

from __future__ import annotations

from shipyard.jobs import JobRun, TaskSet
from shipyard.sso import directory_flows

tasks = TaskSet("sso")


@tasks.task("directory_check", queueing_lock="sso-directory-check", periodic="37 * * * *")
async def directory_check(job: JobRun, timestamp: int) -> None:
    """Hourly: LDAP members gone from the directory, or left with no role, are disabled."""
    await directory_flows.check_directories(runtime=job.runtime)
