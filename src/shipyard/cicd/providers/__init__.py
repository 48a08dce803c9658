"""CI/CD provider clients (Jenkins, GitHub Actions, CircleCI) behind ``base.CicdClient``."""

from __future__ import annotations

from typing import Any

from shipyard.cicd.providers.circleci import DEFAULT_APP_URL as CIRCLECI_APP_URL
from shipyard.cicd.providers.github_actions import DEFAULT_API_URL as GITHUB_API_URL
from shipyard.cicd.providers.github_actions import web_origin


def link_base_for(provider_type: str, url: str | None, config: dict[str, Any]) -> str | None:
    """Where a provider's build pages live (what its clients' ``link_base`` is), from its row.

    Jenkins: its own address. GitHub Actions: the repository on the web origin of its API
    (github.com, or the Enterprise Server host). CircleCI: its web app (app.circleci.com or the
    configured ``app_url``). None when the row does not say (the link is then not shown).
    """
    if provider_type == "jenkins":
        return url.rstrip("/") + "/" if url else None
    if provider_type == "github_actions":
        repository = str(config.get("repository") or "").strip("/")
        return f"{web_origin(url or GITHUB_API_URL)}/{repository}/" if repository else None
    if provider_type == "circleci":
        return str(config.get("app_url") or CIRCLECI_APP_URL).rstrip("/") + "/"
    return None
