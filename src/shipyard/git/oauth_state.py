"""The OAuth ``state``: signed with a key derived from the secret keyring, expiring, single use."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shipyard.crypto import Keyring
from shipyard.errors import ValidationFailed

STATE_CONTEXT = b"shipyard/git-oauth-state/v1"
MAX_STATE_LENGTH = 4096


@dataclass(frozen=True)
class OAuthState:
    nonce: str
    tenant_id: UUID
    user_id: UUID
    provider_type: str
    server_url: str | None
    provider_id: UUID | None
    redirect_to: str | None
    expires_at: float


def _key(secret: str) -> bytes:
    # A key of its own for this purpose: the encryption keys themselves never sign anything.
    return hmac.new(secret.encode(), STATE_CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_state(
    keyring: Keyring,
    *,
    tenant_id: UUID,
    user_id: UUID,
    provider_type: str,
    server_url: str | None,
    provider_id: UUID | None,
    redirect_to: str | None,
    ttl_seconds: int,
) -> str:
    payload = {
        "n": secrets.token_urlsafe(18),
        "t": str(tenant_id),
        "u": str(user_id),
        "p": provider_type,
        "s": server_url,
        "i": str(provider_id) if provider_id else None,
        "r": redirect_to,
        "x": int(time.time()) + ttl_seconds,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(_key(keyring.keys[0]), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def verify_state(keyring: Keyring, state: str, *, provider_type: str) -> OAuthState:
    """The state's contents, once its signature, expiry and provider type check out."""
    if not state or len(state) > MAX_STATE_LENGTH or state.count(".") != 1:
        raise ValidationFailed("the OAuth state is malformed", field="state")
    body, signature = state.split(".")
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("the OAuth state is malformed", field="state") from exc
    # Any key of the keyring: a state issued just before a key rotation still verifies.
    if not any(
        hmac.compare_digest(given, hmac.new(_key(key), body.encode(), hashlib.sha256).digest())
        for key in keyring.keys
    ):
        raise ValidationFailed("the OAuth state signature is not valid", field="state")
    try:
        payload: dict[str, Any] = json.loads(_unb64(body))
        parsed = OAuthState(
            nonce=str(payload["n"]),
            tenant_id=UUID(payload["t"]),
            user_id=UUID(payload["u"]),
            provider_type=str(payload["p"]),
            server_url=payload.get("s"),
            provider_id=UUID(payload["i"]) if payload.get("i") else None,
            redirect_to=payload.get("r"),
            expires_at=float(payload["x"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValidationFailed("the OAuth state is malformed", field="state") from exc
    if parsed.expires_at < time.time():
        raise ValidationFailed("the OAuth state has expired; start again", field="state")
    if parsed.provider_type != provider_type:
        raise ValidationFailed(
            f"the OAuth state was issued for {parsed.provider_type}, not {provider_type}",
            field="state",
        )
    return parsed
