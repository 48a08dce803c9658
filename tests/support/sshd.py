"""Debian's OpenSSH sshd on loopback ports as a fleet of test hosts.

One sshd process listens on at most 16 ports (``ListenAddress`` limit), so N endpoints take
ceil(N/16) processes. Processes run in the foreground (``-D``) as our children and are
stopped by PID. Test users are real Unix accounts made with ``useradd`` (we run as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncssh

from shipyard.hosts.executor import HostTarget
from tests.support import canary

SSHD = "/usr/sbin/sshd"
LOOPBACK = "127.0.0.1"
PORTS_PER_PROCESS = 16
START_TIMEOUT = 10.0

TEST_USER = "shipyard-test"
NOLOGIN_USER = "shipyard-nologin"
TEST_PASSWORD = "Sh1pyard-test-pass"
KEY_PASSPHRASE = "correct horse staple"


@contextlib.asynccontextmanager
async def silent_ports(count: int = 1) -> AsyncIterator[list[int]]:
    """Loopback ports that accept TCP connections and never say a word, like a hung host."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    servers = [await asyncio.start_server(accept, LOOPBACK, 0) for _ in range(count)]
    try:
        yield [int(server.sockets[0].getsockname()[1]) for server in servers]
    finally:
        for writer in held:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def sshd_version() -> tuple[int, int]:
    result = subprocess.run([SSHD, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _export(key: asyncssh.SSHKey, passphrase: str | None = None) -> str:
    if passphrase is None:
        return bytes(key.export_private_key("openssh")).decode()
    # Few KDF rounds: the tests exercise decryption, not the KDF's cost.
    return bytes(
        key.export_private_key("openssh", passphrase, rounds=2, ignore_few_rounds=True)
    ).decode()


@dataclass(frozen=True)
class KeyPair:
    private_key: str
    public_key: str
    passphrase: str | None = None


@dataclass(frozen=True)
class SSHUsers:
    """The Unix accounts sshd lets in, and their credentials."""

    user: str
    password: str
    ed25519: KeyPair
    rsa: KeyPair
    ecdsa: KeyPair
    encrypted: KeyPair  # ed25519 protected by KEY_PASSPHRASE
    unauthorized: KeyPair  # a valid key that is not in authorized_keys
    nologin_user: str  # login shell /usr/sbin/nologin: authenticates, runs nothing

    @property
    def authorized_keys(self) -> str:
        return "".join(
            pair.public_key + "\n" for pair in (self.ed25519, self.rsa, self.ecdsa, self.encrypted)
        )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ensure_user(name: str, shell: str, password: str) -> None:
    if not _user_exists(name):
        created = subprocess.run(
            ["useradd", "--create-home", "--shell", shell, name], capture_output=True, check=False
        )
        # Another test session may have created it at the same moment.
        if created.returncode != 0 and not _user_exists(name):
            raise RuntimeError(f"useradd {name} failed: {created.stderr.decode().strip()}")
    if pwd.getpwnam(name).pw_shell != shell:
        _retrying(["usermod", "--shell", shell, name])
    _retrying(["chpasswd"], f"{name}:{password}\n")


def _retrying(command: list[str], stdin: str | None = None, attempts: int = 20) -> None:
    """Run a shadow-utils command, retrying while another session holds /etc/passwd's lock."""
    for _ in range(attempts):
        result = subprocess.run(command, input=stdin, text=True, capture_output=True, check=False)
        if result.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()}")


def _pair(algorithm: str, passphrase: str | None = None, **options: Any) -> KeyPair:
    key = asyncssh.generate_private_key(algorithm, comment="shipyard-test", **options)
    return KeyPair(
        private_key=canary.remember(_export(key, passphrase), "SSH private key"),
        public_key=bytes(key.export_public_key()).decode().strip(),
        passphrase=passphrase,
    )


def ensure_test_users() -> SSHUsers:
    """Create (or refresh) the test accounts and fresh key pairs."""
    _ensure_user(TEST_USER, "/bin/sh", TEST_PASSWORD)
    _ensure_user(NOLOGIN_USER, "/usr/sbin/nologin", TEST_PASSWORD)
    canary.remember(TEST_PASSWORD, "host password")
    canary.remember(KEY_PASSPHRASE, "key passphrase")
    return SSHUsers(
        user=TEST_USER,
        password=TEST_PASSWORD,
        ed25519=_pair("ssh-ed25519"),
        rsa=_pair("ssh-rsa", key_size=2048),
        ecdsa=_pair("ecdsa-sha2-nistp256"),
        encrypted=_pair("ssh-ed25519", KEY_PASSPHRASE),
        unauthorized=_pair("ssh-ed25519"),
        nologin_user=NOLOGIN_USER,
    )


@dataclass(frozen=True)
class SSHEndpoint:
    """One loopback port served by sshd, standing for one host."""

    host: str
    port: int
    user: str
    password: str
    private_key: str
    public_key: str
    host_key_fingerprint: str
    index: int = 0

    def target(self, **overrides: Any) -> HostTarget:
        """A password target for this endpoint; override any field (e.g. private_key=...)."""
        values: dict[str, Any] = {
            "address": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "name": f"sshd-{self.port}",
        }
        values.update(overrides)
        return HostTarget(**values)

    def key_target(self, **overrides: Any) -> HostTarget:
        """A private-key target for this endpoint (ed25519, no passphrase by default)."""
        values: dict[str, Any] = {"password": None, "private_key": self.private_key}
        values.update(overrides)
        return self.target(**values)


@dataclass
class SSHDProcess:
    """One sshd serving up to 16 loopback ports with one host key."""

    name: str
    root: Path
    ports: list[int]
    authorized_keys_dir: Path
    process: subprocess.Popen[bytes] | None = None
    host_key_fingerprint: str = ""
    extra_config: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def host_key_path(self) -> Path:
        return self.root / f"{self.name}_host_ed25519"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def new_host_key(self) -> None:
        self.host_key_path.unlink(missing_ok=True)
        Path(f"{self.host_key_path}.pub").unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key_path)],
            check=True,
            capture_output=True,
        )
        key = asyncssh.read_public_key(f"{self.host_key_path}.pub")
        self.host_key_fingerprint = str(key.get_fingerprint("sha256"))

    def write_config(self) -> None:
        lines = [f"ListenAddress {LOOPBACK}:{port}" for port in self.ports]
        lines += [
            f"HostKey {self.host_key_path}",
            f"PidFile {self.root / (self.name + '.pid')}",
            f"AuthorizedKeysFile {self.authorized_keys_dir}/%u",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 1000",
            "MaxSessions 100",
            "MaxAuthTries 20",
            "LoginGraceTime 30",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
        ]
        if sshd_version() >= (9, 8):
            # Newer sshd penalises addresses that fail log-ins; tests fail them on purpose.
            lines.append("PerSourcePenalties no")
        lines += self.extra_config
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        if not self.host_key_fingerprint:
            self.new_host_key()
        self.write_config()
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        waiting = set(self.ports)
        while waiting:
            if self.process.poll() is not None:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise RuntimeError(f"sshd {self.name} exited at start: {log[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd {self.name} did not listen on {sorted(waiting)}")
            for port in list(waiting):
                with socket.socket() as probe:
                    if probe.connect_ex((LOOPBACK, port)) == 0:
                        waiting.discard(port)
            if waiting:
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


