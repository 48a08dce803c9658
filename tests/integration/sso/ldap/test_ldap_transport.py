"""The way to the directory: StartTLS and LDAPS with the test CA, untrusted certificates refused,
the outbound policy before any connection, the service account's check and its secrecy."""

from __future__ import annotations

import logging

import httpx
import pytest

from shipyard.db import Database
from shipyard.outbound.policy import DEFAULT_POLICY, OutboundPolicy
from shipyard.sso import ldap
from shipyard.sso.identity import SsoFailed
from tests.integration.sso.ldap import slapd
from tests.integration.sso.ldap.conftest import MakeProvider, ldap_config
from tests.integration.sso.ldap.test_ldap_login import audit_rows, ldap_login
from tests.support import canary
from tests.support.api import Account


def config_for(server: slapd.Slapd, **overrides: object) -> ldap.LdapConfig:
    return ldap.LdapConfig.from_config(ldap_config(server, **overrides))


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param({"start_tls": True}, id="starttls"),
        pytest.param({"ldaps": True}, id="ldaps"),
        pytest.param({"ldaps": True, "host": "localhost"}, id="ldaps-by-name"),
    ],
)
async def test_tls_with_the_directory_ca(
    slapd_server: slapd.Slapd, transport: dict[str, object]
) -> None:
    host = str(transport.get("host", slapd.LOOPBACK))
    url = (
        f"ldaps://{host}:{slapd_server.ldaps_port}"
        if transport.get("ldaps")
        else f"ldap://{host}:{slapd_server.ldap_port}"
    )
    config = config_for(
        slapd_server,
        url=url,
        start_tls=bool(transport.get("start_tls")),
        ca_certificate=slapd_server.ca_pem,
    )

    identity = await ldap.authenticate(
        config,
        bind_password=slapd_server.service_password,
        username="bob",
        password=slapd_server.passwords["bob"],
        policy=DEFAULT_POLICY,
    )

    assert identity.email == "bob@example.org"
    assert identity.name == "Bob Builder"
    assert identity.subject == slapd.Slapd.user_dn("bob")
    assert set(identity.groups) == {"developers", slapd.Slapd.group_dn("developers")}


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
@pytest.mark.parametrize("trust", ["another-ca", "system-store"])
async def test_an_untrusted_certificate_is_refused(
    slapd_server: slapd.Slapd, mode: str, trust: str
) -> None:
    config = config_for(
        slapd_server,
        url=slapd_server.ldaps_url if mode == "ldaps" else slapd_server.ldap_url,
        start_tls=mode == "starttls",
        ca_certificate=slapd.other_ca_pem() if trust == "another-ca" else None,
    )

    with pytest.raises(SsoFailed, match="TLS certificate is not trusted"):
        await ldap.authenticate(
            config,
            bind_password=slapd_server.service_password,
            username="bob",
            password=slapd_server.passwords["bob"],
            policy=DEFAULT_POLICY,
        )


async def test_a_certificate_for_another_name_is_refused(slapd_server: slapd.Slapd) -> None:
    # The CA is trusted, but the certificate names localhost and 127.0.0.1, not 127.0.0.2.
    config = config_for(
        slapd_server,
        url=f"ldaps://{slapd.OTHER_LOOPBACK}:{slapd_server.ldaps_port}",
        ca_certificate=slapd_server.ca_pem,
    )

    with pytest.raises(SsoFailed, match="not valid for its host name"):
        await ldap.authenticate(
            config,
            bind_password=slapd_server.service_password,
            username="bob",
            password=slapd_server.passwords["bob"],
            policy=DEFAULT_POLICY,
        )


async def test_the_outbound_policy_refuses_a_link_local_directory(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id, url="ldap://169.254.169.254:389")

    response = await ldap_login(client, provider_id, "bob", slapd_server.passwords["bob"])

    assert response.status_code == 401, response.text
    assert "refused by the outbound policy" in response.json()["error"]["message"]
    # Loopback is private: refused too once private addresses are off, before any connection.
    strict = OutboundPolicy(allow_private=False)
    with pytest.raises(SsoFailed, match="refused by the outbound policy"):
        await ldap.check(
            config_for(slapd_server), bind_password=slapd_server.service_password, policy=strict
        )


async def test_an_unreachable_directory_is_a_clear_failure(slapd_server: slapd.Slapd) -> None:
    closed = slapd.free_port()
    config = config_for(slapd_server, url=f"ldap://127.0.0.1:{closed}", timeout_seconds=2)

    with pytest.raises(SsoFailed, match="cannot be reached"):
        await ldap.authenticate(
            config,
            bind_password=slapd_server.service_password,
            username="bob",
            password=slapd_server.passwords["bob"],
            policy=DEFAULT_POLICY,
        )


async def test_check_binds_as_the_service_account(slapd_server: slapd.Slapd) -> None:
    config = config_for(
        slapd_server, url=slapd_server.ldaps_url, ca_certificate=slapd_server.ca_pem
    )

    description = await ldap.check(
        config, bind_password=slapd_server.service_password, policy=DEFAULT_POLICY
    )

    assert slapd.SERVICE_DN in description
    assert "LDAPS" in description
    assert "6 users" in description
    with pytest.raises(SsoFailed, match="refused the service account"):
        await ldap.check(config, bind_password="not-the-password", policy=DEFAULT_POLICY)
    with pytest.raises(SsoFailed, match="no password set"):
        await ldap.check(config, bind_password=None, policy=DEFAULT_POLICY)


async def test_the_service_password_is_never_in_any_output(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_service_password = canary.remember("ldap-wrong-service-pw-9", "a wrong bind password")
    good = await ldap_provider(admin.tenant_id, name="Good")
    bad = await ldap_provider(admin.tenant_id, name="Bad", secret=wrong_service_password)

    answers = [
        await ldap_login(client, good, "alice", slapd_server.passwords["alice"]),
        await ldap_login(client, good, "alice", "wrong-password-for-alice"),
        await ldap_login(client, bad, "alice", slapd_server.passwords["alice"]),
    ]

    assert [answer.status_code for answer in answers] == [200, 401, 401]
    assert "refused Shipyard's service account" in answers[2].json()["error"]["message"]
    secrets = (
        slapd_server.service_password,
        wrong_service_password,
        slapd_server.passwords["alice"],
    )
    texts = [answer.text for answer in answers] + [caplog.text]
    texts += [str(row.details) for row in await audit_rows(db, "sso.login")]
    for text in texts:
        for secret in secrets:
            assert secret not in text
