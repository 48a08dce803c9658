"""What every process-running connection shares: streaming, timeouts, cancellation, kills."""

from __future__ import annotations

import asyncio
import contextlib
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from shipyard.errors import HostError
from shipyard.hosts.executor import commands, errors
from shipyard.hosts.executor.base import (
    HostConnection,
    OutputCallback,
    OutputChunkCallback,
    OutputLine,
    PidCallback,
    RunResult,
)
from shipyard.hosts.executor.commands import parse_pid_marker
from shipyard.hosts.executor.streams import ByteReader, OutputPump, Tail

# How long a killed process may take to close its output before the channel is torn down.
DRAIN_AFTER_KILL_SECONDS = 5.0
PID_WAIT_SECONDS = 2.0
# A run cancelled while its process was being started waits this long for the start to finish,
# so that a process already running on the host is found and stopped rather than left behind.
START_WAIT_SECONDS = 10.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class StartedProcess(Protocol):
    """A process started by a connection, seen the same way for SSH and local hosts."""

    @property
    def stdout(self) -> ByteReader: ...

    @property
    def stderr(self) -> ByteReader: ...

    @property
    def pid(self) -> int | None:
        """Known at start for local processes; SSH ones report it with the marker line."""

    async def wait(self) -> None:
        """Return once the process has exited."""

    def exit_info(self) -> tuple[int | None, str | None]:
        """(exit status, signal name) once exited."""

    def abort(self) -> None:
        """Stop waiting for the process: close its channel or kill it outright."""


@dataclass(frozen=True)
class EnvironmentHandoff:
    """How a run's environment reaches the process: a file on the host, or the process's own.

    ``file`` is a path the command line names (SSH: uploaded with mode 0600, read and removed
    by the wrapper); ``variables`` go straight into the environment of a local process.
    Values are never on a command line either way.
    """

    file: str | None = None
    variables: Mapping[str, str] | None = None


NO_ENVIRONMENT = EnvironmentHandoff()


@dataclass(eq=False)
class ActiveRun:
    pid: asyncio.Future[int]
    process: StartedProcess | None = None
    drain: asyncio.Future[None] | None = None
    cancelled: bool = False
    stopping: asyncio.Task[None] | None = None
    pumps: list[OutputPump] = field(default_factory=list)


