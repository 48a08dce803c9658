"""The Executor: opens host connections under a global and a per-host cap."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncssh

from shipyard import metrics
from shipyard.errors import HostError
from shipyard.hosts.executor import errors
from shipyard.hosts.executor.base import HostConnection, HostStatus, HostTarget, ProbeResult
from shipyard.hosts.executor.local import LocalHostConnection
from shipyard.hosts.executor.processes import utcnow
from shipyard.hosts.executor.ssh import import_key, open_ssh
from shipyard.outbound.policy import DEFAULT_POLICY, OutboundPolicy

if TYPE_CHECKING:
    from shipyard.config import Settings

KEY_CACHE_SIZE = 256
PROBE_TIMEOUT = 20.0


class _HostSlot:
    """The per-host semaphore and how many tasks use it, so idle hosts are forgotten."""

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class Executor:
    """Opens connections to hosts; owns the concurrency caps, so a process has one.

    The runtime builds it (``runtime.executor``); everything that reaches hosts uses that one.

    Waiting for a busy host never holds a global slot, so a slow host cannot starve others.
    """

    def __init__(
        self,
        *,
        max_connections: int = 400,
        max_connections_per_host: int = 4,
        max_handshakes: int = 128,
        connect_timeout: float = 10.0,
        allow_local: bool = False,
        kill_grace: float = 2.0,
        outbound: OutboundPolicy = DEFAULT_POLICY,
    ) -> None:
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.connect_timeout = connect_timeout
        self.allow_local = allow_local
        self.kill_grace = kill_grace
        # Every SSH address is checked (after DNS) when a connection opens, not only when saved.
        self.outbound = outbound
        self._global = asyncio.Semaphore(max_connections)
        # Handshakes in progress (see Settings.ssh_max_handshakes); the connect time-out starts
        # once one of these is held, so waiting for a turn never counts against a host.
        self._handshakes = asyncio.Semaphore(max_handshakes)
        self._hosts: dict[tuple[str, str, int], _HostSlot] = {}
        # Decrypted keys by digest of (key, passphrase): passphrase KDFs cost ~1 s of CPU each.
        self._keys: OrderedDict[bytes, asyncio.Future[asyncssh.SSHKey]] = OrderedDict()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, outbound: OutboundPolicy | None = None
    ) -> Executor:
        return cls(
            max_connections=settings.ssh_max_connections,
            max_connections_per_host=settings.ssh_max_connections_per_host,
            max_handshakes=settings.ssh_max_handshakes,
            connect_timeout=settings.ssh_connect_timeout,
            allow_local=settings.allow_local_hosts,
            outbound=outbound or OutboundPolicy.from_settings(settings),
        )

    @property
    def open_connections(self) -> int:
        """Connections open (or opening) right now."""
        return self.max_connections - self._global._value

    async def _load_key(self, private_key: str, passphrase: str | None) -> asyncssh.SSHKey:
        digest = hashlib.sha256(f"{passphrase}\0{private_key}".encode()).digest()
        loading = self._keys.get(digest)
        if loading is None:
            # One decryption per key, shared by every connection waiting for it.
            loading = asyncio.ensure_future(import_key(private_key, passphrase))
            self._keys[digest] = loading
            if len(self._keys) > KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(digest)
        try:
            return await asyncio.shield(loading)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError):
            # A bad key or passphrase is not cached: the row may be fixed later.
            if self._keys.get(digest) is loading:
                del self._keys[digest]
            raise

    async def _open(self, target: HostTarget) -> HostConnection:
        if target.type == "local":
            if not self.allow_local:
                raise errors.host_error(
                    errors.LOCAL_HOSTS_DISABLED,
                    "local hosts are disabled (set SHIPYARD_ALLOW_LOCAL_HOSTS=true to allow them)",
                    host=target.label,
                )
            return LocalHostConnection(target, kill_grace=self.kill_grace)
        started = time.perf_counter()
        try:
            connection = await self._open_ssh(target)
        except HostError as exc:
            metrics.SSH_CONNECT_FAILURES.labels(exc.code).inc()
            raise
        metrics.SSH_CONNECT_DURATION.observe(time.perf_counter() - started)
        return connection

    async def _open_ssh(self, target: HostTarget) -> HostConnection:
        return await open_ssh(
            target,
            connect_timeout=self.connect_timeout,
            kill_grace=self.kill_grace,
            load_key=self._load_key,
            outbound=self.outbound,
        )

    @asynccontextmanager
    async def connect(self, target: HostTarget) -> AsyncIterator[HostConnection]:
        """Open one connection to ``target``, held (with its cap slots) until the block exits.

        Raises ``HostError`` (``HostKeyMismatch`` for a changed host key) when the host
        cannot be reached or refuses the credentials. After a successful connect,
        ``conn.host_key_fingerprint`` is the key the host presented: record it when the
        target had no expected fingerprint (trust on first use).
        """
        key = target.cap_key
        slot = self._hosts.get(key)
        if slot is None:
            slot = self._hosts[key] = _HostSlot(self.max_connections_per_host)
        slot.users += 1
        try:
            async with slot.semaphore, self._global:
                async with self._handshakes:
                    connection = await self._open(target)
                try:
                    yield connection
                finally:
                    await asyncio.shield(connection.close())
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._hosts.pop(key, None)

    async def probe(self, target: HostTarget, *, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
        """Connect, authenticate and run ``uname -srm`` (or the PowerShell equivalent).

        Never raises for host problems: the outcome is in the result's ``status``.
        """
        fingerprint: str | None = None
        try:
            async with self.connect(target) as conn:
                fingerprint = conn.host_key_fingerprint
                started = time.perf_counter()
                result, os_info = await conn.probe_os(timeout=timeout)
                elapsed_ms = round((time.perf_counter() - started) * 1000)
        except errors.HostKeyMismatch as exc:
            return ProbeResult(
                status="host_key_mismatch",
                message=exc.message,
                checked_at=utcnow(),
                fingerprint=exc.presented,
                error_code=exc.code,
            )
        except HostError as exc:
            status: HostStatus
            if exc.code in errors.AUTH_CODES:
                status = "auth_failed"
            elif exc.code == errors.SHELL_NOT_FOUND:
                status = "unknown"
            else:
                status = "offline"
            return ProbeResult(
                status=status,
                message=exc.message,
                checked_at=utcnow(),
                fingerprint=fingerprint,
                error_code=exc.code,
            )
        if not result.ok:
            reason = "timed out" if result.timed_out else f"exited with {result.exit_status}"
            return ProbeResult(
                status="unknown",
                message=f"{target.label}: connected, but the probe {reason}",
                checked_at=utcnow(),
                round_trip_ms=elapsed_ms,
                fingerprint=fingerprint,
                error_code="probe_failed",
            )
        return ProbeResult(
            status="online",
            message=f"connected in {elapsed_ms} ms" + (f": {os_info}" if os_info else ""),
            checked_at=utcnow(),
            round_trip_ms=elapsed_ms,
            os_info=os_info,
            fingerprint=fingerprint,
        )
