"""The POSIX SSH fast path: one SFTP session and the script's shell per host, nothing more.

The temporary directory is made by SFTP mkdir and removed by SFTP (our files, then rmdir); a
shell is started only when a script left files behind (``rm -rf``) or SFTP cannot make the
directory (``mktemp``). Sessions are counted on the sshd side, from its VERBOSE log.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.sshd import PrivateEndpoint, SSHEndpoint, SSHFleet

from shipyard.hosts.executor import Executor, HostConnection, OutputLine, commands

ENV = {"SHIPYARD_DEPLOYMENT_ID": "fast-path", "SECRET_VALUE": "s3cret"}
SESSION = re.compile(r"Starting session: (subsystem '\w+'|command) for ")


class CountingSSHD:
    """A private sshd that logs every session it starts (VERBOSE, from a Match block)."""

    def __init__(self, private: PrivateEndpoint) -> None:
        self.private = private
        self._offset = 0

    @property
    def endpoint(self) -> SSHEndpoint:
        return self.private.endpoint

    def mark(self) -> None:
        self._offset = self._log().count("\n")

    def sessions(self) -> list[str]:
        """The sessions started since :meth:`mark`: ``"subsystem 'sftp'"`` or ``"command"``."""
        lines = self._log().splitlines()[self._offset :]
        return [match.group(1) for line in lines if (match := SESSION.search(line))]

    def _log(self) -> str:
        return self.private.process.log_path.read_text()


@pytest.fixture
def counting_sshd(ssh_fleet: SSHFleet) -> Iterator[CountingSSHD]:
    # sshd keeps the first LogLevel it reads; a Match block overrides it after authentication.
    private = ssh_fleet.start_private(["Match all", "    LogLevel VERBOSE"])
    try:
        yield CountingSSHD(private)
    finally:
        private.close()


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def run_one(
    conn: HostConnection, body: bytes, *, timeout: float | None = None
) -> tuple[str, int | None, bool]:
    """Temp dir, upload, run with an environment: (temp dir, exit status, timed out)."""
    workdir = await conn.make_temp_dir()
    path = await conn.upload(body, workdir, "000-script.sh")
    result = await conn.run_script(path, env=ENV, timeout=timeout, cwd=workdir)
    return workdir, result.exit_status, result.timed_out


async def test_fast_path_one_run_is_one_sftp_session_and_one_shell(
    executor: Executor, counting_sshd: CountingSSHD
) -> None:
    counting_sshd.mark()
    target = counting_sshd.endpoint.key_target()
    async with executor.connect(target) as conn:
        workdir = await conn.make_temp_dir()
        assert workdir.startswith(f"{commands.POSIX_TEMP_ROOT}/shipyard.")
        info = os.stat(workdir)
        assert stat.S_IMODE(info.st_mode) == 0o700 and stat.S_ISDIR(info.st_mode)
        path = await conn.upload(b'#!/bin/sh\necho "ok $SHIPYARD_DEPLOYMENT_ID"\n', workdir, "a.sh")
        assert mode_of(path) == 0o700
        second = await conn.upload(b"#!/bin/sh\necho two\n", workdir, "b.sh", mode=0o750)
        assert mode_of(second) == 0o750
        lines: list[str] = []

        async def collect(line: OutputLine) -> None:
            lines.append(line.text)

        result = await conn.run_script(path, env=ENV, cwd=workdir, on_output=collect)
        assert result.ok and lines == ["ok fast-path"]
        # The env file is gone once read; only our two scripts are in the directory.
        assert sorted(os.listdir(workdir)) == ["a.sh", "b.sh"]
    assert not os.path.exists(workdir)
    # No mktemp shell, no rm -rf shell: SFTP for the files, one shell for the script.
    assert counting_sshd.sessions() == ["subsystem 'sftp'", "command"]


async def test_fast_path_two_temp_dirs_on_one_connection_are_both_removed(
    executor: Executor, counting_sshd: CountingSSHD
) -> None:
    counting_sshd.mark()
    async with executor.connect(counting_sshd.endpoint.key_target()) as conn:
        first = await conn.make_temp_dir()
        second = await conn.make_temp_dir()
        assert first != second
        await conn.upload(b"data", second, "file.txt", mode=0o600)
    assert not os.path.exists(first) and not os.path.exists(second)
    assert counting_sshd.sessions() == ["subsystem 'sftp'"]


@pytest.mark.parametrize(
    ("body", "expected_status"),
    [
        pytest.param(b"#!/bin/sh\nexit 3\n", 3, id="failed"),
        pytest.param(b"#!/bin/sh\nkill -KILL $$\n", None, id="killed-by-signal"),
    ],
)
async def test_fast_path_temp_dir_is_removed_by_sftp_after_a_failed_or_killed_script(
    executor: Executor, counting_sshd: CountingSSHD, body: bytes, expected_status: int | None
) -> None:
    counting_sshd.mark()
    async with executor.connect(counting_sshd.endpoint.key_target()) as conn:
        workdir, status, timed_out = await run_one(conn, body)
    assert status == expected_status and not timed_out
    assert not os.path.exists(workdir)
    assert counting_sshd.sessions() == ["subsystem 'sftp'", "command"]


async def test_fast_path_timed_out_script_is_killed_and_its_temp_dir_removed(
    executor: Executor, counting_sshd: CountingSSHD
) -> None:
    counting_sshd.mark()
    async with executor.connect(counting_sshd.endpoint.key_target()) as conn:
        workdir, status, timed_out = await run_one(conn, b"#!/bin/sh\nsleep 60\n", timeout=0.5)
    assert timed_out and status is None
    assert not os.path.exists(workdir)
    # The kill is a shell of its own; the directory still goes by SFTP.
    assert counting_sshd.sessions() == ["subsystem 'sftp'", "command", "command"]


async def test_fast_path_cancelled_run_leaves_no_temp_dir(
    executor: Executor, counting_sshd: CountingSSHD
) -> None:
    workdirs: list[str] = []
    started = asyncio.Event()

    async def on_output(line: OutputLine) -> None:
        started.set()

    async def run() -> None:
        async with executor.connect(counting_sshd.endpoint.key_target()) as conn:
            workdir = await conn.make_temp_dir()
            workdirs.append(workdir)
            path = await conn.upload(b"#!/bin/sh\necho started\nsleep 60\n", workdir, "s.sh")
            await conn.run_script(path, env=ENV, cwd=workdir, on_output=on_output)

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert workdirs and not os.path.exists(workdirs[0])


async def test_fast_path_files_left_by_the_script_fall_back_to_rm_rf(
    executor: Executor, counting_sshd: CountingSSHD
) -> None:
    # A directory outside, which a link in the temp dir points to: rm -rf must not follow it.
    outside = Path(f"/tmp/fast-path-outside-{secrets.token_hex(6)}")
    outside.mkdir()
    (outside / "keep").write_text("keep")
    body = (
        "#!/bin/sh\nmkdir -p build/deep && echo x > build/deep/out "
        f"&& ln -s {outside} outside\nexit 1\n"
    ).encode()
    counting_sshd.mark()
    try:
        async with executor.connect(counting_sshd.endpoint.key_target()) as conn:
            workdir, status, _ = await run_one(conn, body)
            assert os.path.isdir(os.path.join(workdir, "build", "deep"))
        assert status == 1
        assert not os.path.exists(workdir)
        assert (outside / "keep").read_text() == "keep"
    finally:
        shutil.rmtree(outside)
    # rmdir failed (not empty), so one rm -rf shell removed the rest.
    assert counting_sshd.sessions() == ["subsystem 'sftp'", "command", "command"]


async def test_fast_path_mkdir_is_exclusive_and_falls_back_to_mktemp(
    executor: Executor, counting_sshd: CountingSSHD, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone else's world-writable directory (root's here) under the name we draw, in /tmp
    # where the SSH user may look: the SFTP mkdir must fail, never adopt it; the connection then
    # makes its directory with mktemp in the shell (the path from before the fast path).
    taken = Path(f"{commands.POSIX_TEMP_ROOT}/shipyard.taken-{secrets.token_hex(6)}")
    taken.mkdir()
    os.chmod(taken, 0o777)
    monkeypatch.setattr(commands, "posix_temp_dir_path", lambda: str(taken))
    counting_sshd.mark()
    try:
        async with executor.connect(counting_sshd.endpoint.key_target()) as conn:
            workdir, status, _ = await run_one(conn, b"#!/bin/sh\nexit 0\n")
            assert workdir != str(taken)
            assert mode_of(workdir) == 0o700
        assert status == 0
        assert not os.path.exists(workdir)
        assert taken.is_dir() and mode_of(str(taken)) == 0o777 and not any(taken.iterdir())
    finally:
        shutil.rmtree(taken)
    # mktemp's shell, the script's shell and rm -rf's shell, as before the fast path.
    assert counting_sshd.sessions() == ["subsystem 'sftp'", "command", "command", "command"]


async def test_fast_path_probe_starts_one_shell_and_no_sftp(
    executor: Executor, counting_sshd: CountingSSHD
) -> None:
    counting_sshd.mark()
    result = await executor.probe(counting_sshd.endpoint.key_target())
    assert result.status == "online", result.message
    assert counting_sshd.sessions() == ["command"]