class SSHFleet:
    """A growing set of loopback sshd endpoints; start with :meth:`ensure`."""

    def __init__(self, root: Path, users: SSHUsers) -> None:
        self.root = root
        self.users = users
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.authorized_keys_dir = self.root / "authorized_keys"
        self.authorized_keys_dir.mkdir(exist_ok=True)
        for user in (users.user, users.nologin_user):
            (self.authorized_keys_dir / user).write_text(users.authorized_keys)
        self.processes: list[SSHDProcess] = []
        self.endpoints: list[SSHEndpoint] = []
        self._counter = 0

    def _endpoint(self, process: SSHDProcess, port: int) -> SSHEndpoint:
        return SSHEndpoint(
            host=LOOPBACK,
            port=port,
            user=self.users.user,
            password=self.users.password,
            private_key=self.users.ed25519.private_key,
            public_key=self.users.ed25519.public_key,
            host_key_fingerprint=process.host_key_fingerprint,
        )

    def _start_process(self, count: int, extra_config: list[str] | None = None) -> SSHDProcess:
        for _attempt in range(3):
            self._counter += 1
            process = SSHDProcess(
                name=f"sshd-{self._counter}",
                root=self.root,
                ports=[free_port() for _ in range(count)],
                authorized_keys_dir=self.authorized_keys_dir,
                extra_config=extra_config or [],
            )
            try:
                process.start()
            except RuntimeError as exc:
                # Another process may have taken a port between choosing and binding it.
                if "Address already in use" in str(exc) or "Bind to port" in str(exc):
                    continue
                raise
            self.processes.append(process)
            return process
        raise RuntimeError("could not find free ports for sshd")

    def ensure(self, count: int) -> list[SSHEndpoint]:
        """Return ``count`` shared endpoints, starting sshd processes as needed."""
        while len(self.endpoints) < count:
            batch = min(PORTS_PER_PROCESS, count - len(self.endpoints))
            process = self._start_process(batch)
            for port in process.ports:
                self.endpoints.append(
                    replace(self._endpoint(process, port), index=len(self.endpoints))
                )
        return self.endpoints[:count]

    def start_private(self, extra_config: list[str] | None = None) -> PrivateEndpoint:
        """An endpoint with its own sshd and host key, for tests that stop or change it."""
        process = self._start_process(1, extra_config)
        return PrivateEndpoint(self, process)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()
        self.endpoints.clear()


