"""Running the ``git`` program: credentials through the environment, timeouts, per-repository locks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from shipyard.errors import NotFound, ProviderError, ServiceUnavailable
from shipyard.outbound.masking import Masker
from shipyard.outbound.policy import DEFAULT_POLICY, IPAddress, OutboundPolicy, parse_address

GIT_TIMEOUT_SECONDS = 300.0
LOCK_POLL_SECONDS = 0.02
HEX_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
FULL_SHA_RE = re.compile(r"^[0-9a-fA-F]{40}([0-9a-fA-F]{24})?$")
# What git prints when the server refused the credentials (or asked for some and got none).
AUTH_FAILURE_MARKERS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
)
# What git (curl) prints when no connection opened: refused, timed out, unreachable, unresolved.
UNREACHABLE_MARKERS = (
    "failed to connect to",
    "couldn't connect to server",
    "connection refused",
    "connection timed out",
    "timed out after",
    "no route to host",
    "network is unreachable",
    "could not resolve host",
)
# Only these transports: no ssh://, git://, file:// or ext:: (which runs a command) from a
# tenant's URL, nor from a submodule or a redirect.
ALLOWED_PROTOCOLS = "http:https"


class GitCommandFailed(ProviderError):
    """``git`` exited non-zero; ``stderr`` is already scrubbed of credentials."""

    code = "git_failed"

    def __init__(self, message: str, *, stderr: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.stderr = stderr

    @property
    def is_auth_failure(self) -> bool:
        lowered = self.stderr.lower()
        return any(marker in lowered for marker in AUTH_FAILURE_MARKERS)


@dataclass(frozen=True)
class GitCredentials:
    """HTTP credentials for a clone; sent as an ``Authorization`` header, never put in a URL."""

    token: str
    username: str = "x-access-token"

    def header(self) -> str:
        pair = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        return f"Authorization: Basic {pair}"


def strip_userinfo(url: str) -> str:
    """``url`` without any ``user:password@`` part, so credentials can never ride in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def cache_key(url: str) -> str:
    return hashlib.sha256(strip_userinfo(url).rstrip("/").encode()).hexdigest()[:32]


def git_environment(
    url: str,
    credentials: GitCredentials | None,
    *,
    addresses: list[IPAddress] | None = None,
) -> dict[str, str]:
    """The environment of a ``git`` run: no prompts, no user config, the header scoped to ``url``.

    The header goes through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``, so it is
    neither in argv (visible in ``ps``) nor in any config file, and git sends it only to ``url``'s
    origin (``http.<url>.extraHeader``), not to a host a redirect points at. Only http and https
    are allowed, redirects are not followed, and with ``addresses`` (checked by the outbound
    policy) curl connects to those and no others (``http.curloptResolve``): no second lookup.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and key not in {"HOME", "XDG_CONFIG_HOME"}
    }
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": os.devnull,
            "LC_ALL": "C",
            "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
        }
    )
    config: list[tuple[str, str]] = [
        ("credential.helper", ""),
        ("protocol.version", "2"),
        ("protocol.allow", "never"),
        ("http.followRedirects", "false"),
    ]
    pin = curl_resolve(url, addresses)
    if pin is not None:
        config.append(("http.curloptResolve", pin))
    if credentials is not None:
        parts = urlsplit(strip_userinfo(url))
        origin = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
        config.append((f"http.{origin}.extraHeader", credentials.header()))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def curl_resolve(url: str, addresses: list[IPAddress] | None) -> str | None:
    """``host:port:addr[,addr]`` pinning ``url``'s host to ``addresses`` (None: nothing to pin)."""
    if not addresses or not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parse_address(host) is not None:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    listed = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in addresses)
    return f"{host}:{port}:{listed}"


async def checked_remote(
    url: str, policy: OutboundPolicy, command: str, time_limit: float
) -> list[IPAddress]:
    """The addresses git may connect to for ``url``; refused or unresolvable ones fail here.

    ``OutboundRefused`` (a 422 naming the policy) when the policy refuses it; a failure to
    resolve reads like any unreachable server.
    """
    try:
        return await policy.check_url(url)
    except OSError:
        raise unreachable(command, time_limit) from None


def unreachable(command: str, time_limit: float) -> GitCommandFailed:
    # One message for refused, timed out, unresolved and too slow: which ports of an address
    # answer stays unknown.
    return GitCommandFailed(
        f"git {command} failed: cannot reach the Git server: the connection failed or it did "
        f"not answer within {time_limit:g} s",
        code="git_unreachable",
    )


async def run_remote_git(
    *args: str,
    url: str,
    credentials: GitCredentials | None,
    policy: OutboundPolicy,
    cwd: Path | None = None,
    time_limit: float = GIT_TIMEOUT_SECONDS,
) -> str:
    """``run_git`` for a command that talks to ``url``: the address checked and pinned first,
    and a connection that failed or timed out reported in one way."""
    addresses = await checked_remote(url, policy, args[0], time_limit)
    try:
        return await run_git(
            *args,
            cwd=cwd,
            env=git_environment(url, credentials, addresses=addresses),
            credentials=credentials,
            time_limit=time_limit,
        )
    except GitCommandFailed as exc:
        lowered = exc.stderr.lower()
        if exc.code == "git_timeout" or any(marker in lowered for marker in UNREACHABLE_MARKERS):
            raise unreachable(args[0], time_limit) from exc
        raise


