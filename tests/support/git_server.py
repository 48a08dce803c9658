"""Real Git over HTTP on loopback: ``git http-backend`` (CGI) behind token auth.

:class:`GitHttpServer` serves bare repositories under its root. Private repositories need
``Authorization: Basic`` with the server's token as the password (any user name, as GitHub's
``x-access-token:<token>``) or ``Bearer <token>``; public ones are readable anonymously. Every
request is recorded (method, path, query, whether it carried credentials) so tests can prove no
token ever travelled in a URL.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from tests.support import canary

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Shipyard Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Shipyard Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}
PUBLIC_MARKER = "shipyard-public"


@dataclass(frozen=True)
class GitFile:
    """File content with its executable bit (plain ``str``/``bytes`` values are not executable)."""

    content: str | bytes
    executable: bool = False


FileSpec = Mapping[str, "str | bytes | GitFile | None"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    authorization: str | None
    status: int


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class HostedRepo:
    """A bare repository served by :class:`GitHttpServer`."""

    server: GitHttpServer
    name: str
    path: Path
    default_branch: str
    public: bool

    @property
    def clone_url(self) -> str:
        return f"{self.server.url}/{self.name}.git"

    @property
    def token(self) -> str:
        return self.server.token

    def head(self, ref: str | None = None) -> str:
        """The commit SHA of ``ref`` (the default branch when None)."""
        return git("rev-parse", f"{ref or self.default_branch}^{{commit}}", cwd=self.path).strip()

    def commit(self, files: FileSpec, *, branch: str | None = None, message: str = "change") -> str:
        """Commit ``files`` on ``branch`` (``None`` content deletes a file); returns the SHA."""
        branch = branch or self.default_branch
        with tempfile.TemporaryDirectory(prefix="sy-git-") as work:
            tree = Path(work)
            exists = git("branch", "--list", branch, cwd=self.path).strip() != ""
            git("clone", "--quiet", str(self.path), str(tree))
            if exists:
                git("checkout", "--quiet", branch, cwd=tree)
            else:
                git("checkout", "--quiet", "-b", branch, cwd=tree)
            write_files(tree, files)
            git("add", "--all", cwd=tree)
            git("commit", "--quiet", "--allow-empty", "-m", message, cwd=tree)
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=tree)
        return self.head(branch)

    def tag(self, name: str, ref: str | None = None, *, annotated: bool = True) -> str:
        target = self.head(ref)
        if annotated:
            git("tag", "-a", name, "-m", name, target, cwd=self.path)
        else:
            git("tag", name, target, cwd=self.path)
        return target


def write_files(root: Path, files: FileSpec) -> None:
    for relative, spec in files.items():
        target = root / relative
        if spec is None:
            if target.exists():
                target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        file = spec if isinstance(spec, GitFile) else GitFile(spec)
        data = file.content.encode() if isinstance(file.content, str) else file.content
        target.write_bytes(data)
        target.chmod(0o755 if file.executable else 0o644)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    methods: ClassVar[set[str]] = {"GET", "POST"}

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self, repo_dir: Path) -> bool:
        owner: GitHttpServer = self.server.owner
        if (repo_dir / PUBLIC_MARKER).exists() and "git-receive-pack" not in self.path:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() in owner.tokens
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return password in owner.tokens or (user in owner.tokens and not password)
        return False

    def _serve(self) -> None:
        owner: GitHttpServer = self.server.owner
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        body = self._body()
        repo_name = path.lstrip("/").split(".git", 1)[0]
        repo_dir = owner.root / f"{repo_name}.git"
        status = 200
        if not repo_dir.is_dir():
            status = 404
            self._reply(404, b"repository not found\n", {})
        elif not self._authorized(repo_dir):
            status = 401
            self._reply(
                401,
                b"authentication required\n",
                {"WWW-Authenticate": 'Basic realm="shipyard-tests"'},
            )
        else:
            status = self._cgi(path, parts.query, body)
        owner.record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=parts.query,
                authorization=self.headers.get("Authorization"),
                status=status,
            )
        )

    def _cgi(self, path: str, query: str, body: bytes) -> int:
        owner: GitHttpServer = self.server.owner
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            **GIT_ENV,
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "REQUEST_METHOD": self.command,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": "shipyard",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        if self.headers.get("Git-Protocol"):
            env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        headers: dict[str, str] = {}
        status = 200
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        self._reply(status, payload, headers)
        return status

    def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: GitHttpServer


@dataclass
class GitHttpServer:
    """``git http-backend`` on a loopback port, serving ``root``; stop with :meth:`stop`."""

    root: Path
    token: str = field(default_factory=lambda: "gitsrv_" + secrets.token_hex(16))
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: _Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: set[str] = field(default_factory=set)

    def start(self) -> GitHttpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.tokens.add(canary.remember(self.token, "git server token"))
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def allow_token(self, token: str) -> None:
        """Accept another token too (a provider fake's token, say)."""
        self.tokens.add(canary.remember(token, "git token"))

    def revoke_token(self, token: str) -> None:
        self.tokens.discard(token)

    def create_repo(
        self,
        name: str,
        files: FileSpec,
        *,
        public: bool = False,
        default_branch: str = "main",
        message: str = "initial commit",
    ) -> HostedRepo:
        """A bare repository ``<name>.git`` whose first commit holds ``files``."""
        path = self.root / f"{name}.git"
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path))
        git("config", "http.receivepack", "true", cwd=path)
        if public:
            (path / PUBLIC_MARKER).write_text("readable without credentials\n")
        repo = HostedRepo(
            server=self, name=name, path=path, default_branch=default_branch, public=public
        )
        repo.commit(files, branch=default_branch, message=message)
        return repo
