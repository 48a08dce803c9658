"""OpenID Connect, the protocol: discovery, the authorization request (PKCE, state, nonce), the
code exchange, ID-token validation (JWKS with key rotation) and userinfo. Calls the network;
never touches the database. Built on Authlib and joserfc (no hand-written JOSE).

Every request goes through the ``http`` client given (the runtime's: outbound policy checked,
redirects not followed). Every failure is an :class:`SsoFailed` whose message says what went
wrong without a token, a code, a secret or a verifier in it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from shipyard.errors import ShipyardError, ValidationFailed
from shipyard.sso.identity import ExternalIdentity, SsoFailed

# Discovery documents and key sets are kept this long per process; an unknown key id or a
# failed signature fetches the key set again at once (a rotation), at most once per token.
CACHE_SECONDS = 300.0
# Clock skew allowed on exp / iat / nbf.
LEEWAY_SECONDS = 60
# Signature algorithms accepted: asymmetric only (never "none"; HMAC would make the client
# secret a signing key). Further narrowed to what the provider's discovery lists.
ACCEPTED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
LOOPBACK_NAMES = frozenset({"localhost"})
MAX_DOCUMENT_BYTES = 512 * 1024
# Entra ID puts at most 200 groups in a token; past that ("group overage") the token names a
# claim source instead, and the groups are read from Microsoft Graph with the access token.
DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
# Where Entra ID's overage sources point: the (legacy) Azure AD Graph and Microsoft Graph, in
# the public and the national clouds; a provider's own ``graph_url`` host counts as well.
GRAPH_HOSTS = frozenset(
    {
        "graph.windows.net",
        "graph.microsoft.com",
        "graph.microsoftazure.us",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "graph.chinacloudapi.cn",
        "microsoftgraph.chinacloudapi.cn",
    }
)
GRAPH_PAGE_SIZE = 999
# Bounds on the pages read: a person in more groups than this is refused, not cut short.
MAX_GRAPH_PAGES = 50


@dataclass(frozen=True)
class OidcConfig:
    """A provider's plain settings (``sso_providers.config`` of kind ``oidc``)."""

    issuer: str
    client_id: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    # Claim names; a dotted name reads a nested claim (Keycloak: ``realm_access.roles``).
    groups_claim: str = "groups"
    email_claim: str = "email"
    name_claim: str = "name"
    # Where Entra ID's group overage is read (national clouds have their own Graph).
    graph_url: str = DEFAULT_GRAPH_URL

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OidcConfig:
        """Read and check the stored settings (ValidationFailed names the field)."""
        issuer = _text(config, "issuer").rstrip("/")
        check_issuer(issuer)
        scopes_value = config.get("scopes") or ("openid", "email", "profile")
        if isinstance(scopes_value, str):
            scopes_value = scopes_value.split()
        if not isinstance(scopes_value, list | tuple) or not all(
            isinstance(scope, str) and scope and " " not in scope for scope in scopes_value
        ):
            raise ValidationFailed("scopes must be a list of scope names", field="scopes")
        scopes = tuple(dict.fromkeys(["openid", *scopes_value]))
        return cls(
            issuer=issuer,
            client_id=_text(config, "client_id"),
            scopes=scopes,
            groups_claim=_text(config, "groups_claim", "groups"),
            email_claim=_text(config, "email_claim", "email"),
            name_claim=_text(config, "name_claim", "name"),
            graph_url=_graph_url(config),
        )


def _graph_url(config: Mapping[str, Any]) -> str:
    url = _text(config, "graph_url", DEFAULT_GRAPH_URL).rstrip("/")
    try:
        check_issuer(url)
    except ValidationFailed:
        raise ValidationFailed(
            "graph_url must be an https URL (http only on a loopback host)", field="graph_url"
        ) from None
    return url


