"""The real OpenID Connect provider of the tests: panva's ``oidc-provider`` (tests/idp/oidc) run
with the machine's Node.js on a loopback port, plus a sign-in driver that fills its log-in page
with httpx (no browser), for the tests that need real tokens.

The server reads its clients and accounts from a JSON file this module writes; accounts are read
again at every log-in, so :meth:`OidcProvider.set_account` changes a person's groups between two
log-ins. :meth:`OidcProvider.rotate_keys` restarts it with new signing keys on the same port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

IDP_DIR = Path(__file__).resolve().parents[1] / "idp" / "oidc"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0
NODE = shutil.which("node") or "node"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class OidcClient:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    token_endpoint_auth_method: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
        }
        if self.token_endpoint_auth_method:
            data["token_endpoint_auth_method"] = self.token_endpoint_auth_method
        return data


@dataclass
class OidcAccount:
    email: str
    name: str
    groups: list[str] = field(default_factory=list)
    email_verified: bool = True
    # Keep email, name and groups out of the ID token: only userinfo has them.
    userinfo_only: bool = False
    # Entra ID's group overage: no groups claim, a Microsoft Graph claim source instead.
    group_overage: bool = False


@dataclass
class OidcProvider:
    """One running oidc-provider; ``issuer`` is ``http://127.0.0.1:<port>``."""

    port: int
    clients: list[OidcClient]
    accounts: dict[str, OidcAccount]
    workdir: Path
    key_ids: list[str] = field(default_factory=lambda: ["key-1"])
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def write_config(self) -> None:
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "key_ids": self.key_ids,
            "clients": [client.as_json() for client in self.clients],
            "accounts": {
                login: {
                    "email": account.email,
                    "name": account.name,
                    "groups": account.groups,
                    "email_verified": account.email_verified,
                    "userinfo_only": account.userinfo_only,
                    "group_overage": account.group_overage,
                }
                for login, account in self.accounts.items()
            },
        }
        # Written whole then renamed: the server may read it at any moment.
        partial = self.config_path.with_suffix(".partial")
        partial.write_text(json.dumps(config))
        os.replace(partial, self.config_path)

    def set_account(self, login: str, account: OidcAccount) -> None:
        """Add or change a person; the next log-in sees it."""
        self.accounts[login] = account
        self.write_config()

    def start(self) -> None:
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            pytest.fail(
                "oidc-provider is not installed: run `make pytest` (or `npm ci` in tests/idp/oidc)"
            )
        self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [NODE, str(IDP_DIR / "server.mjs"), str(self.config_path)],
            cwd=IDP_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        url = f"{self.issuer}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"oidc-provider exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"oidc-provider did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def rotate_keys(self, *key_ids: str) -> None:
        """Restart with fresh keys under ``key_ids`` (the first signs), same issuer and port."""
        self.stop()
        self.key_ids = list(key_ids)
        self.start()


def start_provider(*, clients: list[OidcClient], accounts: dict[str, OidcAccount]) -> OidcProvider:
    provider = OidcProvider(
        port=free_port(),
        clients=clients,
        accounts=accounts,
        workdir=Path(tempfile.mkdtemp(prefix="shipyard-oidc-")),
    )
    provider.start()
    return provider


def stop_provider(provider: OidcProvider) -> None:
    provider.stop()
    shutil.rmtree(provider.workdir, ignore_errors=True)


async def sign_in_at_provider(
    authorization_url: str,
    *,
    login: str,
    redirect_uri: str,
    password: str = "any",
    abort: bool = False,
) -> str:
    """Follow ``authorization_url`` through the provider's log-in page as ``login``; the URL
    the provider sends the browser back to (``redirect_uri?code=...&state=...``). ``abort``
    cancels at the log-in page instead (the provider answers ``error=access_denied``)."""
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as browser:
        url = authorization_url
        for _ in range(12):
            if url.startswith(redirect_uri):
                return url
            response = await browser.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            assert response.status_code == 200, (response.status_code, _visible(response.text))
            # The devInteractions log-in form: POST login + password to the interaction URL.
            assert 'name="login"' in response.text, _visible(response.text)
            if abort:
                cancel = await browser.get(f"{url}/abort")
                assert cancel.is_redirect, (cancel.status_code, _visible(cancel.text))
                url = urljoin(url, cancel.headers["location"])
                continue
            submit = await browser.post(
                url, data={"prompt": "login", "login": login, "password": password}
            )
            assert submit.is_redirect, (submit.status_code, submit.text[:500])
            url = urljoin(url, submit.headers["location"])
        raise AssertionError(f"the provider never redirected back to {redirect_uri}")


def _visible(html: str) -> str:
    """The words of an error page (no markup, no style), to say why in an assertion."""
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", html, flags=re.S)
    return " ".join(text.split())[:500]


def callback_params(callback_url: str) -> dict[str, str]:
    """``code``, ``state`` (and ``iss``, ``error``) of the provider's redirect back."""
    query = parse_qs(urlsplit(callback_url).query)
    return {name: values[0] for name, values in query.items()}
