"""Address, user and fingerprint rules of the hosts API."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipyard.hosts.executor import HostTarget
from shipyard.hosts.schemas import HostCreate, check_address, check_fingerprint


def test_addresses() -> None:
    assert check_address("192.168.1.10") == "192.168.1.10"
    assert check_address("[::1]") == "::1"
    assert check_address("Web-1.Example.com.") == "Web-1.Example.com"
    for bad in ("", "two words", "-lead.example", "a..b", "x" * 64, "under_score.example"):
        with pytest.raises(ValueError):
            check_address(bad)


def test_fingerprints() -> None:
    good = "SHA256:" + "a" * 43
    assert check_fingerprint(good + "=") == good
    for bad in ("a" * 43, "SHA256:" + "a" * 42, "MD5:" + "a" * 43, "SHA256:" + "!" * 43):
        with pytest.raises(ValueError):
            check_fingerprint(bad)


def test_create_rejects_unknown_fields_and_bad_users() -> None:
    with pytest.raises(ValidationError):
        HostCreate.model_validate({"name": "a", "colour": "red"})
    with pytest.raises(ValidationError):
        HostCreate.model_validate({"name": "a", "user": "bad:user"})
    assert HostCreate.model_validate({"name": " a ", "user": "CORP\\deploy"}).name == "a"


def test_target_repr_hides_credentials() -> None:
    target = HostTarget(
        address="h", user="u", password="pw-secret", private_key="KEY-secret", passphrase="pp"
    )
    assert "secret" not in repr(target) and "pp" not in repr(target)
    assert target.label == "u@h:22" and target.cap_key == ("ssh", "h", 22)
