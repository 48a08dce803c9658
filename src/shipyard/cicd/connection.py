"""Provider settings: validation, encrypted credentials, the public view, and opening a client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.cicd.models import CicdProvider
from shipyard.cicd.providers.base import CicdClient
from shipyard.cicd.providers.circleci import DEFAULT_API_URL as CIRCLECI_API_URL
from shipyard.cicd.providers.circleci import CircleCIClient
from shipyard.cicd.providers.github_actions import DEFAULT_API_URL as GITHUB_API_URL
from shipyard.cicd.providers.github_actions import GithubActionsClient
from shipyard.cicd.providers.jenkins import JenkinsClient
from shipyard.cicd.schemas import CONFIG_MODELS, SECRET_FIELDS, StrictModel
from shipyard.config import Settings
from shipyard.crypto import Keyring, SecretDecryptionError, is_sealed, seal, unseal
from shipyard.db import session_keyring
from shipyard.errors import Conflict, ValidationFailed
from shipyard.git.models import GitProvider
from shipyard.git.providers.github import GITHUB_API

DEFAULT_URLS = {"github_actions": GITHUB_API_URL, "circleci": CIRCLECI_API_URL}
# Stands in for a stored credential while a changed config is re-validated.
_KEPT = "\x00kept"


def effective_url(provider_type: str, url: str | None) -> str:
    if url:
        return url
    default = DEFAULT_URLS.get(provider_type)
    if default is None:
        raise ValidationFailed("the Jenkins base URL is required", field="url")
    return default


def _validated(provider_type: str, config: dict[str, Any]) -> StrictModel:
    try:
        return CONFIG_MODELS[provider_type].model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error.get("loc", ()))
        field = f"config.{loc}" if loc else "config"
        raise ValidationFailed(
            f"{field}: {error.get('msg', 'invalid value')}", field=field
        ) from exc


def build_config(
    provider_type: str,
    changes: dict[str, Any],
    stored: dict[str, Any] | None = None,
    *,
    keyring: Keyring,
) -> dict[str, Any]:
    """Validate ``changes`` (merged over ``stored``) and return the config to store, sealed."""
    stored = stored or {}
    secrets = SECRET_FIELDS[provider_type]
    merged: dict[str, Any] = {
        key: (_KEPT if key in secrets else value) for key, value in stored.items()
    }
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    model = _validated(provider_type, merged)
    result: dict[str, Any] = {}
    for key, value in model.model_dump(mode="json", exclude_none=True).items():
        if key in secrets:
            result[key] = stored[key] if value == _KEPT else seal(str(value), keyring)
        else:
            result[key] = value
    return result


def public_config(provider_type: str, stored: dict[str, Any]) -> dict[str, Any]:
    """The config as the API shows it: secrets replaced by ``has_<name>`` flags."""
    secrets = SECRET_FIELDS.get(provider_type, ())
    view = {
        key: value for key, value in stored.items() if key not in secrets and not is_sealed(value)
    }
    for key in secrets:
        view[f"has_{key}"] = key in stored
    return view


def _not_configured(message: str) -> Conflict:
    """The provider's stored settings cannot be used (nothing was asked of the provider yet)."""
    return Conflict(message, code="provider_not_configured")


def _secret(provider: CicdProvider, key: str, keyring: Keyring) -> str:
    value = provider.config.get(key)
    if not isinstance(value, dict) or not is_sealed(value):
        raise _not_configured(f"provider '{provider.name}' has no {key} configured")
    try:
        return unseal(value, keyring)
    except SecretDecryptionError as exc:
        raise _not_configured(
            f"the {key} of provider '{provider.name}' cannot be decrypted with the current keys"
        ) from exc


def same_address(first: str, second: str) -> bool:
    """Two API base URLs name the same place (scheme and host case, trailing slash aside)."""

    def key(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url.strip())
        return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")

    return key(first) == key(second)


def borrowed_token_address(git_provider: GitProvider) -> str:
    """The only API address a GitHub git provider's token may be sent to by GitHub Actions."""
    server = (git_provider.server_url or "").rstrip("/")
    return f"{server}/api/v3" if server else GITHUB_API


async def _github_token(session: AsyncSession, provider: CicdProvider) -> str:
    if "token" in provider.config:
        return _secret(provider, "token", session_keyring(session))
    git_provider_id = UUID(str(provider.config.get("git_provider_id")))
    git_provider = await session.scalar(
        select(GitProvider).where(
            GitProvider.id == git_provider_id, GitProvider.tenant_id == provider.tenant_id
        )
    )
    if git_provider is None:
        raise _not_configured(
            f"the GitHub provider linked to '{provider.name}' was deleted; "
            "link another or set a token"
        )
    if not git_provider.access_token:
        raise _not_configured(
            f"the GitHub provider linked to '{provider.name}' has no access token"
        )
    # A borrowed token goes to its own provider's API only, even if either address changed.
    address = borrowed_token_address(git_provider)
    if not same_address(effective_url(provider.type, provider.url), address):
        raise _not_configured(
            f"'{provider.name}' borrows the token of a GitHub provider whose API is {address}; "
            "the token is never sent elsewhere: set the URL to that address or give a token"
        )
    return git_provider.access_token


async def open_client(
    session: AsyncSession, provider: CicdProvider, *, http: httpx.AsyncClient, settings: Settings
) -> CicdClient:
    """A client for ``provider`` with its decrypted credentials."""
    config = provider.config
    retry = settings.cicd_retry_seconds
    timeout = settings.http_timeout
    url = effective_url(provider.type, provider.url)
    if provider.type == "jenkins":
        return JenkinsClient(
            http,
            base_url=url,
            username=str(config.get("username", "")),
            api_token=_secret(provider, "api_token", session_keyring(session)),
            retry_seconds=retry,
            timeout=timeout,
        )
    if provider.type == "github_actions":
        return GithubActionsClient(
            http,
            api_url=url,
            repository=str(config.get("repository", "")),
            token=await _github_token(session, provider),
            ref=config.get("ref"),
            retry_seconds=retry,
            timeout=timeout,
        )
    return CircleCIClient(
        http,
        api_url=url,
        app_url=config.get("app_url"),
        project_slugs=list(config.get("project_slugs") or []),
        token=_secret(provider, "token", session_keyring(session)),
        branch=config.get("branch"),
        retry_seconds=retry,
        definition_ids={
            str(slug): str(value) for slug, value in (config.get("definition_ids") or {}).items()
        },
        timeout=timeout,
    )
