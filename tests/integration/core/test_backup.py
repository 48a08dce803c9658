"""Backup and restore: one archive round-trips hosts, deployments, logs and working secrets."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from shipyard import schema
from shipyard.backup import backup, restore, target_for
from shipyard.config import Settings
from shipyard.crypto import key_file_path, load_keyring, read_key_file, write_key_file
from shipyard.db import Database, to_libpq_url
from shipyard.deployments.models import Deployment, DeploymentLog
from shipyard.errors import Conflict
from shipyard.git.models import GitProvider
from shipyard.hosts.models import Host
from tests.support import canary
from tests.support.api import Account
from tests.support.postgres import PostgresForTests
from tests.support.seed import PLAINTEXT, SeededTenant, seed_tenant
from tests.support.sshd import free_port

# Debian's PostgreSQL server (`make system-deps`): an external, older server than the embedded 18.
DEBIAN_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
OWNER_PASSWORD = "owner-of-the-external-db"
# Exactly the grants docs/deploying.md gives a non-superuser owner.
EXTERNAL_ROLES = f"""
CREATE ROLE shipyard_owner LOGIN PASSWORD '{OWNER_PASSWORD}'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE shipyard_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
GRANT shipyard_app TO shipyard_owner;
CREATE DATABASE shipyard OWNER shipyard_owner;
REVOKE ALL ON DATABASE shipyard FROM PUBLIC;
"""


@pytest.fixture
async def seeded(db: Database, admin: Account) -> SeededTenant:
    return await seed_tenant(db, tenant_id=admin.tenant_id, profile_id=admin.user_id)


def file_settings(data_dir: Path) -> Settings:
    """Settings whose keys come from ``data_dir``'s key file, as an install without the env key."""
    return Settings(environment="test", data_dir=data_dir, secret_key=None, database_url=None)


def shipyard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "SHIPYARD_SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    canary.save_output("shipyard", result.stdout, result.stderr)
    return result


