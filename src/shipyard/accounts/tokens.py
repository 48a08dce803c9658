"""Bearer tokens: random secrets handed out once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "shy_"
# Invitation links carry their own prefix: never a bearer token, and easy for secret scanners.
INVITATION_PREFIX = "shyinv_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_invitation_token() -> str:
    return INVITATION_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of a token, enough to tell tokens apart in a list."""
    return token[: len(TOKEN_PREFIX) + 6]