def scrub(text: str, credentials: GitCredentials | None) -> str:
    if credentials is None:
        return text
    return Masker((credentials.token, credentials.header()), min_length=1)(text)


async def _run(
    args: tuple[str, ...], *, cwd: Path | None, env: dict[str, str], time_limit: float
) -> tuple[int, bytes, bytes]:
    """Run git; return (exit status, stdout, stderr). The process dies with us.

    On a time-out and when the awaiting task is cancelled, the process is killed and reaped,
    so an abandoned command never keeps running (or holding the cache lock) in the background.
    """
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Its own process group: killing it also kills the helpers git starts
        # (git-remote-https, ssh), which would otherwise keep the pipes open.
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), time_limit)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise GitCommandFailed(
                f"git {args[0]} did not finish within {time_limit:g} s", code="git_timeout"
            ) from None
        raise
    return process.returncode or 0, stdout, stderr


async def run_git(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    credentials: GitCredentials | None = None,
    time_limit: float = GIT_TIMEOUT_SECONDS,
) -> str:
    """Run ``git args...`` and return its stdout; raise :class:`GitCommandFailed` on failure."""
    status, stdout, stderr = await _run(
        args,
        cwd=cwd,
        env=env if env is not None else git_environment("", None),
        time_limit=time_limit,
    )
    if status != 0:
        message = scrub(stderr.decode(errors="replace").strip(), credentials)
        last_line = message.splitlines()[-1] if message else f"exit status {status}"
        raise GitCommandFailed(f"git {args[0]} failed: {last_line}", stderr=message)
    return stdout.decode(errors="replace")


async def run_git_bytes(*args: str, cwd: Path, time_limit: float = GIT_TIMEOUT_SECONDS) -> bytes:
    """Like :func:`run_git` for local commands whose output is binary (``cat-file``)."""
    status, stdout, stderr = await _run(
        args, cwd=cwd, env=git_environment("", None), time_limit=time_limit
    )
    if status != 0:
        raise GitCommandFailed(
            f"git {args[0]} failed: {stderr.decode(errors='replace').strip()}",
            stderr=stderr.decode(errors="replace"),
        )
    return stdout


@contextlib.asynccontextmanager
async def file_lock(path: Path, *, time_limit: float) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``path``; works across processes and across tasks of one process.

    Each holder opens its own descriptor, and ``flock`` locks belong to the open file, so two
    coroutines of the same process exclude each other as two processes do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + time_limit
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ServiceUnavailable(
                        "the repository cache is busy; try again shortly", code="clone_busy"
                    ) from None
                await asyncio.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


async def ensure_cache_repo(cache: Path) -> None:
    """Create the bare cache repository; automatic gc is off so fetched commits stay."""
    if (cache / "HEAD").exists():
        return
    os.makedirs(cache, exist_ok=True)
    await run_git("init", "--bare", "--quiet", str(cache))
    await run_git("config", "gc.auto", "0", cwd=cache)


async def fetch_commit(
    cache: Path,
    url: str,
    ref: str | None,
    credentials: GitCredentials | None,
    *,
    time_limit: float = GIT_TIMEOUT_SECONDS,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> str:
    """Fetch ``ref`` (branch, tag, SHA; the remote HEAD when None) into ``cache``; return its SHA.

    Shallow (depth 1) whenever the server can serve the ref directly; an abbreviated SHA needs
    the history, so it falls back to fetching every branch and tag.
    The caller holds the cache's lock.
    """
    url = strip_userinfo(url)
    target = ref or "HEAD"
    if target.startswith("-"):
        raise NotFound(f"ref '{target}' not found in the repository", code="ref_not_found")
    try:
        await run_remote_git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth=1",
            "--",
            url,
            target,
            url=url,
            cwd=cache,
            policy=policy,
            credentials=credentials,
            time_limit=time_limit,
        )
        return (await run_git("rev-parse", "--verify", "FETCH_HEAD^{commit}", cwd=cache)).strip()
    except GitCommandFailed as exc:
        if exc.is_auth_failure:
            raise GitCommandFailed(
                "the Git server refused the credentials", stderr=exc.stderr, code="git_auth_failed"
            ) from exc
        if exc.code in {"git_timeout", "git_unreachable"}:
            raise
        if not (ref and HEX_RE.match(ref)):
            if _is_missing_ref(exc.stderr):
                raise NotFound(
                    f"ref '{target}' not found in the repository", code="ref_not_found"
                ) from exc
            raise
    return await _fetch_all_and_resolve(cache, url, ref, policy, credentials, time_limit)


def _is_missing_ref(stderr: str) -> bool:
    lowered = stderr.lower()
    return "couldn't find remote ref" in lowered or "not our ref" in lowered


async def _fetch_all_and_resolve(
    cache: Path,
    url: str,
    ref: str,
    policy: OutboundPolicy,
    credentials: GitCredentials | None,
    time_limit: float,
) -> str:
    shallow = (cache / "shallow").exists()
    await run_remote_git(
        "fetch",
        "--quiet",
        "--tags",
        *(["--unshallow"] if shallow else []),
        "--",
        url,
        "+refs/heads/*:refs/remotes/origin/*",
        url=url,
        cwd=cache,
        policy=policy,
        credentials=credentials,
        time_limit=time_limit,
    )
    try:
        return (await run_git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=cache)).strip()
    except GitCommandFailed as exc:
        raise NotFound(f"ref '{ref}' not found in the repository", code="ref_not_found") from exc