@pytest.fixture
def fresh_url(postgres: PostgresForTests) -> object:
    url = postgres.create_empty_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def external_url() -> Iterator[str]:
    """Debian's PostgreSQL on a loopback port, with a database owned by a non-superuser."""
    if not DEBIAN_BINARIES:
        pytest.skip("no Debian PostgreSQL server: `make system-deps` installs it")
    bin_dir = DEBIAN_BINARIES[-1].parent
    # Not under pytest's tmp_path: the postgres user must reach it (and the socket path is short).
    root = Path(tempfile.mkdtemp(prefix="sy-ext-", dir="/tmp"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=60)

    # The superuser over the socket without a password; Shipyard over TCP with one (SCRAM).
    run(
        str(bin_dir / "initdb"),
        *("-D", str(root / "data"), "-U", "postgres"),
        *("--auth-local=trust", "--auth-host=scram-sha-256"),
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(root / "data")]
    run(*pg_ctl, "-w", "-l", str(root / "log"), "-o", options, "start")
    try:
        with psycopg.connect(host=str(root), port=port, user="postgres", dbname="postgres") as conn:
            conn.autocommit = True
            for statement in EXTERNAL_ROLES.split(";"):
                if statement.strip():
                    conn.execute(statement)
        yield f"postgresql://shipyard_owner:{OWNER_PASSWORD}@127.0.0.1:{port}/shipyard"
    finally:
        run(*pg_ctl, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


async def test_round_trip_into_a_fresh_database_and_data_dir(
    seeded: SeededTenant,
    database_url: str,
    settings: Settings,
    fresh_url: str,
    tmp_path: Path,
) -> None:
    source_dir = tmp_path / "source"
    # The session's keys, kept in a key file: the install the archive comes from.
    write_key_file(key_file_path(source_dir), list(load_keyring(settings).keys))
    archive = tmp_path / "backups" / "shipyard.tar.gz"

    made = backup(
        settings=file_settings(source_dir), database_url=database_url, destination=archive
    )

    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["database.dump", "manifest.json", "secret.keys"]
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.loads(member.read())
    assert manifest == made.manifest
    assert manifest["migration_head"] == schema.head_revision()
    assert manifest["keys"] == {"included": True, "source": "file"}
    assert manifest["database"] == target_for(database_url).database
    assert manifest["server_version"].startswith("18")

    target_dir = tmp_path / "target"
    restored = restore(settings=file_settings(target_dir), database_url=fresh_url, source=archive)

    assert restored.secrets_ok and sum(c.checked for c in restored.checks) >= 8
    assert read_key_file(key_file_path(target_dir)) == read_key_file(key_file_path(source_dir))
    assert stat.S_IMODE(key_file_path(target_dir).stat().st_mode) == 0o600
    assert schema.status(fresh_url).is_current
    # Through the app, with the restored key file: same rows, secrets decrypt.
    again = Database(fresh_url, keyring=load_keyring(file_settings(target_dir)), pool_size=2)
    try:
        async with again.session(tenant_id=seeded.tenant_id) as session:
            host = await session.get(Host, seeded.host_id)
            provider = await session.get(GitProvider, seeded.git_provider_id)
            deployment = await session.get(Deployment, seeded.deployment_id)
            logs = await session.scalar(
                select(func.count())
                .select_from(DeploymentLog)
                .where(DeploymentLog.deployment_id == seeded.deployment_id)
            )
        assert host is not None and host.name == "web-1"
        assert host.password == PLAINTEXT["host_password"]
        assert host.private_key == PLAINTEXT["host_key"]
        assert provider is not None and provider.access_token == PLAINTEXT["git_access"]
        assert deployment is not None and deployment.status == "success"
        assert logs == 1
    finally:
        await again.dispose()
    # The serving role's grants came along: a job-queue table is usable by shipyard_app.
    with psycopg.connect(to_libpq_url(fresh_url)) as conn:
        assert conn.execute(
            "SELECT has_table_privilege('shipyard_app', 'procrastinate_jobs', 'INSERT')"
        ).fetchone() == (True,)

    # A data dir holding other keys is not overwritten without --force (checked before the
    # database is touched).
    other_dir = tmp_path / "other"
    write_key_file(key_file_path(other_dir), [Fernet.generate_key().decode()])
    with pytest.raises(Conflict, match="holds other keys"):
        restore(settings=file_settings(other_dir), database_url=fresh_url, source=archive)

    # Keys from SHIPYARD_SECRET_KEY stay out of the archive unless asked for.
    env_only = backup(
        settings=settings, database_url=database_url, destination=tmp_path / "env.tar.gz"
    )
    assert env_only.manifest["keys"] == {"included": False, "source": "environment"}
    with tarfile.open(env_only.path) as tar:
        assert "secret.keys" not in tar.getnames()


async def test_restore_refuses_a_non_empty_database_and_reports_wrong_keys(
    seeded: SeededTenant, database_url: str, fresh_url: str, tmp_path: Path
) -> None:
    # An install whose key file does not match its database: its backups cannot be restored.
    wrong_dir = tmp_path / "wrong"
    write_key_file(key_file_path(wrong_dir), [Fernet.generate_key().decode()])
    archive = tmp_path / "wrong.tar.gz"
    made = shipyard(
        "backup",
        str(archive),
        env={"SHIPYARD_DATABASE_URL": database_url, "SHIPYARD_DATA_DIR": str(wrong_dir)},
    )
    assert made.returncode == 0, made.stderr
    assert "holds the secret keys" in made.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    # The source database is not empty: nothing is touched without --force.
    with pytest.raises(Conflict, match=r"is not empty .*--force"):
        restore(settings=file_settings(wrong_dir), database_url=database_url, source=archive)

    target_dir = tmp_path / "target"
    restored = shipyard(
        "restore",
        str(archive),
        env={"SHIPYARD_DATABASE_URL": fresh_url, "SHIPYARD_DATA_DIR": str(target_dir)},
    )
    assert restored.returncode == 1, restored.stdout
    assert "hosts.password: 1 of 1 values cannot be decrypted" in restored.stderr
    assert "do not decrypt" in restored.stderr
    assert "Traceback" not in restored.stderr


async def test_embedded_archive_restores_into_an_older_external_server(
    seeded: SeededTenant, database_url: str, settings: Settings, external_url: str, tmp_path: Path
) -> None:
    """PostgreSQL 18's dump into Debian's older server, owned by a login that is no superuser."""
    source_dir = tmp_path / "source"
    write_key_file(key_file_path(source_dir), list(load_keyring(settings).keys))
    archive = backup(
        settings=file_settings(source_dir),
        database_url=database_url,
        destination=tmp_path / "embedded.tar.gz",
    ).path

    target_dir = tmp_path / "target"
    restored = restore(
        settings=file_settings(target_dir), database_url=external_url, source=archive
    )

    assert restored.secrets_ok and sum(c.checked for c in restored.checks) >= 8
    again = Database(external_url, keyring=load_keyring(file_settings(target_dir)), pool_size=2)
    try:
        async with again.session(tenant_id=seeded.tenant_id) as session:
            host = await session.get(Host, seeded.host_id)
        assert host is not None and host.password == PLAINTEXT["host_password"]
    finally:
        await again.dispose()
    # And back: the external server is dumped with its own version's tools.
    made = backup(
        settings=file_settings(target_dir),
        database_url=external_url,
        destination=tmp_path / "external.tar.gz",
    )
    major = int(made.manifest["server_version"].split(".")[0])
    assert major < 18 and made.manifest["pg_dump_version"] == major
