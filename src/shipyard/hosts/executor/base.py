"""The executor's public types: what to connect to, what a run returns, one connection's API.

Every host type (``ssh``, ``ssh`` + ``is_windows``, ``local``; later ``docker``) implements
:class:`HostConnection`; :class:`shipyard.hosts.executor.Executor` opens them with the caps.
Nothing here touches the database: a :class:`HostTarget` is built from a ``Host`` row by
``shipyard.hosts.service.build_target``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from uuid import UUID

TargetType = Literal["ssh", "local"]
StreamName = Literal["stdout", "stderr"]
Platform = Literal["posix", "windows"]
HostStatus = Literal["online", "offline", "auth_failed", "host_key_mismatch", "unknown"]


@dataclass(frozen=True)
class HostTarget:
    """Everything needed to reach one host; secrets are plaintext here and never in ``repr``."""

    address: str
    port: int = 22
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    # "SHA256:..." as OpenSSH prints it; None means trust on first use.
    expected_fingerprint: str | None = None
    is_windows: bool = False
    type: TargetType = "ssh"
    name: str | None = None
    host_id: UUID | None = None

    @property
    def label(self) -> str:
        """How messages name this host."""
        if self.name:
            return self.name
        if self.type == "local":
            return "local"
        return f"{self.user}@{self.address}:{self.port}" if self.user else self.endpoint

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def cap_key(self) -> tuple[str, str, int]:
        """Key of the per-host connection cap: one machine, whatever the user."""
        return (self.type, self.address.lower(), self.port)


@dataclass(frozen=True)
class OutputLine:
    """One line of output (without its line ending), stamped when it arrived.

    ``continues`` marks a piece of an over-long line that was cut without a line ending: the
    next piece of the same stream carries on the same line (a secret may straddle the cut).
    """

    stream: StreamName
    text: str
    timestamp: datetime
    continues: bool = False


@dataclass(frozen=True)
class OutputChunk:
    """The lines of one stream that one read completed, in order, stamped when they arrived.

    Handed over as one piece so that a chatty script costs one await per read (up to 64 KiB),
    not one per line. ``cut`` holds the indexes of pieces of over-long lines (each continues
    in the next line of the same stream, as :attr:`OutputLine.continues` says).
    """

    stream: StreamName
    lines: Sequence[str]
    timestamp: datetime
    cut: tuple[int, ...] = ()

    def output_lines(self) -> list[OutputLine]:
        """The same lines one by one."""
        return [
            OutputLine(self.stream, text, self.timestamp, continues=index in self.cut)
            for index, text in enumerate(self.lines)
        ]


OutputCallback = Callable[[OutputLine], Awaitable[None]]
OutputChunkCallback = Callable[[OutputChunk], Awaitable[None]]
# Told the remote PID (which is also its process group) once the process has started.
PidCallback = Callable[[int], None]


@dataclass(frozen=True)
class RunResult:
    """How one command or script ended.

    ``exit_status`` is None when the process did not exit by itself (timed out, cancelled,
    killed by a signal, or the connection dropped). ``tail`` is the last few KiB of
    stdout and stderr interleaved in arrival order, for a size-capped summary.
    """

    exit_status: int | None
    timed_out: bool
    cancelled: bool
    started_at: datetime
    finished_at: datetime
    exit_signal: str | None = None
    stdout_lines: int = 0
    stderr_lines: int = 0
    tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and not self.cancelled

    @property
    def duration(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of a connection test; ``status`` uses the values of ``hosts.status``."""

    status: HostStatus
    message: str
    checked_at: datetime
    round_trip_ms: int | None = None
    os_info: str | None = None
    # What the host presented (also on failures after the handshake), for trust on first use.
    fingerprint: str | None = None
    error_code: str | None = None


class HostConnection(ABC):
    """One open connection to one host, reused for every command of a run.

    Use it through ``async with executor.connect(target) as conn``; leaving the block kills
    anything still running, removes the temporary directories made by :meth:`make_temp_dir`
    and closes the connection.
    """

    target: HostTarget
    platform: Platform
    # The host key fingerprint seen during the handshake ("SHA256:..."); None for local hosts.
    host_key_fingerprint: str | None = None

    @abstractmethod
    async def make_temp_dir(self) -> str:
        """Create a private temporary directory on the host and return its path.

        It is removed when the connection closes.
        """

    @abstractmethod
    async def upload(
        self,
        source: Path | str | bytes,
        directory: str,
        name: str | None = None,
        *,
        mode: int = 0o700,
    ) -> str:
        """Copy a local file (or ``bytes``) into ``directory`` on the host by SFTP.

        ``name`` defaults to the source file's name. Returns the remote path, ready for
        :meth:`run_script` (executable on POSIX).
        """

    @abstractmethod
    async def run(
        self,
        command: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cwd: str | None = None,
        on_output: OutputCallback | None = None,
        on_pid: PidCallback | None = None,
        on_chunk: OutputChunkCallback | None = None,
    ) -> RunResult:
        """Run shell code (POSIX sh, or PowerShell on Windows) with ``args`` appended quoted.

        Output goes line by line to ``on_output`` as it arrives, and to ``on_chunk`` as one
        :class:`OutputChunk` per read (the lines one read completed). On ``timeout`` (seconds)
        the remote process group is killed and the result has ``timed_out``. If the calling
        task is cancelled, the remote process is killed before ``CancelledError`` propagates.
        ``on_pid`` is told the process's PID (the leader of its process group) once known.
        """

    @abstractmethod
    async def run_script(
        self,
        path: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cwd: str | None = None,
        on_output: OutputCallback | None = None,
        on_pid: PidCallback | None = None,
        on_chunk: OutputChunkCallback | None = None,
    ) -> RunResult:
        """Execute the file at ``path`` on the host (e.g. from :meth:`upload`), like :meth:`run`."""

    @abstractmethod
    async def probe_os(self, *, timeout: float) -> tuple[RunResult, str | None]:
        """Run the harmless OS probe (``uname -srm`` or PowerShell's); return its first line."""

    @abstractmethod
    async def cancel(self) -> None:
        """Kill every process running on this connection; their runs end with ``cancelled``."""

    @abstractmethod
    async def close(self) -> None:
        """Kill what still runs, remove temporary directories, close. Safe to call twice."""
