"""Provider addresses, server_url rules, and the git environment that carries credentials."""

from __future__ import annotations

import base64

import httpx
import pytest

from shipyard.config import Settings
from shipyard.errors import ValidationFailed
from shipyard.git.browse import TTLCache, is_binary
from shipyard.git.gitcmd import GitCredentials, git_environment, strip_userinfo
from shipyard.git.providers import normalise_server_url, provider_client, server_key


@pytest.mark.parametrize(
    ("kind", "server_url", "api_base", "authorize"),
    [
        ("github", None, "https://api.github.com", "https://github.com/login/oauth/authorize"),
        (
            "github",
            "https://ghe.example.com",
            "https://ghe.example.com/api/v3",
            "https://ghe.example.com/login/oauth/authorize",
        ),
        ("gitlab", None, "https://gitlab.com/api/v4", "https://gitlab.com/oauth/authorize"),
        (
            "gitlab",
            "https://example.com/gitlab",
            "https://example.com/gitlab/api/v4",
            "https://example.com/gitlab/oauth/authorize",
        ),
        (
            "gitea",
            "http://gitea.lan:3000",
            "http://gitea.lan:3000/api/v1",
            "http://gitea.lan:3000/login/oauth/authorize",
        ),
    ],
)
async def test_api_and_oauth_addresses(
    kind: str, server_url: str | None, api_base: str, authorize: str
) -> None:
    async with httpx.AsyncClient() as http:
        client = provider_client(kind, http=http, settings=Settings(), server_url=server_url)
        assert client.api_base == api_base
        assert client.authorize_endpoint == authorize


def test_server_url_normalisation() -> None:
    assert normalise_server_url("gitlab", " https://git.example.com/ ") == "https://git.example.com"
    assert normalise_server_url("github", "https://github.com") is None
    assert normalise_server_url("gitlab", "https://gitlab.com/") is None
    assert normalise_server_url("github", None) is None
    assert server_key("github", None) == "https://github.com"
    assert server_key("gitea", "https://g.example") == "https://g.example"
    with pytest.raises(ValidationFailed) as caught:
        normalise_server_url("gitea", None)
    assert caught.value.field == "server_url"


def test_credentials_ride_in_an_origin_scoped_header_in_the_environment() -> None:
    credentials = GitCredentials(token="s3cret-token", username="oauth2")
    env = git_environment("https://git.example.com:8443/group/repo.git", credentials)
    count = int(env["GIT_CONFIG_COUNT"])
    config = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(count)}
    header = config["http.https://git.example.com:8443/.extraHeader"]
    assert header == "Authorization: Basic " + base64.b64encode(b"oauth2:s3cret-token").decode()
    # No credential helper, prompt or user configuration can interfere or leak.
    assert config["credential.helper"] == ""
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert strip_userinfo("https://user:pw@host.example/x.git") == "https://host.example/x.git"
    assert "s3cret-token" not in strip_userinfo("https://s3cret-token@host.example/x.git")


def test_ttl_cache_expires_and_evicts_the_least_recently_used() -> None:
    now = [0.0]
    cache = TTLCache(10, max_entries=2, clock=lambda: now[0])
    cache.put(("a",), 1)
    cache.put(("b",), 2)
    assert cache.get(("a",)) == (True, 1)
    cache.put(("c",), 3)
    assert cache.get(("b",)) == (False, None)
    now[0] = 11
    assert cache.get(("a",)) == (False, None)
    off = TTLCache(0)
    off.put(("a",), 1)
    assert off.get(("a",)) == (False, None)


def test_binary_detection() -> None:
    assert is_binary(b"\x00\x01\x02")
    assert is_binary("é".encode("latin-1"))
    assert not is_binary("héllo\n".encode())
