"""The worker's own machine as a host (``type: local``), for single-box use and demos."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from shipyard.hosts.executor import commands, errors
from shipyard.hosts.executor.base import HostTarget
from shipyard.hosts.executor.processes import (
    EnvironmentHandoff,
    ProcessConnection,
    StartedProcess,
)
from shipyard.hosts.executor.streams import ByteReader

SHELL = "/bin/sh"
# The worker's own settings (database URL, secret keys) are no business of the scripts it runs.
WORKER_SETTINGS_PREFIX = "SHIPYARD_"


def child_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of a local process: the worker's, minus its settings, plus ``env``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(WORKER_SETTINGS_PREFIX)
    }
    return {**inherited, **(env or {})}


def group_running(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie.

    Killed processes stay zombies until reaped, and ``killpg(pgid, 0)`` still finds those.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


class LocalProcess:
    """A child process in its own session, so its whole process group can be killed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid: int | None = process.pid

    @property
    def stdout(self) -> ByteReader:
        assert self._process.stdout is not None
        return self._process.stdout

    @property
    def stderr(self) -> ByteReader:
        assert self._process.stderr is not None
        return self._process.stderr

    async def wait(self) -> None:
        await self._process.wait()

    def exit_info(self) -> tuple[int | None, str | None]:
        code = self._process.returncode
        if code is not None and code < 0:
            return None, signal.Signals(-code).name.removeprefix("SIG")
        return code, None

    def abort(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)


class LocalHostConnection(ProcessConnection):
    """Runs commands with ``/bin/sh`` as the worker's own user."""

    uses_marker = False

    def __init__(self, target: HostTarget, *, kill_grace: float) -> None:
        super().__init__(kill_grace=kill_grace)
        self.target = target
        self.platform = "posix"
        self.host_key_fingerprint = None

    def command_line(
        self,
        code: str,
        *,
        args: Sequence[str],
        env_file: str | None,
        cwd: str | None,
        script: bool,
    ) -> str:
        if script:
            return commands.posix_script(code, args=args, env_file=env_file, cwd=cwd, marker=False)
        return commands.posix_command(code, args=args, env_file=env_file, cwd=cwd, marker=False)

    async def hand_over_environment(self, env: Mapping[str, str]) -> EnvironmentHandoff:
        # A child process of ours takes its environment directly: no file, no command line.
        return EnvironmentHandoff(variables=dict(env))

    async def discard_environment(self, handoff: EnvironmentHandoff) -> None:
        return None

    async def start(
        self, command_line: str, *, env: Mapping[str, str] | None = None
    ) -> StartedProcess:
        process = await asyncio.create_subprocess_exec(
            SHELL,
            "-c",
            command_line,
            env=child_environment(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        return LocalProcess(process)

    async def kill_group(self, pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(max(1, int(self.kill_grace * 10))):
            await asyncio.sleep(0.1)
            if not group_running(pid):
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    async def make_temp_dir(self) -> str:
        path = await asyncio.to_thread(tempfile.mkdtemp, prefix="shipyard.")
        self._temp_dirs.append(path)
        return path

    async def upload(
        self,
        source: Path | str | bytes,
        directory: str,
        name: str | None = None,
        *,
        mode: int = 0o700,
    ) -> str:
        if name is None:
            if isinstance(source, bytes):
                raise ValueError("name is required when uploading bytes")
            name = Path(source).name
        destination = Path(directory) / name

        def copy() -> None:
            if isinstance(source, bytes):
                destination.write_bytes(source)
            else:
                shutil.copyfile(source, destination)
            destination.chmod(mode)

        try:
            await asyncio.to_thread(copy)
        except OSError as exc:
            raise errors.host_error(
                errors.FILE_TRANSFER_FAILED,
                f"cannot copy {name} to {directory}: {exc.strerror or exc}",
                host=self.target.label,
            ) from exc
        return str(destination)

    async def cleanup(self) -> None:
        for path in self._temp_dirs:
            await asyncio.to_thread(shutil.rmtree, path, True)
        self._temp_dirs.clear()
