"""A fleet's handshakes take turns: waiting for a turn never counts against a host's time-out."""

from __future__ import annotations

import asyncio
import time

from shipyard.hosts.executor import Executor, HostTarget
from tests.support.sshd import SSHFleet

HOSTS = 24


async def connect_all(executor: Executor, targets: list[HostTarget]) -> list[str]:
    async def one(target: HostTarget) -> str:
        async with executor.connect(target) as connection:
            result = await connection.run("echo ready", timeout=30)
            return result.tail.strip() if result.ok else "failed"

    return list(await asyncio.gather(*(one(target) for target in targets)))


async def test_handshakes_beyond_the_cap_wait_without_timing_out(ssh_fleet: SSHFleet) -> None:
    endpoints = ssh_fleet.ensure(HOSTS)
    # One handshake's time on this machine now, to size a time-out that one turn fits in
    # comfortably but the whole queue of turns does not.
    started = time.monotonic()
    await connect_all(Executor(connect_timeout=30), [endpoints[0].target()])
    one_handshake = time.monotonic() - started
    timeout = max(0.5, 6 * one_handshake)
    executor = Executor(max_handshakes=1, connect_timeout=timeout)

    started = time.monotonic()
    answers = await connect_all(executor, [endpoint.target() for endpoint in endpoints])
    elapsed = time.monotonic() - started

    assert answers == ["ready"] * HOSTS
    # The queue took longer than any one host may take: only the turn itself was timed.
    assert elapsed > timeout, (elapsed, timeout)
