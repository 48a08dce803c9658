"""Fifty hosts at once, some of them down: the good ones finish, each failure is its own."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from shipyard.errors import HostError
from shipyard.hosts.executor import Executor, HostTarget, OutputLine
from tests.support.sshd import LOOPBACK, SSHFleet, free_port, silent_ports

# Generous: on two busy cores (a full suite on three xdist workers) the slowest of 44 good
# handshakes took 5.3 s once.
CONNECT_TIMEOUT = 8.0


@pytest.fixture
async def hung_ports() -> AsyncIterator[list[int]]:
    async with silent_ports(2) as ports:
        yield ports


async def run_everywhere(
    executor: Executor, targets: list[HostTarget]
) -> dict[str, tuple[str, float]]:
    """Run a two-step job on each host; return per host the outcome and when it finished."""
    started = time.monotonic()
    outcome: dict[str, tuple[str, float]] = {}

    async def one(target: HostTarget) -> None:
        lines: list[str] = []

        async def collect(line: OutputLine) -> None:
            lines.append(line.text)

        try:
            async with executor.connect(target) as conn:
                workdir = await conn.make_temp_dir()
                path = await conn.upload(b"#!/bin/sh\necho ok from $(hostname)\n", workdir, "s")
                result = await conn.run_script(path, on_output=collect, timeout=30)
            state = "ok" if result.ok and lines and lines[0].startswith("ok") else "failed"
        except HostError as exc:
            state = exc.code
        outcome[target.label] = (state, time.monotonic() - started)

    await asyncio.gather(*(one(target) for target in targets))
    return outcome


async def test_fifty_hosts_with_some_down(ssh_fleet: SSHFleet, hung_ports: list[int]) -> None:
    endpoints = ssh_fleet.ensure(44)
    up = [endpoint.target() for endpoint in endpoints]
    refused = [endpoints[0].target(port=free_port(), name=f"down-{i}") for i in range(4)]
    hung = [
        HostTarget(address=LOOPBACK, port=port, user="x", password="x", name=f"hung-{index}")
        for index, port in enumerate(hung_ports)
    ]
    targets = up + refused + hung
    assert len(targets) == 50
    executor = Executor(max_connections=100, connect_timeout=CONNECT_TIMEOUT)
    outcome = await run_everywhere(executor, targets)
    states = Counter(state for state, _ in outcome.values())
    assert states == {"ok": 44, "connection_failed": 6}  # refused and hung read the same
    # The hung hosts held up nobody: every good host was done before they timed out.
    slowest_good = max(when for state, when in outcome.values() if state == "ok")
    first_hung = min(outcome[f"hung-{index}"][1] for index in range(len(hung)))
    assert first_hung >= CONNECT_TIMEOUT
    assert slowest_good < first_hung
    assert all(outcome[f"down-{i}"][1] < 2.0 for i in range(4))
    assert executor.open_connections == 0
