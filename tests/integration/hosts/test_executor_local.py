"""The local host type: the worker's own machine, same interface and guarantees."""

from __future__ import annotations

import asyncio
import getpass
import time
import uuid
from pathlib import Path

import pytest

from shipyard.hosts.executor import Executor, HostTarget, OutputLine
from tests.support.sshd import processes_of, wait_until_gone

LOCAL = HostTarget(address="localhost", port=0, type="local", name="local")


@pytest.fixture
def local_executor() -> Executor:
    return Executor(allow_local=True, kill_grace=1.0)


async def test_runs_uploads_and_cleans_up(local_executor: Executor, tmp_path: Path) -> None:
    source = tmp_path / "job.sh"
    source.write_text('#!/bin/sh\necho "$1|$GREETING|$(pwd)"\necho warn >&2\nexit 3\n')
    lines: list[OutputLine] = []

    async def collect(line: OutputLine) -> None:
        lines.append(line)

    async with local_executor.connect(LOCAL) as conn:
        assert conn.host_key_fingerprint is None and conn.platform == "posix"
        workdir = await conn.make_temp_dir()
        path = await conn.upload(source, workdir)
        result = await conn.run_script(
            path, args=["a b"], env={"GREETING": "hi there"}, cwd=workdir, on_output=collect
        )
        probe, os_info = await conn.probe_os(timeout=5)
    assert result.exit_status == 3
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", f"a b|hi there|{workdir}"),
        ("stderr", "warn"),
    ]
    assert probe.ok and os_info is not None and os_info.startswith("Linux")
    assert not Path(workdir).exists()


async def test_timeout_and_cancel_kill_the_process_group(local_executor: Executor) -> None:
    me = getpass.getuser()
    marker = str(800000 + uuid.uuid4().int % 100000)
    async with local_executor.connect(LOCAL) as conn:
        started = time.monotonic()
        result = await conn.run(f"sleep {marker}1 & sleep {marker}2", timeout=0.5)
        assert result.timed_out and time.monotonic() - started < 3
        assert wait_until_gone(me, f"sleep {marker}", timeout=3) == []

        task = asyncio.create_task(conn.run(f"sleep {marker}3"))
        for _ in range(100):
            if processes_of(me, f"sleep {marker}3"):
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert processes_of(me, f"sleep {marker}3") == []