def _text(config: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = config.get(name, default)
    if value is None or value == "":
        if default is not None:
            return default
        raise ValidationFailed(f"{name} is required", field=name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{name} must be a non-empty text", field=name)
    return value.strip()


def check_issuer(issuer: str) -> None:
    """An issuer is an https URL without query or fragment; http only on a loopback host."""
    try:
        parts = urlsplit(issuer)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed("the issuer is not a valid URL", field="issuer") from exc
    del port
    host = (parts.hostname or "").lower()
    if not host or parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationFailed(
            "the issuer must be an https URL without credentials, query or fragment",
            field="issuer",
        )
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise ValidationFailed(
        "the issuer must use https (http is accepted for a loopback address only)",
        field="issuer",
    )


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Discovery:
    """The parts of the provider's ``.well-known/openid-configuration`` sign-in uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    signing_algorithms: tuple[str, ...]
    token_auth_methods: tuple[str, ...]
    code_challenge_methods: tuple[str, ...] | None


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep (hashed or encrypted) until it returns."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class TokenResponse:
    id_token: str
    access_token: str | None


# Process-wide caches: issuer -> (monotonic time fetched, discovery); jwks_uri -> key set.
_discoveries: dict[str, tuple[float, Discovery]] = {}
_key_sets: dict[str, tuple[float, KeySet]] = {}


def clear_caches() -> None:
    """Forget every cached discovery document and key set (tests; a provider's config edit)."""
    _discoveries.clear()
    _key_sets.clear()


# --- HTTP --------------------------------------------------------------------------------------


async def _get_json(
    http: httpx.AsyncClient, url: str, *, what: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return _json_body(await _send(http, "GET", url, what=what, headers=headers), what=what)


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    host = urlsplit(url).hostname or url
    try:
        return await http.request(
            method,
            url,
            headers={"Accept": "application/json", **(headers or {})},
            data=data,
            auth=auth,
        )
    except ShipyardError as exc:  # the outbound policy refused the address
        raise SsoFailed(f"the identity provider's {what} is refused: {exc.message}") from None
    except httpx.TimeoutException:
        raise SsoFailed(f"the identity provider ({host}) did not answer in time") from None
    except httpx.HTTPError:
        raise SsoFailed(f"cannot reach the identity provider's {what} at {host}") from None


def _json_body(response: httpx.Response, *, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SsoFailed(f"the identity provider's {what} answered HTTP {response.status_code}")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise SsoFailed(f"the identity provider's {what} is too large")
    try:
        body = response.json()
    except ValueError:
        raise SsoFailed(f"the identity provider's {what} is not JSON") from None
    if not isinstance(body, dict):
        raise SsoFailed(f"the identity provider's {what} is not a JSON object")
    return body


# --- discovery and keys ------------------------------------------------------------------------


async def discover(http: httpx.AsyncClient, issuer: str) -> Discovery:
    """The provider's discovery document (cached a few minutes); its issuer must be ours."""
    cached = _discoveries.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    document = await _get_json(
        http,
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        what="discovery document",
    )
    named = document.get("issuer")
    # The same issuer, give or take a final slash (Authentik's ends with one; the stored
    # setting has none): from here on the document's exact spelling is the one tokens carry.
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        raise SsoFailed(
            "the identity provider's discovery document names another issuer "
            f"({str(document.get('issuer'))[:200]!r}, expected {issuer!r})"
        )
    try:
        discovery = Discovery(
            issuer=named,
            authorization_endpoint=_endpoint(document, "authorization_endpoint"),
            token_endpoint=_endpoint(document, "token_endpoint"),
            jwks_uri=_endpoint(document, "jwks_uri"),
            userinfo_endpoint=(
                _endpoint(document, "userinfo_endpoint")
                if document.get("userinfo_endpoint")
                else None
            ),
            signing_algorithms=_names(document, "id_token_signing_alg_values_supported")
            or ("RS256",),
            token_auth_methods=_names(document, "token_endpoint_auth_methods_supported")
            or ("client_secret_basic",),
            code_challenge_methods=_names(document, "code_challenge_methods_supported"),
        )
    except (TypeError, ValueError) as exc:
        raise SsoFailed(f"the identity provider's discovery document is invalid: {exc}") from None
    _discoveries[issuer] = (time.monotonic(), discovery)
    return discovery


def _endpoint(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or urlsplit(value).scheme not in {"http", "https"}:
        raise ValueError(f"{name} is missing or not a URL")
    return value


def _names(document: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} is not a list of names")
    return tuple(value)


async def _key_set(http: httpx.AsyncClient, jwks_uri: str, *, refresh: bool) -> KeySet:
    cached = _key_sets.get(jwks_uri)
    if not refresh and cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    document = await _get_json(http, jwks_uri, what="key set (JWKS)")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise SsoFailed("the identity provider's key set (JWKS) has no keys")
    # Keys for signatures only; a key the library cannot read (another kty) is skipped.
    usable = [key for key in keys if isinstance(key, dict) and key.get("use", "sig") == "sig"]
    try:
        key_set = KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError):
        raise SsoFailed("the identity provider's key set (JWKS) cannot be read") from None
    _key_sets[jwks_uri] = (time.monotonic(), key_set)
    return key_set


# --- the authorization request -----------------------------------------------------------------


async def begin(
    http: httpx.AsyncClient, config: OidcConfig, *, redirect_uri: str
) -> AuthorizationRequest:
    """Discover the provider and build the authorization URL (code flow, PKCE S256)."""
    discovery = await discover(http, config.issuer)
    if discovery.code_challenge_methods is not None and (
        "S256" not in discovery.code_challenge_methods
    ):
        raise SsoFailed("the identity provider does not support PKCE with S256")
    state = generate_token(43)
    nonce = generate_token(43)
    code_verifier = generate_token(64)
    query = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(config.scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(code_verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if "?" in discovery.authorization_endpoint else "?"
    return AuthorizationRequest(
        url=f"{discovery.authorization_endpoint}{separator}{urlencode(query)}",
        state=state,
        nonce=nonce,
        code_verifier=code_verifier,
    )


# --- the code exchange -------------------------------------------------------------------------


async def exchange_code(
    http: httpx.AsyncClient,
    config: OidcConfig,
    discovery: Discovery,
    *,
    client_secret: str | None,
    redirect_uri: str,
    code: str,
    code_verifier: str,
) -> TokenResponse:
    """Trade the authorization code (and the PKCE verifier) for the tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    auth: tuple[str, str] | None = None
    if client_secret is None:
        # A public client: it names itself, PKCE proves it started the flow.
        form["client_id"] = config.client_id
    elif (
        "client_secret_basic" not in discovery.token_auth_methods
        and "client_secret_post" in discovery.token_auth_methods
    ):
        form["client_id"] = config.client_id
        form["client_secret"] = client_secret
    else:
        # RFC 6749 2.3.1: both parts form-encoded before the basic scheme's base64.
        auth = (_form_encode(config.client_id), _form_encode(client_secret))
    response = await _send(
        http, "POST", discovery.token_endpoint, what="token endpoint", data=form, auth=auth
    )
    if response.status_code != 200:
        raise SsoFailed(
            "the identity provider refused the sign-in code "
            f"(HTTP {response.status_code}{_oauth_error(response)})"
        )
    body = _json_body(response, what="token endpoint")
    id_token = body.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise SsoFailed("the identity provider returned no ID token (is 'openid' in the scopes?)")
    access_token = body.get("access_token")
    return TokenResponse(
        id_token=id_token, access_token=access_token if isinstance(access_token, str) else None
    )


def _form_encode(value: str) -> str:
    return urlencode({"": value})[1:]


def _oauth_error(response: httpx.Response) -> str:
    """The OAuth error code only (its description may echo what we sent)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and error.replace("_", "").isalnum() and len(error) <= 64:
        return f": {error}"
    return ""


# --- the ID token ------------------------------------------------------------------------------


async def validate_id_token(
    http: httpx.AsyncClient,
    config: OidcConfig,
    discovery: Discovery,
    *,
    id_token: str,
    nonce: str,
    now: datetime,
    access_token: str | None = None,
) -> dict[str, Any]:
    """The ID token's claims, once its signature (JWKS), issuer, audience, authorized party,
    expiry, issue time, nonce and access-token hash hold."""
    allowed = [alg for alg in discovery.signing_algorithms if alg in ACCEPTED_ALGORITHMS]
    if not allowed:
        raise SsoFailed(
            "the identity provider signs ID tokens with no algorithm Shipyard accepts "
            f"({', '.join(discovery.signing_algorithms)[:200]}; use RS256 or ES256)"
        )
    key_set = await _key_set(http, discovery.jwks_uri, refresh=False)
    try:
        token = jwt.decode(id_token, key_set, algorithms=allowed)
    except (BadSignatureError, InvalidKeyIdError):
        # A key rotation: the token's key is not in the set we hold. Fetch it again, once.
        key_set = await _key_set(http, discovery.jwks_uri, refresh=True)
        token = _decode(id_token, key_set, allowed)
    except JoseError as exc:
        raise SsoFailed(f"the ID token cannot be read ({exc.error})") from None
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={
            "iss": {"essential": True, "value": discovery.issuer},
            "aud": {"essential": True, "value": config.client_id},
            "sub": {"essential": True},
        },
        params={"nonce": nonce, "client_id": config.client_id, "access_token": access_token},
    )
    try:
        claims.validate(now=int(now.timestamp()), leeway=LEEWAY_SECONDS)
    except ExpiredTokenError:
        raise SsoFailed("the ID token has expired") from None
    except MissingClaimError as exc:
        raise SsoFailed(f"the ID token lacks the claim {_claim_name(exc.claim)}") from None
    except InvalidClaimError as exc:
        raise SsoFailed(f"the ID token's {_claim_name(exc.claim)} is wrong") from None
    except JoseError as exc:
        raise SsoFailed(f"the ID token is not valid ({exc.error})") from None
    if not claims.get("nonce"):
        # Always sent, so always required back (authlib checks it only when present).
        raise SsoFailed("the ID token lacks the claim nonce")
    return dict(claims)


def _decode(id_token: str, key_set: KeySet, allowed: list[str]) -> jwt.Token:
    try:
        return jwt.decode(id_token, key_set, algorithms=allowed)
    except BadSignatureError:
        raise SsoFailed("the ID token's signature does not verify") from None
    except InvalidKeyIdError:
        raise SsoFailed(
            "the ID token is signed by a key the identity provider does not publish"
        ) from None
    except JoseError as exc:
        raise SsoFailed(f"the ID token cannot be read ({exc.error})") from None


def _claim_name(name: str) -> str:
    words = {
        "iss": "issuer (iss)",
        "aud": "audience (aud)",
        "azp": "authorized party (azp)",
        "nonce": "nonce",
        "iat": "issue time (iat)",
        "nbf": "not-before time (nbf)",
        "at_hash": "access token hash (at_hash)",
    }
    return words.get(name, f"claim {name[:40]}")


# --- claims to an identity ---------------------------------------------------------------------


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name; ``a.b`` reads ``claims["a"]["b"]`` unless ``a.b`` is itself a claim."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _groups(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value if isinstance(item, str | int) and str(item))
    return None


def needs_userinfo(config: OidcConfig, claims: Mapping[str, Any]) -> bool:
    """Whether the token lacks the groups, e-mail or name claim (userinfo may have them)."""
    return any(
        claim(claims, name) is None
        for name in (config.groups_claim, config.email_claim, config.name_claim)
    )


async def userinfo(
    http: httpx.AsyncClient, discovery: Discovery, *, access_token: str, subject: str
) -> dict[str, Any]:
    """The userinfo endpoint's claims about ``subject`` (its ``sub`` must be the token's)."""
    if discovery.userinfo_endpoint is None:
        return {}
    body = await _get_json(
        http,
        discovery.userinfo_endpoint,
        what="userinfo endpoint",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    if body.get("sub") != subject:
        raise SsoFailed("the identity provider's userinfo is about another person (sub differs)")
    return body


def identity_from_claims(config: OidcConfig, claims: Mapping[str, Any]) -> ExternalIdentity:
    """The person as the claims describe them; the e-mail is required."""
    email = claim(claims, config.email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise SsoFailed(
            f"the identity provider sent no e-mail address (claim {config.email_claim!r}); "
            "add the email scope or choose the claim that holds it"
        )
    name = claim(claims, config.name_claim)
    return ExternalIdentity(
        subject=str(claims["sub"]),
        email=email.strip().lower(),
        name=name.strip() if isinstance(name, str) and name.strip() else None,
        groups=_groups(claim(claims, config.groups_claim)) or (),
        email_verified=email_verified(claims),
    )


def email_verified(claims: Mapping[str, Any]) -> bool:
    """Whether the provider vouches for the e-mail (``email_verified`` true; "true" as text)."""
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --- the whole return leg ----------------------------------------------------------------------


async def complete_claims(
    http: httpx.AsyncClient,
    config: OidcConfig,
    *,
    client_secret: str | None,
    redirect_uri: str,
    code: str,
    nonce: str,
    code_verifier: str,
    now: datetime,
) -> dict[str, Any]:
    """Exchange ``code``, validate the ID token, add userinfo when claims are missing: the
    claims (ID token's first, userinfo filling in the missing ones)."""
    discovery = await discover(http, config.issuer)
    tokens = await exchange_code(
        http,
        config,
        discovery,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        code=code,
        code_verifier=code_verifier,
    )
    claims = await validate_id_token(
        http,
        config,
        discovery,
        id_token=tokens.id_token,
        nonce=nonce,
        now=now,
        access_token=tokens.access_token,
    )
    if needs_userinfo(config, claims) and tokens.access_token:
        extra = await userinfo(
            http, discovery, access_token=tokens.access_token, subject=str(claims["sub"])
        )
        # The signed token wins; userinfo only fills what it lacks.
        claims = {**extra, **claims}
        for name in (config.groups_claim, config.email_claim, config.name_claim):
            if claim(claims, name) is None and claim(extra, name) is not None:
                claims[name] = claim(extra, name)
    overage = group_overage(claims, config.groups_claim, graph_url=config.graph_url)
    if claim(claims, config.groups_claim) is None and overage:
        if not tokens.access_token:
            raise SsoFailed(
                "the identity provider sent too many groups for its token and no access token "
                "to read them with"
            )
        claims = {
            **claims,
            config.groups_claim: await graph_groups(
                http, config.graph_url, access_token=tokens.access_token
            ),
        }
    return claims


def group_overage(claims: Mapping[str, Any], groups_claim: str, *, graph_url: str) -> bool:
    """Whether the claims say the groups are elsewhere: Entra ID's overage, where
    ``_claim_names`` maps the groups claim to a ``_claim_sources`` entry on Microsoft Graph
    (OpenID Connect's distributed claims). Only Graph is read, at the provider's
    ``graph_url``: the address in the token itself is never called."""
    names = claims.get("_claim_names")
    sources = claims.get("_claim_sources")
    if not isinstance(names, Mapping) or not isinstance(sources, Mapping):
        return False
    source = sources.get(names.get(groups_claim) or "")
    if not isinstance(source, Mapping) or not isinstance(source.get("endpoint"), str):
        return False
    host = (urlsplit(source["endpoint"]).hostname or "").lower()
    return host in GRAPH_HOSTS or host == (urlsplit(graph_url).hostname or "").lower()


async def graph_groups(http: httpx.AsyncClient, graph_url: str, *, access_token: str) -> list[str]:
    """The signed-in person's groups (ids, nested memberships included) from Microsoft Graph's
    ``/me/transitiveMemberOf``, page by page; ``@odata.nextLink`` is followed only on the same
    Graph (the access token goes nowhere else)."""
    base = urlsplit(graph_url)
    url = (
        f"{graph_url}/v1.0/me/transitiveMemberOf/microsoft.graph.group"
        f"?$select=id&$top={GRAPH_PAGE_SIZE}"
    )
    headers = {"Authorization": f"Bearer {access_token}"}
    groups: list[str] = []
    for _ in range(MAX_GRAPH_PAGES):
        response = await _send(http, "GET", url, what="Microsoft Graph", headers=headers)
        if response.status_code in (401, 403):
            raise SsoFailed(
                f"Microsoft Graph refused to list the person's groups (HTTP "
                f"{response.status_code}); the app needs the GroupMember.Read.All permission "
                "and its scope in the provider's scopes"
            )
        body = _json_body(response, what="Microsoft Graph group list")
        items = body.get("value")
        if not isinstance(items, list):
            raise SsoFailed("Microsoft Graph's group list has no value list")
        groups += [
            str(item["id"])
            for item in items
            if isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"]
        ]
        next_link = body.get("@odata.nextLink")
        if not next_link:
            return groups
        following = urlsplit(str(next_link))
        if (following.scheme, following.netloc) != (base.scheme, base.netloc):
            raise SsoFailed("Microsoft Graph's next page is on another host; not followed")
        url = str(next_link)
    raise SsoFailed(
        f"the person is in more groups than Shipyard reads ({MAX_GRAPH_PAGES} pages of "
        f"{GRAPH_PAGE_SIZE})"
    )


async def complete(
    http: httpx.AsyncClient,
    config: OidcConfig,
    *,
    client_secret: str | None,
    redirect_uri: str,
    code: str,
    nonce: str,
    code_verifier: str,
    now: datetime,
) -> ExternalIdentity:
    """Exchange ``code``, validate the ID token, read userinfo when claims are missing.

    Raises :class:`shipyard.sso.identity.SsoFailed` for anything the provider or the token got
    wrong, with a message safe to show; never includes a secret or a token in it.
    """
    claims = await complete_claims(
        http,
        config,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        code=code,
        nonce=nonce,
        code_verifier=code_verifier,
        now=now,
    )
    return identity_from_claims(config, claims)


async def check(http: httpx.AsyncClient, config: OidcConfig) -> str:
    """Fetch discovery and the JWKS; a one-line description of what was found (or SsoFailed)."""
    _discoveries.pop(config.issuer, None)
    discovery = await discover(http, config.issuer)
    key_set = await _key_set(http, discovery.jwks_uri, refresh=True)
    count = len(key_set.keys)
    if count == 0:
        raise SsoFailed("the identity provider publishes no signing keys")
    allowed = [alg for alg in discovery.signing_algorithms if alg in ACCEPTED_ALGORITHMS]
    if not allowed:
        raise SsoFailed("the identity provider signs ID tokens with no algorithm Shipyard accepts")
    return (
        f"{discovery.issuer}: {count} signing key{'s' if count != 1 else ''}, "
        f"ID tokens signed with {', '.join(allowed)}"
    )
