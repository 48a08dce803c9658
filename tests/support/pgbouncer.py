"""A real PgBouncer (Debian's package) in transaction mode, on a loopback port, for tests.

It fronts a PostgreSQL reached through its socket directory and accepts every database name
there (``*``). Started and stopped by PID; its ini file, user list, log and PID file live in a
directory of its own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
# PgBouncer will not run as root; when the tests do, it drops to the user owning PostgreSQL's
# socket directory (the only one, besides root, that may reach the socket), else to this one.
FALLBACK_USER = "nobody"


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgBouncer:
    """One PgBouncer process in transaction pooling mode."""

    def __init__(self, root: Path, *, postgres_url: str, users: Iterable[tuple[str, str]]) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed: run `make system-deps`")
        self.binary = binary
        self.root = root
        self.port = free_loopback_port()
        self.users = dict(users)
        socket_dir = dict(parse_qsl(urlsplit(postgres_url).query)).get("host")
        if not socket_dir:
            raise ValueError("the PostgreSQL URL names no socket directory (?host=)")
        self.socket_dir = socket_dir
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid)
        self.run_as = owner if owner.pw_uid != 0 else pwd.getpwnam(FALLBACK_USER)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.root / "pgbouncer.log"

    def _write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        userlist = self.root / "userlist.txt"
        # Plain-text passwords: PgBouncer checks md5 log-ins against them itself.
        userlist.write_text(
            "".join(f'"{user}" "{password}"\n' for user, password in self.users.items())
        )
        ini = self.root / "pgbouncer.ini"
        ini.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={self.socket_dir}",
                    "",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = md5",
                    f"auth_file = {userlist}",
                    "pool_mode = transaction",
                    "default_pool_size = 10",
                    "max_client_conn = 200",
                    f"logfile = {self.log_file}",
                    f"pidfile = {self.root / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        for path in (userlist, ini):
            path.chmod(0o600)
        if os.geteuid() == 0:
            for path in (self.root, userlist, ini):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
        return ini

    def start(self) -> None:
        ini = self._write_config()
        command = [self.binary]
        if os.geteuid() == 0:
            command += ["-u", self.run_as.pw_name]
        command.append(str(ini))
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                errors = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"pgbouncer exited at start: {errors}{self._log_tail()}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.2)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen within {START_TIMEOUT_SECONDS} s")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the process this object started (by its PID), and only that one."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if process.stderr is not None:
            process.stderr.close()

    def url(self, *, user: str, database: str) -> str:
        """A ``postgresql://`` URL reaching ``database`` through this PgBouncer as ``user``."""
        password = quote(self.users[user], safe="")
        netloc = f"{quote(user, safe='')}:{password}@127.0.0.1:{self.port}"
        return urlunsplit(("postgresql", netloc, "/" + database, "", ""))
