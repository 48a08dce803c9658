"""The directory settings an admin may store: LdapConfig.from_config names the field it refuses
(the SSO service turns that into a 422)."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.sso.ldap import LdapConfig, LdapConfigError

BASE: dict[str, Any] = {
    "url": "ldaps://ldap.example.org",
    "bind_dn": "cn=shipyard,ou=services,dc=example,dc=org",
    "user_base": "ou=people,dc=example,dc=org",
    "group_base": "ou=groups,dc=example,dc=org",
}


def test_defaults_and_normalisation() -> None:
    config = LdapConfig.from_config({**BASE, "group_search": "memberof", "group_base": None})

    assert config.host == "ldap.example.org"
    assert config.port == 636
    assert config.use_ssl
    assert config.group_search == "memberOf"
    assert config.user_filter == "(&(objectClass=inetOrgPerson)(uid={username}))"
    assert LdapConfig.from_config({**BASE, "url": "ldap://dc1.corp:3268"}).port == 3268


def test_member_search_without_a_group_base_searches_the_directory_suffix() -> None:
    config = LdapConfig.from_config({**BASE, "group_base": None})
    active_directory = LdapConfig.from_config(
        {**BASE, "group_base": None, "user_base": "OU=Staff\\, HQ,DC=corp,DC=example,DC=com"}
    )
    no_dc = LdapConfig.from_config({**BASE, "group_base": None, "user_base": "o=Example"})

    assert config.group_base == "dc=example,dc=org"
    assert active_directory.group_base == "DC=corp,DC=example,DC=com"
    assert no_dc.group_base == "o=Example"


def test_active_directory_settings() -> None:
    config = LdapConfig.from_config(
        {
            **BASE,
            "url": "ldap://dc1.corp.example",
            "start_tls": True,
            "bind_dn": "svc-shipyard@corp.example",
            "user_filter": "(&(objectClass=user)(sAMAccountName={username}))",
            "group_search": "memberOf",
            "group_base": None,
        }
    )

    assert config.start_tls and not config.use_ssl
    assert config.port == 389


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "http://ldap.example.org"}, "url"),
        ({"url": "ldap://"}, "url"),
        ({"url": "ldap://ldap.example.org/dc=example,dc=org"}, "url"),
        ({"url": None}, "url"),
        ({"bind_dn": ""}, "bind_dn"),
        ({"user_base": None}, "user_base"),
        ({"user_filter": "(uid=%s)"}, "user_filter"),
        ({"user_filter": "uid={username}"}, "user_filter"),
        ({"user_filter": "(&(uid={username})"}, "user_filter"),
        ({"start_tls": "yes"}, "start_tls"),
        ({"start_tls": True}, "start_tls"),  # ldaps:// already
        ({"group_search": "nested"}, "group_search"),
        ({"group_filter": "objectClass=group"}, "group_filter"),
        ({"email_attribute": "mail; drop"}, "email_attribute"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 121}, "timeout_seconds"),
        ({"timeout_seconds": "10"}, "timeout_seconds"),
        ({"ca_certificate": "not a certificate"}, "ca_certificate"),
        (
            {"ca_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "ca_certificate",
        ),
        ({"bind_password": "oops"}, "bind_password"),  # secrets are not settings
    ],
)
def test_refusals_name_the_field(change: dict[str, Any], field: str) -> None:
    config = {key: value for key, value in {**BASE, **change}.items() if value is not None}

    with pytest.raises(ValueError, match=f"^{field}: ") as raised:
        LdapConfig.from_config(config)

    assert isinstance(raised.value, LdapConfigError)
    assert raised.value.field == field
    assert "oops" not in str(raised.value)
