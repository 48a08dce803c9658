"""Secrets are ciphertext at rest, absent from every response, and survive key rotation."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from shipyard.config import Settings
from shipyard.crypto import (
    Keyring,
    SecretDecryptionError,
    load_keyring,
    reset_keyring_cache,
)
from shipyard.db import Database, to_libpq_url
from shipyard.rotation import encrypted_columns, rotate_key
from tests.integration.core.test_isolation import api_operations, concrete_url
from tests.support.api import Account
from tests.support.seed import PLAINTEXT, SeededTenant, seed_tenant


@pytest.fixture
async def seeded(db: Database, admin: Account) -> SeededTenant:
    return await seed_tenant(db, tenant_id=admin.tenant_id, profile_id=admin.user_id)


def raw_secret_values(database_url: str) -> list[str]:
    values = []
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        for table, column in encrypted_columns():
            for (value,) in conn.execute(
                f'SELECT "{column}"::text FROM {table} WHERE "{column}" IS NOT NULL'
            ):
                values.append(value)
    return values


def test_every_secret_column_is_encrypted() -> None:
    columns = set(encrypted_columns())
    for expected in [
        ("hosts", "password"),
        ("hosts", "private_key"),
        ("hosts", "private_key_passphrase"),
        ("git_providers", "access_token"),
        ("git_providers", "refresh_token"),
        ("cicd_providers", "config"),
        ("deployments", "secret_environment"),
        ("sso_providers", "secret"),
        ("sso_login_states", "code_verifier"),
    ]:
        assert expected in columns


async def test_raw_columns_hold_ciphertext_only(database_url: str, seeded: SeededTenant) -> None:
    raw = "\n".join(raw_secret_values(database_url))
    assert raw
    for plaintext in PLAINTEXT.values():
        assert plaintext not in raw
        for line in plaintext.splitlines():
            assert line not in raw


async def test_no_response_contains_a_secret(
    client: httpx.AsyncClient, admin: Account, seeded: SeededTenant
) -> None:
    checked = 0
    for method, path in api_operations():
        if method != "GET" or "oauth" in path or path.endswith("/stream") or "{type}" in path:
            continue
        if path.startswith(("/api/v1/tenant/members/", "/api/v1/auth/tokens/")):
            continue
        url = concrete_url(path, seeded)
        response = await client.get(url, headers=admin.headers)
        checked += 1
        for plaintext in PLAINTEXT.values():
            assert plaintext not in response.text, f"{path} returned a secret"
        assert "$encrypted" not in response.text and "gAAAA" not in response.text, path
    assert checked >= 10


async def test_rotation_reencrypts_everything_and_retires_old_key(
    database_url: str, seeded: SeededTenant, settings: Settings
) -> None:
    old_key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    before = raw_secret_values(database_url)
    new_key = Fernet.generate_key().decode()
    result = rotate_key(settings, database_url, new_key)
    assert result.values_rotated == len(before) >= 7
    after = raw_secret_values(database_url)
    only_new, only_old = Keyring([new_key]), Keyring([old_key])
    decrypted = []
    for value in after:
        tokens = (
            re.findall(r'"\$encrypted": "([^"]+)"', value) if value.startswith("{") else [value]
        )
        for token in tokens:
            decrypted.append(only_new.decrypt(token))
            with pytest.raises(SecretDecryptionError):
                only_old.decrypt(token)
    for plaintext in PLAINTEXT.values():
        assert any(plaintext in value for value in decrypted), plaintext


async def test_key_file_rotation_keeps_secrets_readable(
    database_url: str,
    seeded: SeededTenant,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Same data, but keys held in a key file (no SHIPYARD_SECRET_KEY): rotate, then read through the ORM.
    old_key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    file_settings = settings.model_copy(update={"secret_key": None, "data_dir": tmp_path})
    (tmp_path / "secret.keys").write_text(old_key + "\n")
    result = rotate_key(file_settings, database_url)
    assert result.key_file is not None
    keys = (tmp_path / "secret.keys").read_text().split()
    assert keys == [result.new_key]
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", result.new_key)
    from shipyard.config import get_settings

    get_settings.cache_clear()
    reset_keyring_cache()
    try:
        db = Database(database_url, keyring=load_keyring(get_settings()))
        async with db.session(tenant_id=seeded.tenant_id) as session:
            from shipyard.hosts.models import Host

            host = await session.get(Host, seeded.host_id)
            assert host is not None and host.password == PLAINTEXT["host_password"]
        await db.dispose()
        assert load_keyring(get_settings()).keys == (result.new_key,)
    finally:
        monkeypatch.setenv("SHIPYARD_SECRET_KEY", old_key)
        get_settings.cache_clear()
        reset_keyring_cache()