class ProcessConnection(HostConnection):
    """A :class:`HostConnection` that runs commands as processes it can kill by process group."""

    # True when the PID comes from the marker line (SSH), False when known at start (local).
    uses_marker = True

    def __init__(self, *, kill_grace: float) -> None:
        self.kill_grace = kill_grace
        self._active: set[ActiveRun] = set()
        self._stoppers: set[asyncio.Task[None]] = set()
        self._temp_dirs: list[str] = []
        self._closed = False

    # Implemented per host type -------------------------------------------------------------

    @abstractmethod
    def command_line(
        self,
        code: str,
        *,
        args: Sequence[str],
        env_file: str | None,
        cwd: str | None,
        script: bool,
    ) -> str:
        """The full command line for ``code`` (or the script at path ``code``)."""

    @abstractmethod
    async def hand_over_environment(self, env: Mapping[str, str]) -> EnvironmentHandoff:
        """Put ``env`` where the next process will find it, never on its command line."""

    @abstractmethod
    async def discard_environment(self, handoff: EnvironmentHandoff) -> None:
        """Remove what :meth:`hand_over_environment` left on the host; never raises."""

    @abstractmethod
    async def start(
        self, command_line: str, *, env: Mapping[str, str] | None = None
    ) -> StartedProcess:
        """Start ``command_line`` with ``env`` added to its environment (local processes only).

        Raise ``HostError`` when it cannot be started.
        """

    @abstractmethod
    async def kill_group(self, pid: int) -> None:
        """End process group ``pid``: TERM, then KILL after the grace period."""

    @abstractmethod
    async def cleanup(self) -> None:
        """Remove temporary directories and disconnect."""

    def shell_not_found(self, exit_status: int | None, first_line: str | None) -> HostError:
        detail = f" (exit {exit_status}: {first_line})" if first_line else f" (exit {exit_status})"
        return errors.host_error(
            errors.SHELL_NOT_FOUND,
            f"the login shell did not run the command{detail}",
            host=self.target.label,
        )

    # Public API ----------------------------------------------------------------------------

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
        return await self._run(
            command,
            script=False,
            args=args,
            env=env,
            timeout=timeout,
            cwd=cwd,
            on_output=on_output,
            on_pid=on_pid,
            on_chunk=on_chunk,
        )

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
        return await self._run(
            path,
            script=True,
            args=args,
            env=env,
            timeout=timeout,
            cwd=cwd,
            on_output=on_output,
            on_pid=on_pid,
            on_chunk=on_chunk,
        )

    async def _run(
        self,
        code: str,
        *,
        script: bool,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        timeout: float | None,
        cwd: str | None,
        on_output: OutputCallback | None,
        on_pid: PidCallback | None,
        on_chunk: OutputChunkCallback | None = None,
    ) -> RunResult:
        """Hand the environment over (never on the command line), run, then clear it away."""
        commands.check_env(env)
        handoff = await self.hand_over_environment(env) if env else NO_ENVIRONMENT
        try:
            line = self.command_line(code, args=args, env_file=handoff.file, cwd=cwd, script=script)
            return await self.execute(
                line,
                timeout=timeout,
                on_output=on_output,
                on_pid=on_pid,
                env=handoff.variables,
                on_chunk=on_chunk,
            )
        finally:
            if handoff.file is not None:
                # The wrapper removes the file as soon as it has read it; this covers a shell
                # that never got that far. Shielded, so a second cancellation cannot skip it
                # (close() waits for it like for a kill in progress).
                remover = asyncio.ensure_future(self.discard_environment(handoff))
                self._stoppers.add(remover)
                remover.add_done_callback(self._stoppers.discard)
                await asyncio.shield(remover)

    def probe_line(self) -> str:
        return self.command_line(
            commands.POSIX_PROBE, args=(), env_file=None, cwd=None, script=False
        )

    async def probe_os(self, *, timeout: float) -> tuple[RunResult, str | None]:
        lines: list[str] = []

        async def collect(line: OutputLine) -> None:
            if line.stream == "stdout" and line.text.strip() and not lines:
                lines.append(line.text.strip())

        result = await self.execute(self.probe_line(), timeout=timeout, on_output=collect)
        return result, (lines[0] if lines else None)

    async def cancel(self) -> None:
        runs = list(self._active)
        for active in runs:
            active.cancelled = True
        # A run still starting is stopped by ``execute`` as soon as its start returns.
        started = [active for active in runs if active.drain is not None]
        await asyncio.gather(*(self._stop(active) for active in started), return_exceptions=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._active:
            await self.cancel()
        if self._stoppers:
            await asyncio.wait(self._stoppers, timeout=self.kill_grace + 10)
        await self.cleanup()

    # The run itself ------------------------------------------------------------------------

    async def execute(
        self,
        command_line: str,
        *,
        timeout: float | None,
        on_output: OutputCallback | None,
        on_pid: PidCallback | None = None,
        env: Mapping[str, str] | None = None,
        on_chunk: OutputChunkCallback | None = None,
    ) -> RunResult:
        if self._closed:
            raise errors.host_error(
                errors.CONNECTION_LOST, "the connection is already closed", host=self.target.label
            )
        started_at = utcnow()
        active = ActiveRun(pid=asyncio.get_running_loop().create_future())
        if on_pid is not None:
            active.pid.add_done_callback(
                lambda known: on_pid(known.result()) if not known.cancelled() else None
            )

        def take_marker(text: str) -> bool:
            if self.uses_marker and not active.pid.done():
                pid = parse_pid_marker(text)
                if pid is not None:
                    active.pid.set_result(pid)
                    return False
            return True

        tail = Tail()
        stdout = OutputPump("stdout", on_output, tail, on_chunk=on_chunk)
        stderr = OutputPump("stderr", on_output, tail, take_marker, on_chunk=on_chunk)

        def begin(process: StartedProcess) -> asyncio.Future[None]:
            active.process = process
            if not self.uses_marker and process.pid is not None:
                active.pid.set_result(process.pid)
            active.pumps = [stdout, stderr]
            active.drain = asyncio.ensure_future(self._drain(process, stdout, stderr))
            return active.drain

        # Known before it starts: a cancel that lands while the process is being started (it may
        # already run on the host) must still find it and stop it.
        self._active.add(active)
        starting = asyncio.ensure_future(self.start(command_line, env=env))
        try:
            process = await asyncio.shield(starting)
        except asyncio.CancelledError:
            active.cancelled = True
            await self._stop_when_started(active, starting, begin)
            self._active.discard(active)
            raise
        except BaseException:
            self._active.discard(active)
            raise
        drain = begin(process)
        if active.cancelled:
            # conn.cancel() came while it was starting.
            self._stop(active)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(drain), timeout)
        except TimeoutError:
            if drain.done() and drain.exception() is not None:
                raise self._lost(drain.exception()) from drain.exception()
            timed_out = True
            await self._stop(active)
        except asyncio.CancelledError:
            active.cancelled = True
            stopper = asyncio.ensure_future(self._stop(active))
            self._stoppers.add(stopper)
            stopper.add_done_callback(self._stoppers.discard)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(stopper)
            raise
        except Exception as exc:
            # The output callback failed or the connection dropped: do not leave it running.
            await self._stop(active)
            raise self._lost(exc) from exc
        finally:
            self._active.discard(active)

        exit_status, exit_signal = process.exit_info()
        if self.uses_marker and not active.pid.done() and not (timed_out or active.cancelled):
            seen = stderr.first_lines or stdout.first_lines
            first = seen[0] if seen else None
            raise self.shell_not_found(exit_status, first)
        if exit_status is None and exit_signal is None and not (timed_out or active.cancelled):
            # The channel closed without the host reporting how the process ended.
            raise errors.host_error(
                errors.CONNECTION_LOST,
                "connection lost during the run (no exit status received)",
                host=self.target.label,
            )
        if timed_out or active.cancelled or exit_signal is not None:
            exit_status = None
        return RunResult(
            exit_status=exit_status,
            exit_signal=exit_signal,
            timed_out=timed_out,
            cancelled=active.cancelled and not timed_out,
            started_at=started_at,
            finished_at=utcnow(),
            stdout_lines=stdout.lines,
            stderr_lines=stderr.lines,
            tail=tail.text(),
        )

    def _lost(self, exc: BaseException | None) -> BaseException:
        if isinstance(exc, HostError) or exc is None:
            return exc or errors.host_error(
                errors.CONNECTION_LOST, "connection lost", host=self.target.label
            )
        if isinstance(exc, OSError) or type(exc).__module__.startswith("asyncssh"):
            return errors.host_error(
                errors.CONNECTION_LOST,
                f"connection lost during the run ({str(exc) or type(exc).__name__})",
                host=self.target.label,
            )
        return exc

    @staticmethod
    async def _drain(process: StartedProcess, stdout: OutputPump, stderr: OutputPump) -> None:
        await asyncio.gather(stdout.run(process.stdout), stderr.run(process.stderr))
        await process.wait()

    async def _stop_when_started(
        self,
        active: ActiveRun,
        starting: asyncio.Future[StartedProcess],
        begin: Callable[[StartedProcess], asyncio.Future[None]],
    ) -> None:
        """The caller was cancelled during the start: stop the process if it did start."""
        done, _ = await asyncio.wait({starting}, timeout=START_WAIT_SECONDS)
        if not done:
            starting.cancel()
            return
        if starting.cancelled() or starting.exception() is not None:
            return
        begin(starting.result())
        stopper = self._stop(active)
        self._stoppers.add(stopper)
        stopper.add_done_callback(self._stoppers.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(stopper)

    def _stop(self, active: ActiveRun) -> asyncio.Task[None]:
        """Kill the run's process group once, however many callers ask."""
        if active.stopping is None:
            active.stopping = asyncio.ensure_future(self._kill_and_drain(active))
        return active.stopping

    async def _kill_and_drain(self, active: ActiveRun) -> None:
        assert active.drain is not None and active.process is not None
        if not active.drain.done():
            pid: int | None = None
            with contextlib.suppress(TimeoutError):
                pid = await asyncio.wait_for(asyncio.shield(active.pid), PID_WAIT_SECONDS)
            if pid is not None:
                with contextlib.suppress(HostError, OSError, TimeoutError):
                    await asyncio.wait_for(self.kill_group(pid), self.kill_grace + 10)
        done, _ = await asyncio.wait({active.drain}, timeout=DRAIN_AFTER_KILL_SECONDS)
        if not done:
            active.process.abort()
            done, _ = await asyncio.wait({active.drain}, timeout=1.0)
        if not done:
            active.drain.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await active.drain
