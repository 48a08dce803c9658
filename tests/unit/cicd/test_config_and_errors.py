"""Provider settings sealed and shown safely."""

from __future__ import annotations

import pytest

from shipyard.cicd.connection import build_config, public_config
from shipyard.crypto import Keyring, generate_key, is_sealed, unseal
from shipyard.errors import ValidationFailed

KEYRING = Keyring([generate_key()])


def test_credentials_are_sealed_and_shown_as_flags() -> None:
    stored = build_config(
        "circleci", {"project_slugs": ["gh/a/b"], "token": "secret-1"}, keyring=KEYRING
    )
    assert is_sealed(stored["token"]) and unseal(stored["token"], KEYRING) == "secret-1"
    assert public_config("circleci", stored) == {"project_slugs": ["gh/a/b"], "has_token": True}


def test_changes_merge_over_the_stored_config() -> None:
    stored = build_config(
        "github_actions", {"repository": "a/b", "token": "t1", "ref": "main"}, keyring=KEYRING
    )
    kept = build_config("github_actions", {"ref": None}, stored, keyring=KEYRING)
    assert kept["token"] == stored["token"] and "ref" not in kept
    switched = build_config(
        "github_actions",
        {"token": None, "git_provider_id": "6f1d3a8e-8f63-4c8e-9a55-3b7f0d0d7b11"},
        stored,
        keyring=KEYRING,
    )
    assert "token" not in switched
    assert public_config("github_actions", switched)["has_token"] is False
    with pytest.raises(ValidationFailed) as caught:
        build_config(
            "github_actions",
            {"git_provider_id": "6f1d3a8e-8f63-4c8e-9a55-3b7f0d0d7b11"},
            stored,
            keyring=KEYRING,
        )
    assert caught.value.field == "config"
    assert "exactly one of token or git_provider_id" in caught.value.message
