"""CSRF protection for the web UI: a double-submit token bound to the browser session.

The token lives in an HttpOnly cookie and is echoed by every unsafe request, in a form field or
(for HTMX) a header. It is an HMAC over a nonce and the session it was issued for, so a token
planted for one session (or before log-in) is worthless in another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from fastapi import Request

from shipyard.crypto import Keyring
from shipyard.errors import PermissionDenied

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_COOKIE = "shipyard_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfRejected(PermissionDenied):
    code = "csrf_failed"


def _key(keyring: Keyring) -> bytes:
    # Derived from the newest secret key, so rotating keys also retires old CSRF tokens.
    return hashlib.sha256(b"shipyard-web-csrf|" + keyring.keys[0].encode()).digest()


def session_binding(session_token: str | None) -> str:
    if not session_token:
        return "anonymous"
    return hashlib.sha256(session_token.encode()).hexdigest()


def _mac(key: bytes, nonce: str, binding: str) -> str:
    digest = hmac.new(key, f"{nonce}|{binding}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_token(keyring: Keyring, binding: str) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_mac(_key(keyring), nonce, binding)}"


def is_bound(keyring: Keyring, token: str | None, binding: str) -> bool:
    """Whether ``token`` was issued by this server for the session ``binding``."""
    if not token or "." not in token:
        return False
    nonce, _, mac = token.partition(".")
    return hmac.compare_digest(mac, _mac(_key(keyring), nonce, binding))


async def submitted_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(FORM_TYPES):
        # Starlette caches the parsed form, so the endpoint can still read it.
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def csrf_protect(request: Request) -> None:
    """Router dependency: reject unsafe requests whose token is missing, wrong or foreign."""
    if request.method in SAFE_METHODS:
        return
    keyring: Keyring = request.app.state.runtime.keyring
    cookie = request.cookies.get(CSRF_COOKIE)
    binding = session_binding(getattr(request.state, "session_token", None))
    sent = await submitted_token(request)
    if not sent or not cookie or not hmac.compare_digest(sent, cookie):
        raise CsrfRejected(
            "this form has expired or came from another site; reload the page and try again"
        )
    if not is_bound(keyring, cookie, binding):
        raise CsrfRejected("your session changed since this page was loaded; reload the page")
