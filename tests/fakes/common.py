"""What the three Git provider fakes share: the forge's state, a threaded server, git-backed files.

A :class:`Forge` holds users, tokens (personal, OAuth with expiry and refresh), repositories and
injected faults. Each fake (``github``, ``gitlab``, ``gitea``) is a Starlette app over a forge,
served by uvicorn on a loopback port in a background thread. Repositories may be backed by a real
bare repository (``bare``) so branches, trees and files come from git itself.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.support import canary

LANGUAGES = ("Python", "Shell", "Go", "TypeScript", None)


@dataclass
class FakeUser:
    id: int
    login: str
    name: str
    email: str


@dataclass
class FakeRepo:
    id: int
    name: str
    owner: str
    owner_kind: str  # "User" or "Organization"
    description: str | None
    private: bool
    default_branch: str
    language: str | None
    bare: Path | None = None
    clone_url: str | None = None
    # Logins that see it; None: every user of the forge.
    members: set[str] | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class TokenInfo:
    login: str
    kind: str  # "pat" or "oauth"
    expires_at: float | None = None
    client_id: str | None = None
    scopes: str = ""


@dataclass
class Fault:
    """Answer the next ``count`` matching requests (after skipping ``after``) with this."""

    status: int
    body: Any
    headers: dict[str, str]
    path_contains: str
    count: int
    after: int = 0
    raw: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    authorization: str | None
    status: int = 0
    at: float = 0.0


class Forge:
    """The state behind one provider fake; every method is safe to call from the test thread."""

    def __init__(self, *, kind: str) -> None:
        self.kind = kind
        self.lock = threading.RLock()
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.repos: dict[int, FakeRepo] = {}
        self.oauth_clients: dict[str, str] = {}
        self.codes: dict[str, tuple[str, str, str]] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}
        self.faults: list[Fault] = []
        # Repository webhooks: repo id -> hook id -> the provider's hook object, plus the
        # secret it was given under "_secret" (never part of an answer).
        self.hooks: dict[int, dict[int, dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rate_limit = 5000
        self.rate_remaining: dict[str, int] = {}
        self.rate_reset = int(time.time()) + 3600
        self.rotate_refresh_tokens = kind == "gitlab"
        self.rate_header_prefix = {"github": "x-ratelimit-", "gitlab": "ratelimit-"}.get(kind, "")
        self.access_token_ttl = 3600
        self._ids = itertools.count(1000)
        # Bumped by every change to the repositories, so cached pages know when they are stale.
        self.version = 0

    # -- users and tokens -----------------------------------------------------------------
    def add_user(self, login: str, name: str | None = None) -> str:
        """Create a user and return a personal access token for it."""
        with self.lock:
            user = FakeUser(next(self._ids), login, name or login.title(), f"{login}@example.com")
            self.users[login] = user
            return self.issue_pat(login)

    def issue_pat(self, login: str) -> str:
        prefix = {"github": "ghp_", "gitlab": "glpat-", "gitea": ""}[self.kind]
        token = canary.remember(prefix + secrets.token_hex(20), f"{self.kind} access token")
        with self.lock:
            self.tokens[token] = TokenInfo(login=login, kind="pat")
        return token

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def expire(self, token: str) -> None:
        with self.lock:
            self.tokens[token].expires_at = time.time() - 1

    def user_for(self, token: str | None) -> FakeUser | None:
        if not token:
            return None
        with self.lock:
            info = self.tokens.get(token)
            if info is None or (info.expires_at is not None and info.expires_at < time.time()):
                return None
            return self.users.get(info.login)

    # -- OAuth ----------------------------------------------------------------------------
    def add_oauth_client(self) -> tuple[str, str]:
        client_id = f"{self.kind}-client-{secrets.token_hex(6)}"
        secret = canary.remember(secrets.token_hex(20), "OAuth client secret")
        with self.lock:
            self.oauth_clients[client_id] = secret
        return client_id, secret

    def grant_code(self, client_id: str, login: str, redirect_uri: str) -> str:
        code = secrets.token_hex(10)
        with self.lock:
            self.codes[code] = (client_id, login, redirect_uri)
        return code

    def issue_oauth(self, client_id: str, login: str) -> tuple[str, str]:
        access = {"github": "ghu_", "gitlab": "gloas-", "gitea": "gto_"}[
            self.kind
        ] + secrets.token_hex(20)
        refresh = {"github": "ghr_", "gitlab": "glrt-", "gitea": "gtr_"}[
            self.kind
        ] + secrets.token_hex(20)
        canary.remember(access, f"{self.kind} OAuth access token")
        canary.remember(refresh, f"{self.kind} OAuth refresh token")
        with self.lock:
            self.tokens[access] = TokenInfo(
                login=login,
                kind="oauth",
                expires_at=time.time() + self.access_token_ttl,
                client_id=client_id,
            )
            self.refresh_tokens[refresh] = (client_id, login)
        return access, refresh

    def token_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer to ``form`` (authorization_code or refresh_token)."""
        client_id = form.get("client_id", "")
        with self.lock:
            if self.oauth_clients.get(client_id) != form.get("client_secret"):
                return 401, {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed due to unknown client, "
                    "no client authentication included, or unsupported authentication method.",
                }
            grant = form.get("grant_type", "authorization_code")
            if grant == "authorization_code":
                entry = self.codes.pop(form.get("code", ""), None)
                if entry is None or entry[0] != client_id:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "The provided authorization grant is invalid, "
                        "expired, revoked, does not match the redirection URI used in the "
                        "authorization request, or was issued to another client.",
                    }
                if entry[2] != form.get("redirect_uri"):
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "The redirect_uri does not match.",
                    }
                login = entry[1]
            elif grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                entry2 = self.refresh_tokens.get(refresh)
                if entry2 is None or entry2[0] != client_id:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "The refresh token is invalid or was revoked.",
                    }
                if self.rotate_refresh_tokens:
                    del self.refresh_tokens[refresh]
                login = entry2[1]
            else:
                return 400, {"error": "unsupported_grant_type", "error_description": grant}
        access, new_refresh = self.issue_oauth(client_id, login)
        if grant == "refresh_token" and not self.rotate_refresh_tokens:
            with self.lock:
                del self.refresh_tokens[new_refresh]
            new_refresh = form["refresh_token"]
        return 200, {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
            "refresh_token": new_refresh,
            "scope": form.get("scope", ""),
            "created_at": int(time.time()),
        }

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    # -- repositories ---------------------------------------------------------------------
    def add_repo(
        self,
        name: str,
        *,
        owner: str,
        owner_kind: str = "User",
        private: bool = False,
        language: str | None = "Shell",
        description: str | None = None,
        bare: Path | None = None,
        clone_url: str | None = None,
        default_branch: str = "main",
        members: set[str] | None = None,
    ) -> FakeRepo:
        with self.lock:
            repo = FakeRepo(
                id=next(self._ids),
                name=name,
                owner=owner,
                owner_kind=owner_kind,
                description=description,
                private=private,
                default_branch=default_branch,
                language=language,
                bare=bare,
                clone_url=clone_url,
                members=members,
            )
            self.repos[repo.id] = repo
            self.version += 1
            return repo

    def add_many(self, count: int, *, owner: str, prefix: str = "repo") -> list[FakeRepo]:
        """``count`` repositories; every third private, owners alternating user and an org."""
        repos = []
        for index in range(count):
            org = index % 2 == 1
            repos.append(
                self.add_repo(
                    f"{prefix}-{index:05d}",
                    owner=f"{owner}-org" if org else owner,
                    owner_kind="Organization" if org else "User",
                    private=index % 3 == 0,
                    language=LANGUAGES[index % len(LANGUAGES)],
                    description=f"Repository number {index}",
                )
            )
        return repos

    def rename(self, repo_id: int, name: str) -> None:
        with self.lock:
            self.repos[repo_id].name = name
            self.repos[repo_id].updated_at = datetime.now(UTC) + timedelta(seconds=1)
            self.version += 1

    def delete(self, repo_id: int) -> None:
        with self.lock:
            del self.repos[repo_id]
            self.version += 1

    def visible(self, login: str) -> list[FakeRepo]:
        with self.lock:
            return sorted(
                (r for r in self.repos.values() if r.members is None or login in r.members),
                key=lambda repo: repo.id,
            )

    def add_hook(self, repo: FakeRepo, hook: dict[str, Any]) -> dict[str, Any]:
        """Store a hook of ``repo`` under a new id (set in ``hook["id"]``)."""
        with self.lock:
            hook["id"] = next(self._ids)
            self.hooks.setdefault(repo.id, {})[hook["id"]] = hook
            return hook

    def remove_hook(self, repo: FakeRepo, hook_id: int) -> bool:
        with self.lock:
            return self.hooks.get(repo.id, {}).pop(hook_id, None) is not None

    def repo_hooks(self, repo: FakeRepo) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.hooks.get(repo.id, {}).values())

    def find(self, owner: str, name: str) -> FakeRepo | None:
        with self.lock:
            for repo in self.repos.values():
                if repo.owner == owner and repo.name == name:
                    return repo
        return None

    # -- faults ---------------------------------------------------------------------------
    def fail(
        self,
        status: int,
        body: Any,
        *,
        path_contains: str = "",
        count: int = 1,
        after: int = 0,
        headers: dict[str, str] | None = None,
        raw: bool = False,
    ) -> None:
        """Answer matching requests with ``status``/``body`` (``raw``: body is sent as text)."""
        with self.lock:
            self.faults.append(
                Fault(status, body, headers or {}, path_contains, count, after, raw=raw)
            )

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains not in path or fault.count <= 0:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.count -= 1
                return fault
        return None

    def record(self, request: Request) -> Recorded:
        entry = Recorded(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            authorization=request.headers.get("authorization")
            or request.headers.get("private-token"),
            at=time.monotonic(),
        )
        with self.lock:
            self.requests.append(entry)
        return entry

    def rate_headers(self, token: str | None) -> dict[str, str]:
        with self.lock:
            key = token or "anonymous"
            remaining = self.rate_remaining.get(key, self.rate_limit)
            remaining = max(remaining - 1, 0)
            self.rate_remaining[key] = remaining
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(self.rate_reset),
            "x-ratelimit-used": str(self.rate_limit - remaining),
        }

    def exhaust_rate_limit(self, token: str, *, reset_in: float) -> None:
        """The next answer to ``token`` reports no requests left until ``reset_in`` seconds."""
        with self.lock:
            self.rate_remaining[token] = 1
            self.rate_reset = int(time.time() + reset_in)


def bearer(request: Request, *schemes: str) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in schemes and value.strip():
        return value.strip()
    return None


def page_slice(items: list[Any], page: int, per_page: int) -> list[Any]:
    start = (page - 1) * per_page
    return items[start : start + per_page]


def int_arg(request: Request, name: str, default: int, *, low: int = 1, high: int = 10**9) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        value = default
    return max(low, min(high, value))


def link_header(request: Request, page: int, last: int, *, page_param: str = "page") -> str:
    """A ``Link`` header with next/last/first/prev, absolute like GitHub's and Gitea's."""

    def url(number: int) -> str:
        return str(request.url.include_query_params(**{page_param: number}))

    links = []
    if page < last:
        links.append(f'<{url(page + 1)}>; rel="next"')
        links.append(f'<{url(last)}>; rel="last"')
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
        links.append(f'<{url(page - 1)}>; rel="prev"')
    return ", ".join(links)


def fault_response(fault: Fault) -> Response:
    if fault.raw:
        return Response(
            str(fault.body),
            status_code=fault.status,
            headers=fault.headers,
            media_type="text/plain",
        )
    return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
