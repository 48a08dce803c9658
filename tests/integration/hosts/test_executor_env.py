"""Environment values travel in a 0600 file over SFTP (SSH) or the process environment (local).

Never on a command line: not in any process's ``/proc/<pid>/cmdline`` on the host while the
script runs, not in asyncssh's INFO log of the commands it runs. The env file is gone after the
run, whether it succeeded, failed before the shell read the file, timed out or was cancelled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import stat
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

import pytest

from shipyard.hosts.executor import Executor, HostTarget, OutputLine, RunResult
from tests.support import canary
from tests.support.sshd import SSHEndpoint

LOCAL = HostTarget(address="localhost", port=0, type="local", name="local")
SLEEPER = (
    "#!/bin/sh\n"
    "printf 'started %s\\n' \"$(printf '%s' \"$DEPLOY_TOKEN\" | sha256sum | cut -d' ' -f1)\"\n"
    'sleep "${1:-2}"\n'
    "echo finished\n"
)


def new_secret() -> str:
    return canary.remember("env-secret-" + uuid.uuid4().hex, "deployment secret variable")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def command_lines_holding(needle: bytes) -> list[tuple[int, bytes]]:
    """Every process on this machine whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry.name), cmdline))
    return found


async def watch_command_lines(
    run: Awaitable[RunResult], secret: str, marker: str
) -> tuple[RunResult, int]:
    """Run ``run`` while scanning every command line; return its result and how often the
    script itself (its ``marker`` argument) was seen, which proves the scan saw it running."""
    task = asyncio.ensure_future(run)
    seen_script = 0
    deadline = time.monotonic() + 30
    while not task.done() and time.monotonic() < deadline:
        assert command_lines_holding(secret.encode()) == []
        seen_script += len(command_lines_holding(marker.encode()))
        await asyncio.sleep(0.01)
    return await task, seen_script


def env_files(directory: str) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(".env-")]


class Lines:
    def __init__(self) -> None:
        self.lines: list[OutputLine] = []
        self.started = asyncio.Event()

    async def __call__(self, line: OutputLine) -> None:
        self.lines.append(line)
        if line.text.startswith("started"):
            self.started.set()

    def stdout(self) -> list[str]:
        return [line.text for line in self.lines if line.stream == "stdout"]


async def test_ssh_env_values_are_never_on_a_command_line_nor_logged(
    executor: Executor,
    ssh_endpoint: SSHEndpoint,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    secret = new_secret()
    marker = f"marker-{uuid.uuid4().hex}"
    script = tmp_path / "sleeper.sh"
    script.write_text(SLEEPER)
    out = Lines()
    async with executor.connect(ssh_endpoint.target()) as conn:
        workdir = await conn.make_temp_dir()
        remote = await conn.upload(script, workdir)
        result, seen = await watch_command_lines(
            conn.run_script(
                remote,
                args=["1.5", marker],
                env={"DEPLOY_TOKEN": secret, "REGION": "eu-west"},
                cwd=workdir,
                on_output=out,
            ),
            secret,
            marker,
        )
        # Plain commands take the same path.
        plain = await conn.run(
            'printf "%s" "$DEPLOY_TOKEN" | sha256sum', env={"DEPLOY_TOKEN": secret}
        )
        assert env_files(workdir) == []
    assert result.ok, result.tail
    assert plain.ok and digest(secret) in plain.tail
    # The script saw the value; the scan saw the script running.
    assert out.stdout() == [f"started {digest(secret)}", "finished"]
    assert seen > 0
    # asyncssh logged the commands it ran (so the capture works), naming only the env file.
    commands = [r.getMessage() for r in caplog.records if r.name.startswith("asyncssh")]
    assert any(".env-" in message for message in commands), commands
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert all("eu-west" not in message for message in commands)


async def test_the_env_file_is_created_0600_in_a_private_directory(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    secret = new_secret()
    async with executor.connect(ssh_endpoint.target()) as conn:
        handoff = await conn.hand_over_environment({"DEPLOY_TOKEN": secret})  # type: ignore[attr-defined]
        assert handoff.file is not None and handoff.variables is None
        info = os.stat(handoff.file)
        directory = os.stat(os.path.dirname(handoff.file))
        owner = pwd.getpwnam(ssh_endpoint.user).pw_uid
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == owner
        assert stat.S_IMODE(directory.st_mode) == 0o700 and directory.st_uid == owner
        assert secret in Path(handoff.file).read_text()
        await conn.discard_environment(handoff)  # type: ignore[attr-defined]
        assert not os.path.exists(handoff.file)


async def test_the_env_file_is_gone_after_failure_timeout_and_cancel(
    executor: Executor, ssh_endpoint: SSHEndpoint, tmp_path: Path
) -> None:
    secret = new_secret()
    env = {"DEPLOY_TOKEN": secret}
    script = tmp_path / "sleeper.sh"
    script.write_text(SLEEPER)
    async with executor.connect(ssh_endpoint.target()) as conn:
        workdir = await conn.make_temp_dir()
        remote = await conn.upload(script, workdir)
        # The shell stops before it reads the file (cd fails): the executor removes it.
        failed = await conn.run("true", env=env, cwd=f"{workdir}/missing")
        assert failed.exit_status == 126
        assert env_files(workdir) == []
        # Timed out while sleeping.
        timed = await conn.run_script(remote, args=["30"], env=env, timeout=1.0)
        assert timed.timed_out
        assert env_files(workdir) == []
        # Cancelled while sleeping.
        out = Lines()
        task = asyncio.ensure_future(
            conn.run_script(remote, args=["30"], env=env, cwd=workdir, on_output=out)
        )
        await asyncio.wait_for(out.started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert env_files(workdir) == []
    assert not os.path.exists(workdir)


async def test_local_env_goes_through_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    # The worker's own settings are not handed to the scripts it runs on its own machine.
    monkeypatch.setenv("SHIPYARD_PROBE_SETTING", "worker-only")
    marker = f"marker-{uuid.uuid4().hex}"
    script = tmp_path / "sleeper.sh"
    script.write_text(SLEEPER + 'echo "setting=${SHIPYARD_PROBE_SETTING-unset}"\n')
    script.chmod(0o755)
    out = Lines()
    local = Executor(allow_local=True, kill_grace=1.0)
    async with local.connect(LOCAL) as conn:
        workdir = await conn.make_temp_dir()
        result, seen = await watch_command_lines(
            conn.run_script(
                str(script), args=["1.5", marker], env={"DEPLOY_TOKEN": secret}, on_output=out
            ),
            secret,
            marker,
        )
        assert env_files(workdir) == []
    assert result.ok, result.tail
    assert seen > 0
    assert out.stdout() == [f"started {digest(secret)}", "finished", "setting=unset"]
