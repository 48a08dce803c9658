"""Timeouts and cancellation end the remote processes, not only the local wait."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest

from shipyard.errors import HostError
from shipyard.hosts.executor import Executor, OutputLine
from shipyard.hosts.executor.processes import ProcessConnection, StartedProcess
from tests.support.sshd import PrivateEndpoint, SSHEndpoint, processes_of, wait_until_gone


def tag() -> str:
    """A unique number to find this test's remote processes with ps."""
    return str(700000 + uuid.uuid4().int % 100000)


async def test_timeout_kills_the_remote_process_group(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    marker = tag()
    lines: list[str] = []

    async def on_output(line: OutputLine) -> None:
        lines.append(line.text)

    async with executor.connect(ssh_endpoint.target()) as conn:
        started = time.monotonic()
        # A child in the background and one in the foreground: both must go.
        result = await conn.run(
            f"sleep {marker}1 & echo started; sleep {marker}2; echo never",
            timeout=1.0,
            on_output=on_output,
        )
        elapsed = time.monotonic() - started
        assert result.timed_out and not result.ok
        assert result.exit_status is None
        assert lines == ["started"]
        assert 1.0 <= elapsed < 4.0
        # Checked while the connection is still open: the kill did not rely on closing it.
        assert wait_until_gone(ssh_endpoint.user, f"sleep {marker}", timeout=3) == []
        # The connection is still usable after a timeout.
        assert (await conn.run("true")).ok


async def test_timeout_escalates_to_kill_when_term_is_ignored(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    marker = tag()
    async with executor.connect(ssh_endpoint.target()) as conn:
        started = time.monotonic()
        result = await conn.run(
            f"trap '' TERM; sh -c 'trap \"\" TERM; sleep {marker}' ; echo survived",
            timeout=0.5,
        )
        elapsed = time.monotonic() - started
        assert result.timed_out
        # TERM is ignored, so KILL comes after the executor's grace period (1 s here).
        assert 1.4 <= elapsed < 6.0
        assert wait_until_gone(ssh_endpoint.user, f"sleep {marker}", timeout=3) == []


async def test_cancelling_the_task_kills_the_remote_process(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    marker = tag()
    started = asyncio.Event()

    async def on_output(line: OutputLine) -> None:
        started.set()

    async def deploy() -> None:
        async with executor.connect(ssh_endpoint.target()) as conn:
            await conn.run(f"echo go; sleep {marker}", on_output=on_output)

    task = asyncio.create_task(deploy())
    await asyncio.wait_for(started.wait(), 10)
    assert processes_of(ssh_endpoint.user, f"sleep {marker}")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # By the time the cancelled task has finished, the remote process is already gone.
    assert processes_of(ssh_endpoint.user, f"sleep {marker}") == []
    assert executor.open_connections == 0


async def test_connection_cancel_ends_runs_as_cancelled(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    marker = tag()
    async with executor.connect(ssh_endpoint.target()) as conn:
        runs = [asyncio.create_task(conn.run(f"sleep {marker}{i}")) for i in range(3)]
        for _ in range(100):
            if len(processes_of(ssh_endpoint.user, f"sleep {marker}")) >= 3:
                break
            await asyncio.sleep(0.05)
        await conn.cancel()
        results = await asyncio.gather(*runs)
        assert all(result.cancelled and not result.timed_out for result in results)
        assert all(result.exit_status is None for result in results)
        assert processes_of(ssh_endpoint.user, f"sleep {marker}") == []


async def test_leaving_the_block_kills_what_still_runs_and_removes_temp_dirs(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    marker = tag()
    async with executor.connect(ssh_endpoint.target()) as conn:
        workdir = await conn.make_temp_dir()
        background = asyncio.create_task(conn.run(f"sleep {marker}"))
        for _ in range(100):
            if processes_of(ssh_endpoint.user, f"sleep {marker}"):
                break
            await asyncio.sleep(0.05)
    result = await background
    assert result.cancelled
    assert processes_of(ssh_endpoint.user, f"sleep {marker}") == []
    assert not Path(workdir).exists()


async def test_host_going_away_mid_run_is_a_host_error(
    executor: Executor, private_sshd: PrivateEndpoint
) -> None:
    endpoint = private_sshd.endpoint
    marker = tag()
    started = asyncio.Event()

    async def on_output(line: OutputLine) -> None:
        started.set()

    async with executor.connect(endpoint.target()) as conn:
        run = asyncio.create_task(conn.run(f"echo up; sleep {marker}", on_output=on_output))
        await asyncio.wait_for(started.wait(), 10)
        private_sshd.crash()
        with pytest.raises(HostError) as raised:
            await asyncio.wait_for(run, 15)
        assert raised.value.code == "connection_lost"


async def test_a_cancel_while_the_process_is_starting_still_stops_it(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    """The process may already run on the host before its start returns (the channel's round
    trip); a cancel that lands then must still end it rather than leave it running."""
    marker = tag()
    async with executor.connect(ssh_endpoint.target()) as conn:
        assert isinstance(conn, ProcessConnection)
        real_start = conn.start
        running = asyncio.Event()

        async def slow_to_return(
            command_line: str, *, env: Mapping[str, str] | None = None
        ) -> StartedProcess:
            process = await real_start(command_line, env=env)
            running.set()
            # Widen the window a busy machine opens by chance: it runs, start has not returned.
            await asyncio.sleep(1.0)
            return process

        conn.start = slow_to_return  # type: ignore[method-assign]

        async def started(pattern: str) -> None:
            await asyncio.wait_for(running.wait(), 10)
            for _ in range(100):
                if processes_of(ssh_endpoint.user, pattern):
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"{pattern} never started")

        # The caller's task is cancelled.
        task = asyncio.create_task(conn.run(f"sleep {marker}1"))
        await started(f"sleep {marker}1")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert wait_until_gone(ssh_endpoint.user, f"sleep {marker}1", timeout=5) == []

        # The connection is cancelled (what a deployment's cancel does).
        running.clear()
        run = asyncio.create_task(conn.run(f"sleep {marker}2"))
        await started(f"sleep {marker}2")
        await conn.cancel()
        result = await asyncio.wait_for(run, 15)
        assert result.cancelled and result.exit_status is None
        assert wait_until_gone(ssh_endpoint.user, f"sleep {marker}2", timeout=5) == []
