"""A git command whose caller gives up is killed, for text and binary output alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shipyard.git import gitcmd


@pytest.mark.parametrize("runner", [gitcmd.run_git, gitcmd.run_git_bytes])
async def test_cancelling_the_caller_kills_git(
    runner: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await real_exec(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    # An alias that runs for a long time stands for a slow cat-file or fetch.
    task = asyncio.create_task(runner("-c", "alias.slow=!sleep 30", "slow", cwd=tmp_path))
    while not started:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started[0].returncode is not None  # killed and reaped, not left running


async def test_a_time_limit_kills_git_bytes(tmp_path: Path) -> None:
    with pytest.raises(gitcmd.GitCommandFailed) as failed:
        await gitcmd.run_git_bytes(
            "-c", "alias.slow=!sleep 30", "slow", cwd=tmp_path, time_limit=0.2
        )
    assert failed.value.code == "git_timeout"
