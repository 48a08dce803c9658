"""The OAuth state: signed, expiring, bound to a provider type, verifiable across key rotation."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest
from cryptography.fernet import Fernet

from shipyard.crypto import Keyring
from shipyard.errors import ValidationFailed
from shipyard.git.oauth_state import sign_state, verify_state

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def signed(keyring: Keyring, *, ttl: int = 600, provider_type: str = "gitlab") -> str:
    return sign_state(
        keyring,
        tenant_id=uuid4(),
        user_id=uuid4(),
        provider_type=provider_type,
        server_url="https://git.example.com",
        provider_id=None,
        redirect_to="/back",
        ttl_seconds=ttl,
    )


def test_round_trip_and_uniqueness() -> None:
    keyring = Keyring([OLD])
    state = signed(keyring)
    parsed = verify_state(keyring, state, provider_type="gitlab")
    assert parsed.server_url == "https://git.example.com"
    assert parsed.redirect_to == "/back"
    assert verify_state(keyring, signed(keyring), provider_type="gitlab").nonce != parsed.nonce


def test_a_state_signed_before_a_key_rotation_still_verifies() -> None:
    state = signed(Keyring([OLD]))
    assert verify_state(Keyring([NEW, OLD]), state, provider_type="gitlab")
    with pytest.raises(ValidationFailed, match="signature"):
        verify_state(Keyring([NEW]), state, provider_type="gitlab")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.replace(".", "x.", 1), "signature"),
        (lambda s: s + "A", "signature"),
        (lambda s: s.split(".")[0], "malformed"),
        (lambda s: "a.b.c", "malformed"),
        (lambda s: "", "malformed"),
    ],
)
def test_altered_states_are_refused(mutate: Callable[[str], str], message: str) -> None:
    keyring = Keyring([OLD])
    state = mutate(signed(keyring))
    with pytest.raises(ValidationFailed, match=message) as caught:
        verify_state(keyring, state, provider_type="gitlab")
    assert caught.value.field == "state"


def test_expired_and_cross_provider_states_are_refused() -> None:
    keyring = Keyring([OLD])
    with pytest.raises(ValidationFailed, match="expired"):
        verify_state(keyring, signed(keyring, ttl=-1), provider_type="gitlab")
    with pytest.raises(ValidationFailed, match="issued for github"):
        verify_state(keyring, signed(keyring, provider_type="github"), provider_type="gitlab")
