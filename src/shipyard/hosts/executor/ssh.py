"""SSH hosts (POSIX shells and Windows PowerShell) through asyncssh."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import posixpath
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from shipyard.errors import HostError
from shipyard.hosts.executor import commands, errors
from shipyard.hosts.executor.base import HostTarget
from shipyard.hosts.executor.processes import (
    EnvironmentHandoff,
    ProcessConnection,
    StartedProcess,
)
from shipyard.hosts.executor.streams import ByteReader
from shipyard.outbound.errors import OutboundRefused
from shipyard.outbound.policy import DEFAULT_POLICY, IPAddress, OutboundPolicy

KeyLoader = Callable[[str, str | None], Awaitable[asyncssh.SSHKey]]
HELPER_TIMEOUT = 30.0
# Environment files hold secret values: readable and writable by their owner alone.
ENV_FILE_MODE = 0o600
# Temporary directories hold the env files: entered and listed by their owner alone.
TEMP_DIR_MODE = 0o700
# AES-GCM first, then asyncssh's defaults: OpenSSL's AES-GCM (AES-NI) costs us about a fifth less
# CPU per host than asyncssh's ChaCha20-Poly1305, which builds cipher contexts per packet in
# Python. Both are AEAD ciphers OpenSSH offers by default; GCM is not open to Terrapin either.
ENCRYPTION_ALGS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"


class TrustClient(asyncssh.SSHClient):
    """Checks the host key against the expected fingerprint before any credential is sent."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected
        self.presented: str | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.presented = str(key.get_fingerprint("sha256"))
        if self.expected is None:
            return True  # trust on first use; the caller records what was presented
        return hmac.compare_digest(self.presented.encode(), self.expected.encode())


async def import_key(private_key: str, passphrase: str | None) -> asyncssh.SSHKey:
    """Decrypt a private key off the event loop (passphrase KDFs take about a second)."""
    return await asyncio.to_thread(asyncssh.import_private_key, private_key, passphrase)


def key_error(exc: Exception, target: HostTarget) -> HostError:
    message = str(exc)
    if isinstance(exc, asyncssh.KeyEncryptionError) or "Incorrect passphrase" in message:
        return errors.host_error(
            errors.WRONG_KEY_PASSPHRASE,
            "the private key passphrase is wrong",
            host=target.label,
        )
    if "Passphrase must be specified" in message:
        return errors.host_error(
            errors.WRONG_KEY_PASSPHRASE,
            "the private key is encrypted and no passphrase is stored",
            host=target.label,
        )
    return errors.host_error(
        errors.INVALID_PRIVATE_KEY,
        f"the private key cannot be read ({message})",
        host=target.label,
    )


