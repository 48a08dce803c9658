"""Checking an inbound delivery's signature, as each provider documents it.

Every comparison is :func:`hmac.compare_digest` over bytes of the same kind (hex digests, or the
secret itself), so the time a wrong signature takes does not say how much of it was right.

- **GitHub** (docs.github.com, "Validating webhook deliveries"): ``X-Hub-Signature-256:
  sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>``; the event is
  ``X-GitHub-Event`` and the delivery's id ``X-GitHub-Delivery`` (a GUID that a redelivery
  repeats).
- **GitLab** (docs.gitlab.com, "Webhooks"): ``X-Gitlab-Token`` carries the secret token itself;
  the event is ``X-Gitlab-Event`` (``Push Hook``, ``Tag Push Hook``, ``Release Hook``). The
  delivery id is ``Idempotency-Key`` (recent GitLab: "consistent across webhook retries"),
  else ``X-Gitlab-Event-UUID`` (one per event). ``X-Gitlab-Webhook-UUID`` is *not* used: GitLab
  draws it afresh for every request, so a retry would never look like a duplicate.
- **Gitea** (docs.gitea.com, "Webhooks"): ``X-Gitea-Signature: <hex HMAC-SHA256 of the body>``
  (no prefix), ``X-Gitea-Event``, ``X-Gitea-Delivery`` (a UUID).
- **generic**: per hook ``auth``: ``hmac`` = ``X-Shipyard-Signature: sha256=<hex>`` as GitHub's,
  or ``bearer`` = ``Authorization: Bearer <secret>``; the event is ``X-Shipyard-Event``
  (default ``push``) and the delivery id ``X-Shipyard-Delivery`` (absent: no deduplication).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

# Longest delivery id and event name kept (ids are GUIDs; anything longer is not a provider's).
MAX_DELIVERY_ID = 200
MAX_EVENT = 100


class SignatureRefused(Exception):
    """The delivery is unsigned or wrongly signed; ``reason`` says which, never the secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Signed:
    """What the verified headers say: the provider's event name and the delivery's id."""

    event: str
    delivery_id: str | None


def hmac_hex(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` keyed by ``secret`` (what GitHub, Gitea and generic send)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _prefixed_hmac(header: str | None, secret: str, body: bytes, *, name: str) -> None:
    if not header:
        raise SignatureRefused(f"unsigned: no {name} header")
    scheme, _, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        raise SignatureRefused(f"{name} is not 'sha256=<hex>'")
    if not _same(digest.strip().lower(), hmac_hex(secret, body)):
        raise SignatureRefused(f"wrong signature in {name}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name.lower())
    if value is None:
        return None
    value = value.strip()
    return value or None


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    # Printable ASCII only: the id is stored and shown; a provider's GUID always is.
    cleaned = "".join(ch for ch in value if 32 <= ord(ch) < 127).strip()
    return cleaned[:limit] or None


def verify(
    *, provider: str, auth: str, secret: str, headers: Mapping[str, str], body: bytes
) -> Signed:
    """Check the signature of a delivery to a hook of ``provider``; raise SignatureRefused.

    ``headers`` are lower-case names (Starlette's ``request.headers`` are looked up that way).
    """
    if provider == "github":
        _prefixed_hmac(
            _header(headers, "x-hub-signature-256"), secret, body, name="X-Hub-Signature-256"
        )
        event = _header(headers, "x-github-event")
        delivery = _header(headers, "x-github-delivery")
    elif provider == "gitlab":
        token = _header(headers, "x-gitlab-token")
        if token is None:
            raise SignatureRefused("unsigned: no X-Gitlab-Token header")
        if not _same(token, secret):
            raise SignatureRefused("wrong token in X-Gitlab-Token")
        event = _header(headers, "x-gitlab-event")
        delivery = _header(headers, "idempotency-key") or _header(headers, "x-gitlab-event-uuid")
    elif provider == "gitea":
        signature = _header(headers, "x-gitea-signature")
        if signature is None:
            raise SignatureRefused("unsigned: no X-Gitea-Signature header")
        if not _same(signature.lower(), hmac_hex(secret, body)):
            raise SignatureRefused("wrong signature in X-Gitea-Signature")
        event = _header(headers, "x-gitea-event")
        delivery = _header(headers, "x-gitea-delivery")
    elif provider == "generic":
        if auth == "bearer":
            scheme, _, token = (_header(headers, "authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise SignatureRefused("unsigned: no 'Authorization: Bearer' header")
            if not _same(token.strip(), secret):
                raise SignatureRefused("wrong bearer token")
        else:
            _prefixed_hmac(
                _header(headers, "x-shipyard-signature"), secret, body, name="X-Shipyard-Signature"
            )
        event = _header(headers, "x-shipyard-event") or "push"
        delivery = _header(headers, "x-shipyard-delivery")
    else:  # pragma: no cover - the table's CHECK allows only the four
        raise SignatureRefused(f"unknown provider {provider!r}")
    # An authentic delivery without an event header is not refused: it is filtered (logged).
    return Signed(
        event=_clip(event, MAX_EVENT) or "unknown", delivery_id=_clip(delivery, MAX_DELIVERY_ID)
    )
