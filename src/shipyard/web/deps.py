"""Dependencies and helpers shared by the web routes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from shipyard.accounts.principal import Principal
from shipyard.accounts.service import authenticate
from shipyard.deps import DatabaseDep
from shipyard.errors import Unauthorized


async def optional_principal(request: Request, db: DatabaseDep) -> Principal | None:
    """The logged-in user, or None (for pages that also serve visitors: log-in, sign-up)."""
    token = getattr(request.state, "session_token", None)
    if not token:
        return None
    try:
        principal = await authenticate(db=db, token=token)
    except Unauthorized:
        return None
    request.state.principal = principal
    return principal


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site paths: ``next`` must never send a user to another site after log-in."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target
