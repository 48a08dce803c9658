"""OpenID Connect, the protocol (``shipyard.sso.oidc``), against the real oidc-provider: real
codes and real ID tokens, then each thing the token could get wrong refused: a tampered payload,
a wrong nonce, another client's token, an expired one; key rotation; userinfo; discovery."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shipyard.config import Settings
from shipyard.errors import ValidationFailed
from shipyard.sso import oidc
from shipyard.sso.identity import SsoFailed
from shipyard.sso.oidc_flows import redirect_uri
from tests.integration.sso.oidc.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    OTHER_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    provider_config,
)
from tests.support.oidc_provider import OidcProvider, callback_params, sign_in_at_provider


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@dataclass(frozen=True)
class SignedIn:
    config: oidc.OidcConfig
    request: oidc.AuthorizationRequest
    tokens: oidc.TokenResponse
    discovery: oidc.Discovery


async def tokens_for(
    http: httpx.AsyncClient,
    idp: OidcProvider,
    settings: Settings,
    *,
    login: str = "alice",
    client_id: str = CLIENT_ID,
    client_secret: str | None = CLIENT_SECRET,
) -> SignedIn:
    """A real sign-in at the provider, up to the tokens (not validated)."""
    config = oidc.OidcConfig.from_config(provider_config(idp, client_id))
    callback = redirect_uri(settings)
    request = await oidc.begin(http, config, redirect_uri=callback)
    returned = callback_params(
        await sign_in_at_provider(request.url, login=login, redirect_uri=callback)
    )
    assert returned["state"] == request.state
    discovery = await oidc.discover(http, config.issuer)
    tokens = await oidc.exchange_code(
        http,
        config,
        discovery,
        client_secret=client_secret,
        redirect_uri=callback,
        code=returned["code"],
        code_verifier=request.code_verifier,
    )
    return SignedIn(config=config, request=request, tokens=tokens, discovery=discovery)


async def validate(
    http: httpx.AsyncClient,
    signed: SignedIn,
    *,
    id_token: str | None = None,
    nonce: str | None = None,
    now: datetime | None = None,
    config: oidc.OidcConfig | None = None,
    discovery: oidc.Discovery | None = None,
) -> dict[str, object]:
    return await oidc.validate_id_token(
        http,
        config or signed.config,
        discovery or signed.discovery,
        id_token=id_token or signed.tokens.id_token,
        nonce=nonce or signed.request.nonce,
        now=now or datetime.now(UTC),
        access_token=signed.tokens.access_token,
    )


def tamper(id_token: str, **changes: object) -> str:
    """The token with its payload changed and its header and signature kept."""
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


async def test_authorization_url_asks_for_code_with_pkce_state_and_nonce(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    config = oidc.OidcConfig.from_config(provider_config(idp))
    request = await oidc.begin(http, config, redirect_uri=redirect_uri(settings))
    query = callback_params(request.url)
    assert request.url.startswith(f"{idp.issuer}/auth?")
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] != request.code_verifier
    assert query["state"] == request.state and query["nonce"] == request.nonce
    assert query["scope"] == "openid email profile groups"
    assert query["redirect_uri"] == f"{settings.base_url}/login/oidc/callback"
    assert request.code_verifier not in request.url


async def test_a_real_sign_in_gives_the_person_and_their_groups(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    config = oidc.OidcConfig.from_config(provider_config(idp))
    callback = redirect_uri(settings)
    request = await oidc.begin(http, config, redirect_uri=callback)
    returned = callback_params(
        await sign_in_at_provider(request.url, login="olga", redirect_uri=callback)
    )
    identity = await oidc.complete(
        http,
        config,
        client_secret=CLIENT_SECRET,
        redirect_uri=callback,
        code=returned["code"],
        nonce=request.nonce,
        code_verifier=request.code_verifier,
        now=datetime.now(UTC),
    )
    assert identity.subject == "olga"
    assert identity.email == "olga@corp.example"
    assert identity.name == "Olga Ops"
    assert set(identity.groups) == {"ops", "devs"}
    assert identity.email_verified

    # The code is single use: a second exchange is refused, without echoing the code.
    with pytest.raises(SsoFailed) as refused:
        await oidc.complete(
            http,
            config,
            client_secret=CLIENT_SECRET,
            redirect_uri=callback,
            code=returned["code"],
            nonce=request.nonce,
            code_verifier=request.code_verifier,
            now=datetime.now(UTC),
        )
    assert "refused the sign-in code" in refused.value.message
    assert returned["code"] not in refused.value.message


async def test_a_public_client_signs_in_with_pkce_alone(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    signed = await tokens_for(http, idp, settings, client_id=PUBLIC_CLIENT_ID, client_secret=None)
    claims = await validate(http, signed)
    assert claims["aud"] == PUBLIC_CLIENT_ID


async def test_a_wrong_client_secret_is_refused_without_the_secret(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    with pytest.raises(SsoFailed) as refused:
        await tokens_for(http, idp, settings, client_secret="not-the-secret-1234")
    assert "invalid_client" in refused.value.message
    assert "not-the-secret-1234" not in refused.value.message


async def test_a_tampered_id_token_is_refused(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    signed = await tokens_for(http, idp, settings)
    assert (await validate(http, signed))["groups"] == ["devs"]
    for forged in (
        tamper(signed.tokens.id_token, groups=["admins"]),
        tamper(signed.tokens.id_token, sub="olga"),
        tamper(signed.tokens.id_token, email="ceo@corp.example"),
    ):
        with pytest.raises(SsoFailed) as refused:
            await validate(http, signed, id_token=forged)
        assert refused.value.message == "the ID token's signature does not verify"
        assert forged not in refused.value.message
    # A token whose header says "none" is not read at all.
    _header, payload, _signature = signed.tokens.id_token.split(".")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    with pytest.raises(SsoFailed):
        await validate(http, signed, id_token=f"{unsigned}.{payload}.")


async def test_a_wrong_nonce_is_refused(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    signed = await tokens_for(http, idp, settings)
    with pytest.raises(SsoFailed) as refused:
        await validate(http, signed, nonce="a-nonce-from-another-sign-in")
    assert refused.value.message == "the ID token's nonce is wrong"


async def test_another_clients_token_is_refused(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    # A real token of the same provider, issued to another client (another team's app).
    signed = await tokens_for(
        http, idp, settings, client_id=OTHER_CLIENT_ID, client_secret=OTHER_CLIENT_SECRET
    )
    ours = oidc.OidcConfig.from_config(provider_config(idp, CLIENT_ID))
    with pytest.raises(SsoFailed) as refused:
        await validate(http, signed, config=ours)
    assert refused.value.message == "the ID token's audience (aud) is wrong"
    # And a token from another issuer (the same server under another name) is refused too.
    elsewhere = replace(signed.discovery, issuer=idp.issuer.replace("127.0.0.1", "localhost"))
    with pytest.raises(SsoFailed) as wrong_issuer:
        await validate(http, signed, discovery=elsewhere)
    assert wrong_issuer.value.message == "the ID token's issuer (iss) is wrong"


async def test_an_expired_token_is_refused(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    signed = await tokens_for(http, idp, settings)
    claims = await validate(http, signed)
    expires = datetime.fromtimestamp(float(str(claims["exp"])), UTC)
    # Within the leeway it still holds; past it, it does not.
    await validate(http, signed, now=expires + timedelta(seconds=oidc.LEEWAY_SECONDS - 5))
    with pytest.raises(SsoFailed) as refused:
        await validate(http, signed, now=expires + timedelta(seconds=oidc.LEEWAY_SECONDS + 5))
    assert refused.value.message == "the ID token has expired"
    # A token issued "in the future" (a clock far behind) is refused as well.
    issued = datetime.fromtimestamp(float(str(claims["iat"])), UTC)
    with pytest.raises(SsoFailed) as early:
        await validate(http, signed, now=issued - timedelta(minutes=10))
    assert "issue time" in early.value.message


async def test_a_rotated_signing_key_is_fetched_again(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    before = await tokens_for(http, idp, settings)
    await validate(http, before)  # the key set is now cached, with the old key only
    idp.rotate_keys("key-rotated", "key-1-new")
    after = await tokens_for(http, idp, settings)
    header = json.loads(base64.urlsafe_b64decode(after.tokens.id_token.split(".")[0] + "=="))
    assert header["kid"] == "key-rotated"
    claims = await validate(http, after)
    assert claims["sub"] == "alice"
    # The old key is gone from the provider: a token it signed no longer verifies.
    with pytest.raises(SsoFailed) as refused:
        await validate(http, before)
    assert "key the identity provider does not publish" in refused.value.message


async def test_claims_missing_from_the_token_come_from_userinfo(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    signed = await tokens_for(http, idp, settings, login="uma")
    token_claims = await validate(http, signed)
    assert "groups" not in token_claims and "email" not in token_claims
    assert signed.tokens.access_token is not None
    extra = await oidc.userinfo(
        http, signed.discovery, access_token=signed.tokens.access_token, subject="uma"
    )
    identity = oidc.identity_from_claims(signed.config, {**extra, **token_claims})
    assert identity.email == "uma@corp.example" and identity.groups == ("ops",)
    # Userinfo about someone else than the token's subject is refused.
    with pytest.raises(SsoFailed) as refused:
        await oidc.userinfo(
            http, signed.discovery, access_token=signed.tokens.access_token, subject="alice"
        )
    assert "another person" in refused.value.message


async def test_complete_falls_back_to_userinfo(
    http: httpx.AsyncClient, idp: OidcProvider, settings: Settings
) -> None:
    config = oidc.OidcConfig.from_config(provider_config(idp))
    callback = redirect_uri(settings)
    request = await oidc.begin(http, config, redirect_uri=callback)
    returned = callback_params(
        await sign_in_at_provider(request.url, login="uma", redirect_uri=callback)
    )
    identity = await oidc.complete(
        http,
        config,
        client_secret=CLIENT_SECRET,
        redirect_uri=callback,
        code=returned["code"],
        nonce=request.nonce,
        code_verifier=request.code_verifier,
        now=datetime.now(UTC),
    )
    assert (identity.email, identity.name, identity.groups) == (
        "uma@corp.example",
        "Uma Userinfo",
        ("ops",),
    )


async def test_discovery_must_name_the_configured_issuer(
    http: httpx.AsyncClient, idp: OidcProvider
) -> None:
    config = oidc.OidcConfig(issuer=idp.issuer.replace("127.0.0.1", "localhost"), client_id="x")
    with pytest.raises(SsoFailed) as refused:
        await oidc.check(http, config)
    assert "names another issuer" in refused.value.message
    described = await oidc.check(http, oidc.OidcConfig(issuer=idp.issuer, client_id="x"))
    # A final slash on either side is the same issuer (Authentik's issuers end with one).
    slashed = await oidc.discover(http, f"{idp.issuer}/")
    assert slashed.issuer == idp.issuer
    assert described.startswith(f"{idp.issuer}: ") and "RS256" in described
    unreachable = oidc.OidcConfig(issuer="http://127.0.0.1:9", client_id="x")
    with pytest.raises(SsoFailed) as down:
        await oidc.check(http, unreachable)
    assert "cannot reach" in down.value.message


def test_settings_are_checked() -> None:
    config = oidc.OidcConfig.from_config(
        {"issuer": "https://login.example.com/realms/corp/", "client_id": "shipyard"}
    )
    assert config.issuer == "https://login.example.com/realms/corp"
    assert config.scopes == ("openid", "email", "profile")
    assert oidc.OidcConfig.from_config(
        {"issuer": "http://localhost:8080", "client_id": "c", "scopes": "email groups"}
    ).scopes == ("openid", "email", "groups")
    for config_values, field in (
        ({"issuer": "http://idp.example.com", "client_id": "c"}, "issuer"),
        ({"issuer": "https://idp.example.com?x=1", "client_id": "c"}, "issuer"),
        ({"issuer": "https://idp.example.com"}, "client_id"),
        ({"issuer": "https://idp.example.com", "client_id": "c", "scopes": [1]}, "scopes"),
    ):
        with pytest.raises(ValidationFailed) as invalid:
            oidc.OidcConfig.from_config(config_values)
        assert invalid.value.field == field


def test_claims_by_dotted_name_and_single_string_groups() -> None:
    keycloak = oidc.OidcConfig(
        issuer="https://kc.example.com/realms/corp",
        client_id="c",
        groups_claim="realm_access.roles",
        email_claim="upn",
    )
    identity = oidc.identity_from_claims(
        keycloak,
        {
            "sub": "s1",
            "upn": "Kim@Corp.Example",
            "realm_access": {"roles": ["deployers", "offline_access"]},
            "email_verified": "true",
        },
    )
    assert identity.email == "kim@corp.example"
    assert identity.groups == ("deployers", "offline_access")
    assert identity.name is None and identity.email_verified is True
    single = oidc.identity_from_claims(
        oidc.OidcConfig(issuer="https://x.example", client_id="c"),
        {"sub": "s2", "email": "a@b.example", "groups": "ops", "email_verified": False},
    )
    assert single.groups == ("ops",) and single.email_verified is False
    with pytest.raises(SsoFailed) as no_email:
        oidc.identity_from_claims(keycloak, {"sub": "s3"})
    assert "no e-mail address" in no_email.value.message