class PrivateEndpoint:
    """One test's own sshd: it can be stopped, restarted, or given a new host key."""

    def __init__(self, fleet: SSHFleet, process: SSHDProcess) -> None:
        self.fleet = fleet
        self.process = process

    @property
    def endpoint(self) -> SSHEndpoint:
        return self.fleet._endpoint(self.process, self.process.ports[0])

    def stop(self) -> None:
        self.process.stop()

    def crash(self) -> None:
        """Kill the listener and every session it serves at once, like a host losing power."""
        if self.process.process is None:
            return
        pids = [self.process.process.pid, *descendants(self.process.process.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.process.wait(timeout=5)
        self.process.process = None

    def restart(self, *, new_host_key: bool = False) -> SSHEndpoint:
        self.process.stop()
        if new_host_key:
            self.process.new_host_key()
        self.process.start()
        return self.endpoint

    def close(self) -> None:
        self.process.stop()
        with contextlib.suppress(ValueError):
            self.fleet.processes.remove(self.process)


def processes_of(user: str, pattern: str) -> list[int]:
    """PIDs of ``user``'s live (not zombie) processes whose command line contains ``pattern``."""
    result = subprocess.run(
        ["ps", "-u", user, "-o", "pid=,stat=,args="], capture_output=True, text=True, check=False
    )
    pids = []
    for line in result.stdout.splitlines():
        pid, stat, args = [*line.split(None, 2), "", ""][:3]
        if not stat.startswith("Z") and pattern in args:
            pids.append(int(pid))
    return pids


def descendants(pid: int) -> list[int]:
    """PIDs of every process below ``pid`` (e.g. an sshd's per-connection processes)."""
    result = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=False
    )
    children: dict[int, list[int]] = {}
    for line in result.stdout.splitlines():
        child, parent = (int(value) for value in line.split())
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def wait_until_gone(user: str, pattern: str, timeout: float = 10.0) -> list[int]:
    """Poll until no such process is left (or ``timeout``); return what is still running."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = processes_of(user, pattern)
        if not remaining or time.monotonic() > deadline:
            return remaining
        time.sleep(0.05)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