def connect_error(exc: BaseException, target: HostTarget, client: TrustClient) -> HostError:
    """Translate what asyncssh and the socket layer raise into one error code each."""
    host = target.label
    if isinstance(exc, asyncssh.HostKeyNotVerifiable) and client.presented and client.expected:
        return errors.HostKeyMismatch(
            host=host, expected=client.expected, presented=client.presented
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        if target.private_key:
            return errors.host_error(
                errors.WRONG_KEY,
                f"the host refused the private key for user {target.user!r}",
                host=host,
            )
        return errors.host_error(
            errors.WRONG_PASSWORD,
            f"the host refused the password for user {target.user!r}",
            host=host,
        )
    if isinstance(exc, socket.gaierror):
        return errors.host_error(
            errors.DNS_FAILURE, f"cannot resolve host name {target.address!r}", host=host
        )
    if client.presented is None:
        # Until the host has shown an SSH host key, every failure reads the same: refused,
        # timed out, unreachable, or a listener that is not SSH. Telling them apart would
        # make host tests a port scanner.
        return errors.host_error(
            errors.CONNECTION_FAILED,
            f"no SSH connection to port {target.port}: the connection failed or timed out",
            host=host,
        )
    if isinstance(exc, asyncssh.ConnectionLost | ConnectionResetError | BrokenPipeError):
        return errors.host_error(
            errors.CONNECTION_LOST, "the host closed the connection during the handshake", host=host
        )
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return errors.host_error(errors.SSH_ERROR, f"SSH failed: {detail}", host=host)


class SSHProcess:
    """An asyncssh process seen through :class:`StartedProcess`."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process
        self.pid: int | None = None

    @property
    def stdout(self) -> ByteReader:
        return self._process.stdout

    @property
    def stderr(self) -> ByteReader:
        return self._process.stderr

    async def wait(self) -> None:
        await self._process.wait_closed()

    def exit_info(self) -> tuple[int | None, str | None]:
        signal = self._process.exit_signal
        if signal is not None:
            return None, str(signal[0])
        return self._process.exit_status, None

    def abort(self) -> None:
        self._process.close()


class SSHHostConnection(ProcessConnection):
    """One SSH connection; commands run in the login shell (POSIX) or PowerShell (Windows)."""

    def __init__(
        self,
        target: HostTarget,
        connection: asyncssh.SSHClientConnection,
        *,
        fingerprint: str | None,
        kill_grace: float,
    ) -> None:
        super().__init__(kill_grace=kill_grace)
        self.target = target
        self.platform = "windows" if target.is_windows else "posix"
        self.host_key_fingerprint = fingerprint
        self._connection = connection
        self._sftp: asyncssh.SFTPClient | None = None
        # Temporary directories made by SFTP mkdir (POSIX), with the SFTP paths of the files we
        # uploaded into them: cleanup removes those and the directory by SFTP, no remote shell.
        self._sftp_dirs: dict[str, list[str]] = {}
        # A mkdir that timed out may still have happened: only ``rm -rf`` may remove it.
        self._unsure_dirs: list[str] = []

    def command_line(
        self,
        code: str,
        *,
        args: Sequence[str],
        env_file: str | None,
        cwd: str | None,
        script: bool,
    ) -> str:
        if self.platform == "windows":
            build = commands.powershell_script if script else commands.powershell_command
            return build(code, args=args, env_file=env_file, cwd=cwd)
        if script:
            return commands.posix_script(code, args=args, env_file=env_file, cwd=cwd)
        return commands.posix_command(code, args=args, env_file=env_file, cwd=cwd)

    async def hand_over_environment(self, env: Mapping[str, str]) -> EnvironmentHandoff:
        """Upload ``env`` as a file only its owner can read, in a private temporary directory.

        The file is created with mode 0600 in the one SFTP open (exclusive create), never
        widened afterwards; the directory is ours (0700, or an owner-only ACL on Windows).
        """
        if self.platform == "windows":
            body = commands.powershell_env_file(env)
            suffix = ".json"
        else:
            body = commands.posix_env_file(env)
            suffix = ".sh"
        directory = self._temp_dirs[0] if self._temp_dirs else await self.make_temp_dir()
        name = f".env-{secrets.token_hex(8)}{suffix}"
        remote, sftp_path = self._remote_path(directory, name)
        sftp = await self._sftp_client()
        try:
            attrs = asyncssh.SFTPAttrs(permissions=ENV_FILE_MODE)
            async with asyncio.timeout(HELPER_TIMEOUT):
                async with sftp.open(sftp_path, "xb", attrs) as handle:
                    await handle.write(body)
        except (asyncssh.SFTPError, OSError, TimeoutError) as exc:
            with contextlib.suppress(asyncssh.SFTPError, OSError, TimeoutError):
                async with asyncio.timeout(HELPER_TIMEOUT):
                    await sftp.remove(sftp_path)
            raise errors.host_error(
                errors.FILE_TRANSFER_FAILED,
                f"cannot upload the environment file to {directory}: {exc}",
                host=self.target.label,
            ) from exc
        return EnvironmentHandoff(file=remote)

    async def discard_environment(self, handoff: EnvironmentHandoff) -> None:
        if handoff.file is None or self._sftp is None:
            return
        sftp_path = (
            commands.windows_sftp_path(handoff.file) if self.platform == "windows" else handoff.file
        )
        # Already gone when the wrapper read it; what is left is removed with the temp dir.
        with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
            async with asyncio.timeout(HELPER_TIMEOUT):
                await self._sftp.remove(sftp_path)

    def _remote_path(self, directory: str, name: str) -> tuple[str, str]:
        """(path as the host's shell names it, path as SFTP names it)."""
        if self.platform == "windows":
            remote = commands.windows_join(directory, name)
            return remote, commands.windows_sftp_path(remote)
        remote = posixpath.join(directory, name)
        return remote, remote

    def shell_not_found(self, exit_status: int | None, first_line: str | None) -> HostError:
        if self.platform == "windows":
            detail = f" ({first_line})" if first_line else ""
            return errors.host_error(
                errors.SHELL_NOT_FOUND,
                f"PowerShell did not start on the host (exit {exit_status}){detail}",
                host=self.target.label,
            )
        return super().shell_not_found(exit_status, first_line)

    def probe_line(self) -> str:
        if self.platform == "windows":
            return commands.WINDOWS_PROBE
        return super().probe_line()

    async def start(
        self, command_line: str, *, env: Mapping[str, str] | None = None
    ) -> StartedProcess:
        # Environment values reach SSH processes through hand_over_environment's file only:
        # asyncssh's own env= would send them in clear to sshd's log and AcceptEnv rules.
        assert not env, "SSH processes get their environment from an env file"
        try:
            process = await self._connection.create_process(command_line, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc) from exc
        process.stdin.write_eof()
        return SSHProcess(process)

    async def kill_group(self, pid: int) -> None:
        if self.platform == "windows":
            line = commands.windows_kill(pid)
        else:
            line = commands.posix_kill(pid, grace_seconds=self.kill_grace)
        await self._connection.run(line, check=False, timeout=self.kill_grace + 10)

    async def _helper(self, line: str, what: str) -> str:
        """Run a short command of our own and return its stdout; fail with a clear message."""
        try:
            result = await self._connection.run(
                line, check=False, timeout=HELPER_TIMEOUT, encoding="utf-8", errors="replace"
            )
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise self._lost(exc) from exc
        if result.exit_status != 0:
            stderr = str(result.stderr or "").strip().splitlines()
            reason = stderr[-1] if stderr else f"exit {result.exit_status}"
            code = errors.SHELL_NOT_FOUND if result.exit_status == 127 else errors.SSH_ERROR
            raise errors.host_error(code, f"cannot {what}: {reason}", host=self.target.label)
        return str(result.stdout or "")

    async def make_temp_dir(self) -> str:
        if self.platform == "posix":
            made = await self._make_temp_dir_by_sftp()
            if made is not None:
                return made
        line = (
            commands.WINDOWS_MAKE_TEMP_DIR
            if self.platform == "windows"
            else commands.POSIX_MAKE_TEMP_DIR
        )
        output = (await self._helper(line, "create a temporary directory")).strip()
        path = output.splitlines()[-1].strip() if output else ""
        if not path:
            raise errors.host_error(
                errors.SSH_ERROR,
                "cannot create a temporary directory: no path printed",
                host=self.target.label,
            )
        self._temp_dirs.append(path)
        return path

    async def _make_temp_dir_by_sftp(self) -> str | None:
        """Create the directory with one SFTP mkdir; None when SFTP cannot (then ``mktemp``).

        The SFTP session is the one the upload needs anyway, so this starts no remote process
        (``mktemp`` costs a session and a shell). The name is random and mkdir(2) is exclusive,
        so the directory is new and ours; its mode is 0700 less the server's umask, never wider.
        """
        try:
            sftp = await self._sftp_client()
        except HostError:
            return None
        path = commands.posix_temp_dir_path()
        try:
            async with asyncio.timeout(HELPER_TIMEOUT):
                await sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=TEMP_DIR_MODE))
        except asyncssh.SFTPError:
            # No /tmp, read-only, not allowed: the host's shell may know better ($TMPDIR).
            return None
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            self._unsure_dirs.append(path)
            raise self._lost(exc) from exc
        self._temp_dirs.append(path)
        self._sftp_dirs[path] = []
        return path

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = await self._connection.start_sftp_client()
            except (asyncssh.Error, OSError) as exc:
                raise errors.host_error(
                    errors.FILE_TRANSFER_FAILED,
                    f"SFTP is not available on the host ({exc})",
                    host=self.target.label,
                ) from exc
        return self._sftp

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
        remote, sftp_path = self._remote_path(directory, name)
        sftp = await self._sftp_client()
        try:
            if isinstance(source, bytes):
                attrs = asyncssh.SFTPAttrs(permissions=mode)
                async with sftp.open(sftp_path, "wb", attrs) as handle:
                    await handle.write(source)
            else:
                await sftp.put(str(source), sftp_path)
            if self.platform == "posix":
                await sftp.chmod(sftp_path, mode)
        except (asyncssh.SFTPError, OSError) as exc:
            raise errors.host_error(
                errors.FILE_TRANSFER_FAILED,
                f"cannot upload {name} to {directory}: {exc}",
                host=self.target.label,
            ) from exc
        uploaded = self._sftp_dirs.get(directory)
        if uploaded is not None and sftp_path not in uploaded:
            uploaded.append(sftp_path)
        return remote

    async def cleanup(self) -> None:
        try:
            leftover = await self._remove_sftp_dirs()
            if leftover:
                remove = (
                    commands.windows_remove_dirs
                    if self.platform == "windows"
                    else commands.posix_remove_dirs
                )
                with contextlib.suppress(HostError):
                    await self._helper(remove(leftover), "remove temporary directories")
            self._temp_dirs.clear()
            self._sftp_dirs.clear()
            self._unsure_dirs.clear()
            if self._sftp is not None:
                self._sftp.exit()
        finally:
            self._connection.close()
            with contextlib.suppress(Exception):
                await self._connection.wait_closed()

    async def _remove_sftp_dirs(self) -> list[str]:
        """Remove the directories SFTP made, by SFTP; return those left for ``rm -rf``.

        Our uploaded files go first, then rmdir, which fails when something else is left (a
        script wrote files there, an env file the wrapper did not reach): ``rm -rf`` then.
        One deadline for all of it: a host that does not answer SFTP gets no shell either.
        """
        leftover = [path for path in self._temp_dirs if path not in self._sftp_dirs]
        leftover += self._unsure_dirs
        owned = [path for path in self._temp_dirs if path in self._sftp_dirs]
        if not owned:
            return leftover
        if self._sftp is None:
            return leftover + owned
        try:
            async with asyncio.timeout(HELPER_TIMEOUT):
                for directory in owned:
                    for path in self._sftp_dirs[directory]:
                        with contextlib.suppress(asyncssh.SFTPError):
                            await self._sftp.remove(path)
                    try:
                        await self._sftp.rmdir(directory)
                    except asyncssh.SFTPError:
                        leftover.append(directory)
        except (asyncssh.Error, OSError, TimeoutError):
            return []
        return leftover


