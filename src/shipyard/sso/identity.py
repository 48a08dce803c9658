"""What an identity provider says about the person signing in, and why a sign-in is refused."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.errors import PermissionDenied, Unauthorized


@dataclass(frozen=True)
class ExternalIdentity:
    """A person as the provider vouched for them: OIDC claims or an LDAP entry, normalised."""

    # OIDC: ``sub``; LDAP: the entry's DN, lower-cased.
    subject: str
    email: str
    name: str | None
    # Group names as the provider reports them (claim values; LDAP group cn and DN both).
    groups: tuple[str, ...]
    # Whether the provider vouches for the e-mail: a first sign-in is linked to an existing
    # member with that e-mail only then. A directory does; OIDC says so in ``email_verified``.
    email_verified: bool = True


class SsoRefused(PermissionDenied):
    """The provider vouched for the person, but Shipyard will not sign them in (403): their
    groups map to no role, their e-mail belongs to another team, the account is disabled.
    The message is shown on the refusal page and must say why in the user's terms."""

    code = "sso_refused"


class SsoFailed(Unauthorized):
    """The sign-in itself failed (401): a bad ID token, a wrong nonce or state, a wrong LDAP
    password, a provider that refused the code. The message is safe to show (no secrets)."""

    code = "sso_failed"
