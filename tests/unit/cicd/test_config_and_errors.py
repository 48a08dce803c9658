"""Provider settings sealed and shown safely; provider error bodies turned into reasons."""

from __future__ import annotations

import httpx
import pytest

from shipyard.cicd.connection import build_config, public_config
from shipyard.cicd.providers.http import mask, response_reason
from shipyard.crypto import is_sealed, unseal
from shipyard.errors import ValidationFailed


def test_credentials_are_sealed_and_shown_as_flags() -> None:
    stored = build_config("circleci", {"project_slugs": ["gh/a/b"], "token": "secret-1"})
    assert is_sealed(stored["token"]) and unseal(stored["token"]) == "secret-1"
    assert public_config("circleci", stored) == {"project_slugs": ["gh/a/b"], "has_token": True}


def test_changes_merge_over_the_stored_config() -> None:
    stored = build_config("github_actions", {"repository": "a/b", "token": "t1", "ref": "main"})
    kept = build_config("github_actions", {"ref": None}, stored)
    assert kept["token"] == stored["token"] and "ref" not in kept
    switched = build_config(
        "github_actions",
        {"token": None, "git_provider_id": "6f1d3a8e-8f63-4c8e-9a55-3b7f0d0d7b11"},
        stored,
    )
    assert "token" not in switched
    assert public_config("github_actions", switched)["has_token"] is False
    with pytest.raises(ValidationFailed) as caught:
        build_config(
            "github_actions", {"git_provider_id": "6f1d3a8e-8f63-4c8e-9a55-3b7f0d0d7b11"}, stored
        )
    assert caught.value.field == "config"
    assert "exactly one of token or git_provider_id" in caught.value.message


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://ci/x"), **kwargs)


def test_reasons_come_from_json_messages_or_page_text() -> None:
    assert response_reason(_response(401, json={"message": "Bad credentials"})) == "Bad credentials"
    page = "<html><head><title>Error</title><style>p{}</style></head><body><h2>No &amp; way</h2></body></html>"
    assert response_reason(_response(403, text=page)) == "No & way"
    assert response_reason(_response(500, text="")) == "Internal Server Error"
    assert (
        response_reason(_response(400, json={"message": "token abc123 bad"}), ("abc123",))
        == "token *** bad"
    )
    assert mask("a-b-a", ("a", "")) == "***-b-***"
