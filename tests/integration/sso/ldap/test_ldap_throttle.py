"""The LDAP form is no password-guessing oracle: failures count per (provider, user name) and
per address, as password log-in's do, and a caller hammering is refused before the directory
is asked."""

from __future__ import annotations

import httpx

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import build_runtime, close_runtime
from tests.integration.sso.ldap import slapd
from tests.integration.sso.ldap.conftest import MakeProvider
from tests.integration.sso.ldap.test_ldap_login import audit_rows, ldap_login
from tests.support.api import Account


async def test_repeated_failures_are_throttled(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    strict = settings.model_copy(
        update={
            "login_max_failures_per_account": 3,
            "login_max_failures_per_address": 5,
            "login_delay_base_seconds": 0.0,
        }
    )
    runtime = build_runtime(strict, db=db)
    try:
        for peer in ("10.0.0.7", "10.0.0.8"):
            transport = httpx.ASGITransport(app=create_app(runtime=runtime), client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                if peer == "10.0.0.7":
                    for _ in range(3):
                        wrong = await ldap_login(http, provider_id, "alice", "guess-1234")
                        assert wrong.status_code == 401, wrong.text
                    # Even the right password waits now: the user name is being hammered.
                    blocked = await ldap_login(
                        http, provider_id, "alice", slapd_server.passwords["alice"]
                    )
                    assert blocked.status_code == 429, blocked.text
                    assert int(blocked.headers["Retry-After"]) > 0
                    assert "too many failed log-ins" in blocked.json()["error"]["message"]
                    # Another user from the same address is still let in (2 more failures).
                    bob = await ldap_login(http, provider_id, "bob", slapd_server.passwords["bob"])
                    assert bob.status_code == 200, bob.text
                    for _ in range(2):
                        await ldap_login(http, provider_id, "bob", "guess-5678")
                    # The address has had 5 failures: nobody signs in from it for a while.
                    carol = await ldap_login(
                        http, provider_id, "carol", slapd_server.passwords["carol"]
                    )
                    assert carol.status_code == 429, carol.text
                else:
                    # Alice's name is still hammered, from any address.
                    again = await ldap_login(
                        http, provider_id, "alice", slapd_server.passwords["alice"]
                    )
                    assert again.status_code == 429, again.text
    finally:
        await close_runtime(runtime)
    failures = [row for row in await audit_rows(db, "sso.login") if row.outcome == "failure"]
    # The refused attempts never reached the directory: only the 5 wrong passwords did.
    assert len(failures) == 5