async def open_ssh(
    target: HostTarget,
    *,
    connect_timeout: float,
    kill_grace: float,
    load_key: KeyLoader = import_key,
    outbound: OutboundPolicy = DEFAULT_POLICY,
) -> SSHHostConnection:
    """Connect and authenticate; the host key is checked before credentials are sent.

    The address is resolved once and every result checked with ``outbound``; the connection
    goes to a checked address, so DNS cannot answer differently between check and connect.
    """
    if not target.user:
        raise errors.host_error(
            errors.NO_CREDENTIALS, "no user name is configured", host=target.label
        )
    options: dict[str, Any] = {}
    if target.private_key:
        try:
            key = await load_key(target.private_key, target.passphrase)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            raise key_error(exc, target) from exc
        options.update(client_keys=[key], preferred_auth="publickey", password=None)
    elif target.password is not None:
        options.update(
            client_keys=[], password=target.password, preferred_auth="password,keyboard-interactive"
        )
    else:
        raise errors.host_error(
            errors.NO_CREDENTIALS,
            "neither a password nor a private key is stored",
            host=target.label,
        )
    client = TrustClient(target.expected_fingerprint)
    addresses = await checked_addresses(target, outbound, client)
    for index, address in enumerate(addresses):
        try:
            connection, _ = await asyncssh.create_connection(
                lambda: client,
                str(address),
                target.port,
                username=target.user,
                # Empty trusted lists make asyncssh ask TrustClient about every host key.
                known_hosts=([], [], []),
                server_host_key_algs="default",
                encryption_algs=ENCRYPTION_ALGS,
                agent_path=None,
                config=[],
                connect_timeout=connect_timeout,
                keepalive_interval=30,
                keepalive_count_max=4,
                **options,
            )
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            # The next address only while nothing reached an SSH server (never a second
            # authentication attempt).
            retry = isinstance(exc, OSError | TimeoutError) and client.presented is None
            if retry and index + 1 < len(addresses):
                continue
            raise connect_error(exc, target, client) from exc
        return SSHHostConnection(
            target, connection, fingerprint=client.presented, kill_grace=kill_grace
        )
    raise AssertionError("checked_addresses returns at least one address")


async def checked_addresses(
    target: HostTarget, outbound: OutboundPolicy, client: TrustClient
) -> list[IPAddress]:
    """The addresses of ``target`` the outbound policy allows; refused ones never connect."""
    try:
        return await outbound.check_host(target.address, target.port)
    except OutboundRefused as exc:
        raise errors.host_error(errors.OUTBOUND_REFUSED, exc.message, host=target.label) from exc
    except OSError as exc:
        raise connect_error(exc, target, client) from exc
