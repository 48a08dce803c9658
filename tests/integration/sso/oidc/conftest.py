"""The OpenID Connect tests' identity provider: one real oidc-provider per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.config import Settings
from shipyard.sso import oidc
from shipyard.sso.oidc_flows import redirect_uri
from tests.support import canary
from tests.support.oidc_provider import (
    OidcAccount,
    OidcClient,
    OidcProvider,
    start_provider,
    stop_provider,
)

CLIENT_ID = "shipyard"
OTHER_CLIENT_ID = "shipyard-other"
PUBLIC_CLIENT_ID = "shipyard-public"
CLIENT_SECRET = canary.remember("oidc-client-secret-4f9a1c", "OIDC client secret")
OTHER_CLIENT_SECRET = canary.remember("oidc-other-secret-8d2e7b", "OIDC client secret")
SCOPES = ["openid", "email", "profile", "groups"]


@pytest.fixture(scope="module")
def idp(test_settings: Settings) -> Iterator[OidcProvider]:
    callback = redirect_uri(test_settings)
    provider = start_provider(
        clients=[
            OidcClient(CLIENT_ID, CLIENT_SECRET, [callback]),
            OidcClient(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, [callback]),
            OidcClient(PUBLIC_CLIENT_ID, None, [callback]),
        ],
        accounts={
            "alice": OidcAccount("alice@corp.example", "Alice Liddell", ["devs"]),
            "olga": OidcAccount("olga@corp.example", "Olga Ops", ["ops", "devs"]),
            "uma": OidcAccount("uma@corp.example", "Uma Userinfo", ["ops"], userinfo_only=True),
        },
    )
    try:
        yield provider
    finally:
        stop_provider(provider)
        oidc.clear_caches()


def provider_config(idp: OidcProvider, client_id: str = CLIENT_ID) -> dict[str, object]:
    """What an admin stores for the test provider (``sso_providers.config``)."""
    return {"issuer": idp.issuer, "client_id": client_id, "scopes": SCOPES}
