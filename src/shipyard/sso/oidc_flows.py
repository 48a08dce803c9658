"""OpenID Connect sign-in, the two legs: leaving for the identity provider and coming back.

Flows: the provider is read and the state saved or taken in short system transactions; the
identity provider is called (discovery, the code exchange, the key set, userinfo) with no
transaction open; the end of the sign-in is :func:`shipyard.sso.service.provision`, or
:func:`shipyard.sso.service.record_failure` whose entry is committed before the failure is
raised.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn
from uuid import UUID

from shipyard.accounts.principal import RequestContext
from shipyard.accounts.service import OpenedSession
from shipyard.config import Settings
from shipyard.errors import NotFound, ValidationFailed
from shipyard.sso import oidc
from shipyard.sso import service as sso
from shipyard.sso.flows import sign_in
from shipyard.sso.identity import SsoFailed, SsoRefused
from shipyard.sso.login_states import digest, save_login_state, take_login_state

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

# The one redirect URL every OpenID Connect provider is registered with; ``state`` tells which
# provider (and tenant) a return belongs to.
CALLBACK_PATH = "/login/oidc/callback"
# OAuth error codes an identity provider may send back, shown by name; anything else is not
# echoed (a crafted link could put any text there).
KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "interaction_required",
        "login_required",
        "consent_required",
        "account_selection_required",
        "invalid_request",
        "invalid_scope",
        "unauthorized_client",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
        "request_not_supported",
    }
)


def redirect_uri(settings: Settings) -> str:
    """``{SHIPYARD_BASE_URL}/login/oidc/callback``: what each provider must be registered with."""
    return settings.base_url.rstrip("/") + CALLBACK_PATH


def _config(provider: sso.LoginProvider) -> oidc.OidcConfig:
    if provider.kind != "oidc":
        raise NotFound("this sign-in provider does not exist or is turned off")
    try:
        return oidc.OidcConfig.from_config(provider.config)
    except ValidationFailed as exc:
        raise SsoFailed(
            f"the sign-in provider {provider.name!r} is not set up correctly ({exc.message}); "
            "ask an admin of the team"
        ) from None


async def oidc_start(*, runtime: Runtime, provider_id: UUID, next_path: str) -> tuple[str, str]:
    """Begin signing in through ``provider_id``: the identity provider's authorization URL to
    send the browser to, and the value of the cookie that binds the sign-in to this browser."""
    async with runtime.db.session(system=True) as session:
        provider = await sso.login_provider(session=session, provider_id=provider_id)
    config = _config(provider)
    request = await oidc.begin(runtime.http, config, redirect_uri=redirect_uri(runtime.settings))
    browser_secret = secrets.token_urlsafe(32)
    async with runtime.db.session(system=True) as session:
        await save_login_state(
            session=session,
            tenant_id=provider.tenant_id,
            provider_id=provider.id,
            state=request.state,
            browser_secret=browser_secret,
            nonce=request.nonce,
            code_verifier=request.code_verifier,
            next_path=next_path,
            now=runtime.clock.now(),
        )
    return request.url, browser_secret


async def _fail(
    runtime: Runtime,
    provider: sso.LoginProvider,
    reason: str,
    *,
    context: RequestContext,
    refused: bool = False,
) -> NoReturn:
    """Record the failed sign-in (committed), then raise it."""
    async with runtime.db.session(system=True) as session:
        await sso.record_failure(session=session, provider=provider, reason=reason, context=context)
    if refused:
        raise SsoRefused(reason)
    raise SsoFailed(reason)


@dataclass(frozen=True)
class OidcSignIn:
    """A finished sign-in: the new session, and the local path it was started for."""

    opened: OpenedSession
    next_path: str


async def oidc_callback(
    *,
    runtime: Runtime,
    state: str | None,
    code: str | None,
    error: str | None,
    browser_cookie: str | None,
    context: RequestContext,
    issuer: str | None = None,
) -> OidcSignIn:
    """Finish the sign-in the identity provider sent the browser back from: the state (single
    use, bound to this browser), the IdP's error if any, the code exchange and ID token
    (``issuer``: RFC 9207's ``iss`` parameter, checked when sent), then provisioning.

    Raises SsoFailed (401) or SsoRefused (403) after committing what was recorded.
    """
    if not state:
        raise SsoFailed("the sign-in came back without its state; start signing in again")
    now = runtime.clock.now()
    async with runtime.db.session(system=True) as session:
        taken = await take_login_state(session=session, state=state, now=now)
        provider: sso.LoginProvider | None = None
        if taken is not None:
            try:
                provider = await sso.login_provider(session=session, provider_id=taken.provider_id)
            except NotFound:
                provider = None
    if taken is None:
        raise SsoFailed("this sign-in has expired or was already used; start signing in again")
    if provider is None or provider.tenant_id != taken.tenant_id:
        raise SsoFailed("this sign-in provider was removed or turned off while you signed in")
    if not browser_cookie or not hmac.compare_digest(digest(browser_cookie), taken.browser_hash):
        await _fail(
            runtime,
            provider,
            "this sign-in was started in another browser (or its cookie was lost); "
            "start signing in again from this browser",
            context=context,
        )
    config = _config(provider)
    if error:
        code_name = error if error in KNOWN_ERRORS else "an unknown error"
        if error == "access_denied":
            await _fail(
                runtime,
                provider,
                f"{provider.name} did not let you sign in (access_denied): you declined, or "
                "your account there may not use Shipyard",
                context=context,
                refused=True,
            )
        await _fail(
            runtime,
            provider,
            f"{provider.name} could not sign you in ({code_name})",
            context=context,
        )
    if not code:
        await _fail(runtime, provider, f"{provider.name} sent no sign-in code", context=context)
    if issuer is not None and issuer.rstrip("/") != config.issuer.rstrip("/"):
        # RFC 9207: an answer from another provider than the one this sign-in went to.
        await _fail(
            runtime,
            provider,
            "the sign-in came back from another identity provider than it went to",
            context=context,
        )
    try:
        identity = await oidc.complete(
            runtime.http,
            config,
            client_secret=provider.secret,
            redirect_uri=redirect_uri(runtime.settings),
            code=code,
            nonce=taken.nonce,
            code_verifier=taken.code_verifier,
            now=runtime.clock.now(),
        )
    except SsoFailed as exc:
        await _fail(runtime, provider, exc.message, context=context)
    opened = await sign_in(runtime=runtime, provider=provider, identity=identity, context=context)
    return OidcSignIn(opened=opened, next_path=taken.next_path)
