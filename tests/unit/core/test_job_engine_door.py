"""procrastinate stays behind shipyard.jobs: a frozen schema and tasks declared as plain data."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import pytest

from shipyard import jobs
from shipyard.worker import TASK_SETS

FROZEN_SCHEMA = Path(jobs.__file__).parent / "migrations" / "procrastinate_3_10_0.sql"


def test_the_installed_procrastinate_matches_the_frozen_schema() -> None:
    """A procrastinate upgrade must arrive with a migration of ours, never silently."""
    installed = metadata.version("procrastinate")
    shipped = resources.files("procrastinate").joinpath("sql/schema.sql").read_text()
    assert installed == "3.10.0", (
        f"procrastinate {installed} is installed but the schema is frozen at 3.10.0: add a "
        "migration applying its SQL migrations, then move the pin (see docs/decisions.md)"
    )
    assert shipped == FROZEN_SCHEMA.read_text()


def test_every_domain_task_has_a_unique_namespaced_name() -> None:
    names = [spec.name for task_set in (*TASK_SETS, jobs.maintenance) for spec in task_set.specs]
    assert len(names) == len(set(names))
    assert all(name.count(":") == 1 for name in names)
    assert "deployments:run_deployment" in names


def test_a_job_app_is_built_afresh_for_each_worker() -> None:
    """Two apps in one process (tests, benchmarks) never share task objects."""
    first = jobs.create_job_app("postgresql://localhost/one", TASK_SETS)
    second = jobs.create_job_app("postgresql://localhost/two", TASK_SETS)
    run_first = first.tasks["deployments:run_deployment"]
    run_second = second.tasks["deployments:run_deployment"]
    assert run_first is not run_second
    assert run_first.blueprint is first and run_second.blueprint is second


@pytest.mark.parametrize("spec", [s for t in TASK_SETS for s in t.specs], ids=lambda s: s.name)
def test_periodic_tasks_take_the_fire_time(spec: jobs.TaskSpec) -> None:
    arguments = spec.func.__code__.co_varnames[: spec.func.__code__.co_argcount]
    assert arguments[0] == "job"
    if spec.periodic is not None:
        assert "timestamp" in arguments
