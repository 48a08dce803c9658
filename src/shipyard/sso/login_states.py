"""OpenID Connect sign-ins under way (``sso_login_states``): saved when the browser leaves for
the identity provider, taken (deleted) when it comes back. Database only.

Only hashes of the ``state`` parameter and of the browser-binding cookie are stored, and the
PKCE verifier is encrypted: a copy of the table lets nobody finish someone's sign-in. Both
functions run in a system session: the callback knows no tenant until the state is found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.sso.models import SsoLoginState

# The whole round trip (the IdP's log-in page, a second factor) must fit in this.
STATE_LIFETIME = timedelta(minutes=10)


def digest(value: str) -> str:
    """The SHA-256 of a state or cookie value, as stored (hex)."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class LoginState:
    """A sign-in under way, as the callback needs it."""

    provider_id: UUID
    tenant_id: UUID
    browser_hash: str
    nonce: str
    code_verifier: str
    next_path: str
    expires_at: datetime


async def save_login_state(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    provider_id: UUID,
    state: str,
    browser_secret: str,
    nonce: str,
    code_verifier: str,
    next_path: str,
    now: datetime,
) -> None:
    """Remember a sign-in under way for ten minutes; forget every expired one."""
    await session.execute(delete(SsoLoginState).where(SsoLoginState.expires_at <= now))
    session.add(
        SsoLoginState(
            tenant_id=tenant_id,
            provider_id=provider_id,
            state_hash=digest(state),
            browser_hash=digest(browser_secret),
            nonce=nonce,
            code_verifier=code_verifier,
            next_path=next_path,
            expires_at=now + STATE_LIFETIME,
        )
    )
    await session.flush()


async def take_login_state(
    *, session: AsyncSession, state: str, now: datetime
) -> LoginState | None:
    """The sign-in ``state`` names, deleted so it is used once; None when unknown or expired."""
    row = await session.scalar(
        delete(SsoLoginState)
        .where(SsoLoginState.state_hash == digest(state))
        .returning(SsoLoginState)
    )
    if row is None or row.expires_at <= now:
        return None
    return LoginState(
        provider_id=row.provider_id,
        tenant_id=row.tenant_id,
        browser_hash=row.browser_hash,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        next_path=row.next_path,
        expires_at=row.expires_at,
    )
