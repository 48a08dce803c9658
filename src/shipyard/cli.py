"""The ``shipyard`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.text import Text

from shipyard import __version__
from shipyard.client import exits
from shipyard.client.commands import (
    ApiTyper,
    LocalTyper,
    OutputOption,
    ProfileOption,
    TokenOption,
    UrlOption,
    VerboseOption,
    set_root_options,
)
from shipyard.client.output import emit
from shipyard.config import Settings, get_settings
from shipyard.errors import ShipyardError
from shipyard.logs import configure_logging

if TYPE_CHECKING:
    from shipyard.db import DatabaseUrls
    from shipyard.schema import SchemaStatus

app = ApiTyper(
    help="Shipyard: a self-hosted deployment control plane.",
    epilog=exits.HELP,
    no_args_is_help=True,
)
# The local commands (database, users, keys, backups) work on this machine's configuration,
# not through the API: they take -o and -v only.
db_app = LocalTyper(help="Database schema.", no_args_is_help=True)
user_app = LocalTyper(help="User accounts.", no_args_is_help=True)
secrets_app = LocalTyper(help="Secrets at rest.", no_args_is_help=True)
# backup and restore, added to the root's commands where they are defined (below).
local_app = LocalTyper()
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(secrets_app, name="secrets")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def fail(message: str, code: int = 1) -> None:
    """Print one clear line and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def run_guarded(action: Callable[[], T]) -> T:
    """Run ``action``, turning expected failures into one line and a non-zero exit."""
    try:
        return action()
    except typer.Exit:
        raise  # a RuntimeError to Python: the action's own fail(), already said in one line
    except ShipyardError as exc:
        fail(exc.message)
    except (OSError, ValueError, RuntimeError) as exc:
        fail(str(exc) or type(exc).__name__)
    except Exception as exc:
        if type(exc).__module__.startswith(("psycopg", "sqlalchemy")):
            fail(f"database error: {str(exc).splitlines()[0]}")
        raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def database_urls(settings: Settings) -> Iterator[DatabaseUrls]:
    """The owner's and the serving login's URLs; the embedded server runs around them."""
    # Imported here: SQLAlchemy and the database layer are half of an API command's start-up
    # (about 2 s of 4.5 on a slow machine), and only the local commands need them.
    from shipyard.db import EmbeddedPostgres, resolve_database_urls

    urls, embedded = resolve_database_urls(settings)
    try:
        yield urls
    finally:
        if isinstance(embedded, EmbeddedPostgres):
            embedded.stop()


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The owner's URL (migrations, maintenance); the embedded server runs around it."""
    with database_urls(settings) as urls:
        yield urls.owner


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
    output: OutputOption = None,
    verbose: VerboseOption = 0,
    profile: ProfileOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Each command also takes -o, -v, --profile, --url and --token after its name."""
    # Third-party loggers (asyncssh commands, httpx URLs, job chatter) stay at WARNING unless
    # SHIPYARD_LOG_LEVEL=debug; every line in the SHIPYARD_LOG_FORMAT format: see shipyard.logs.
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    set_root_options(output=output, verbose=verbose, profile=profile, url=url, token=token)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from shipyard import schema

    def action() -> None:
        with database_url(get_settings()) as url:
            schema.upgrade(url, revision)
            state = schema.status(url)
        emit(_schema_state(state), table=lambda: f"database at revision {state.current}")

    run_guarded(action)


def _schema_state(state: SchemaStatus) -> dict[str, Any]:
    return {"current": state.current, "head": state.head, "up_to_date": state.is_current}


@db_app.command("status")
def db_status() -> None:
    """Say which migration the database is at and whether it is current (exit 1 if behind).

    -o json: {"current", "head", "up_to_date"}."""
    from shipyard import schema

    def action() -> None:
        with database_url(get_settings()) as url:
            state = schema.status(url)
        lines = [
            f"current: {state.current or 'empty (no migrations applied)'}",
            f"head:    {state.head}",
        ]
        if state.is_current:
            lines.append("database is up to date")
        emit(_schema_state(state), table=lambda: "\n".join(lines))
        if not state.is_current:
            fail("database is behind; run `shipyard db upgrade`")

    run_guarded(action)


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="E-mail address used to log in.")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from standard input (for scripts); otherwise it is asked for.",
        ),
    ] = False,
    full_name: Annotated[str | None, typer.Option("--name", help="Full name.")] = None,
    tenant_name: Annotated[
        str | None, typer.Option(help="Name of a new tenant (default: the e-mail).")
    ] = None,
    tenant_id: Annotated[
        str | None, typer.Option(help="Add the user to this existing tenant.")
    ] = None,
    role: Annotated[
        str, typer.Option(help="Role in an existing tenant: admin, developer, viewer.")
    ] = "developer",
) -> None:
    """Create a user: the admin of a new tenant, or a member of an existing one.

    -o json: the new user's profile, as GET /api/v1/me shows it."""
    from shipyard import schema
    from shipyard.accounts.flows import create_user_cli
    from shipyard.accounts.models import ROLES
    from shipyard.accounts.schemas import MeRead
    from shipyard.accounts.service import normalise_email
    from shipyard.runtime import open_runtime

    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}")
    # Never an option's value: a password on the command line shows in process lists and history.
    secret = (
        sys.stdin.readline().rstrip("\r\n") if password_stdin else getpass.getpass("Password: ")
    )
    if len(secret) < 8:
        fail("the password must have at least 8 characters")
    try:
        parsed_tenant = UUID(tenant_id) if tenant_id else None
    except ValueError:
        fail("--tenant-id is not a UUID")
        return

    async def create(url: str) -> Any:
        async with open_runtime(get_settings(), database_url=url, pool_size=1) as runtime:
            return await create_user_cli(
                runtime=runtime,
                email=email,
                password=secret,
                full_name=full_name,
                tenant_name=tenant_name,
                tenant_id=parsed_tenant,
                role=role,
            )

    def action() -> None:
        with database_url(get_settings()) as url:
            if not schema.status(url).is_current:
                fail("database is behind; run `shipyard db upgrade`")
            profile = asyncio.run(create(url))
        created = MeRead(
            id=profile.id,
            email=normalise_email(email),
            full_name=full_name,
            avatar_url=profile.avatar_url,
            role=profile.role,
            tenant_id=profile.tenant_id,
            tenant_name=profile.tenant_name,
        )
        emit(
            created.model_dump(mode="json"),
            table=lambda: f"created {email} ({profile.role}) in tenant {profile.tenant_id}",
        )

    run_guarded(action)


@secrets_app.command("rotate-key")
def secrets_rotate_key(
    new_key: Annotated[
        str | None, typer.Option(help="Use this Fernet key instead of a generated one.")
    ] = None,
) -> None:
    """Re-encrypt every stored secret with a new key and retire the old ones.

    -o json: {"values_rotated", "key_file", "new_secret_key"}: the new key only when it must be
    copied into SHIPYARD_SECRET_KEY (the key file holds it otherwise), else null."""
    from shipyard.crypto import Keyring
    from shipyard.rotation import rotate_key

    if new_key is not None:
        try:
            Keyring([new_key])
        except ValueError as exc:
            fail(str(exc))

    def action() -> None:
        settings = get_settings()
        with database_url(settings) as url:
            result = rotate_key(settings, url, new_key)
        lines = [f"re-encrypted {result.values_rotated} secret values with the new key"]
        if result.key_file:
            lines.append(f"key file {result.key_file} now holds only the new key")
        else:
            lines += [
                "SHIPYARD_SECRET_KEY is set in the environment: replace it with the new key:",
                result.new_key,
            ]
        emit(
            {
                "values_rotated": result.values_rotated,
                "key_file": result.key_file,
                "new_secret_key": None if result.key_file else result.new_key,
            },
            table=lambda: Text("\n".join(lines)),
        )

    run_guarded(action)


@local_app.command("backup")
def backup_command(
    file: Annotated[Path, typer.Argument(help="Archive to write (tar.gz, mode 0600).")],
    include_env_key: Annotated[
        bool,
        typer.Option(
            "--include-env-key",
            help="Also store SHIPYARD_SECRET_KEY's keys in the archive (left out by default).",
        ),
    ] = False,
) -> None:
    """Write one archive: a consistent dump of the database, the secret keys, a manifest.

    -o json: {"path", "manifest"} (the manifest stored in the archive)."""
    from shipyard.backup import backup

    def action() -> None:
        settings = get_settings()
        with database_url(settings) as url:
            result = backup(
                settings=settings,
                database_url=url,
                destination=file,
                include_env_key=include_env_key,
            )
        keys = result.manifest["keys"]
        lines = [
            f"wrote {result.path} (database {result.manifest['database']} at revision "
            f"{result.manifest['migration_head']})",
            "the archive holds the secret keys: keep it as safe as they are"
            if keys["included"]
            else "the keys come from SHIPYARD_SECRET_KEY and are NOT in the archive: keep that "
            "value (or pass --include-env-key); without it the secrets cannot be restored",
        ]
        emit(
            {"path": str(result.path), "manifest": result.manifest},
            table=lambda: Text("\n".join(lines)),
        )

    run_guarded(action)


@local_app.command("restore")
def restore_command(
    file: Annotated[Path, typer.Argument(help="Archive written by `shipyard backup`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a non-empty database and a different existing key file."
        ),
    ] = False,
    sample: Annotated[
        int, typer.Option(min=1, help="Encrypted values tried per column after restoring.")
    ] = 20,
) -> None:
    """Restore an archive into the configured database and data dir, then check the keys.

    -o json: {"source", "manifest", "key_file", "notes", "checks": [{table, column, checked,
    failed}], "secrets_ok"}; exit 1 when the keys do not decrypt the restored secrets."""
    from shipyard.backup import restore

    def action() -> None:
        settings = get_settings()
        with database_url(settings) as url:
            result = restore(
                settings=settings, database_url=url, source=file, force=force, sample=sample
            )
        checked = sum(check.checked for check in result.checks)
        failed = [check for check in result.checks if check.failed]
        lines = [
            f"restored {file} (written {result.manifest['created_at']} by shipyard "
            f"{result.manifest['shipyard_version']})"
        ]
        if result.key_file is not None:
            lines.append(f"installed the key file {result.key_file}")
        lines += [f"note: {remark}" for remark in result.notes]
        if not failed:
            lines.append(
                f"secrets check: {checked} encrypted values decrypt with the keys"
                if checked
                else "secrets check: no encrypted values are stored yet"
            )
        emit(
            {
                "source": str(file),
                "manifest": result.manifest,
                "key_file": str(result.key_file) if result.key_file is not None else None,
                "notes": result.notes,
                "checks": [dataclasses.asdict(check) for check in result.checks],
                "secrets_ok": not failed,
            },
            table=lambda: Text("\n".join(lines)),
        )
        if failed:
            for check in failed:
                err_console.print(
                    f"{check.table}.{check.column}: {check.failed} of {check.checked} "
                    "values cannot be decrypted",
                    highlight=False,
                )
            fail(
                "the keys do not decrypt the restored secrets: install the right key file "
                "or set SHIPYARD_SECRET_KEY, then restore again with --force"
            )

    run_guarded(action)


app.registered_commands.extend(local_app.registered_commands)

POOL_OPTION = typer.Option(
    "--pool",
    help="Also run the jobs of this worker pool (repeat or comma-separate; default: "
    "SHIPYARD_WORKER_POOLS). Hosts without a pool run on any worker.",
)


def with_pools(settings: Settings, pools: list[str] | None) -> Settings:
    """``settings`` with the pools given by --pool (which replace SHIPYARD_WORKER_POOLS)."""
    from shipyard.hosts.schemas import check_pool
    from shipyard.worker import parse_pools

    names = parse_pools(pools or settings.worker_pools)
    for name in names:
        try:
            check_pool(name)  # the rule hosts and groups name their pool by
        except ValueError as exc:
            fail(f"{'--pool' if pools else 'SHIPYARD_WORKER_POOLS'}: {exc}")
    return settings.model_copy(update={"worker_pools": ",".join(names)})


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a job worker in-process.")
    ] = True,
    concurrency: Annotated[int | None, typer.Option(help="In-process worker concurrency.")] = None,
    pool: Annotated[list[str] | None, POOL_OPTION] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Server processes sharing the port (one per core; the first runs the worker).",
        ),
    ] = 1,
    listen_fd: Annotated[int | None, typer.Option("--listen-fd", hidden=True)] = None,
) -> None:
    """Upgrade the database, then serve the API and web UI (with a worker unless --no-worker)."""
    from shipyard.server import serve_forever, serve_processes

    settings = with_pools(get_settings(), pool)

    def action() -> None:
        with database_urls(settings) as urls:
            from shipyard import schema

            if listen_fd is None:
                # A child of `--workers` skips this: its parent has upgraded the schema.
                schema.upgrade(urls.owner)
            if workers > 1 and listen_fd is None:
                code = serve_processes(
                    database_url=urls.owner,
                    app_database_url=urls.app,
                    host=host or settings.host,
                    port=port or settings.port,
                    processes=workers,
                    with_worker=worker,
                    concurrency=concurrency or settings.worker_concurrency,
                )
                if code:
                    raise typer.Exit(code)
                return
            # serve_forever refuses to start unless row-level security binds requests.
            asyncio.run(
                serve_forever(
                    settings=settings,
                    database_url=urls.serving,
                    system_database_url=urls.owner,
                    host=host or settings.host,
                    port=port or settings.port,
                    with_worker=worker,
                    concurrency=concurrency or settings.worker_concurrency,
                    listen_fd=listen_fd,
                )
            )

    run_guarded(action)


@app.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once by this worker.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name shown in logs.")] = None,
    pool: Annotated[list[str] | None, POOL_OPTION] = None,
) -> None:
    """Run a job worker against the configured database (start several to scale out)."""
    from shipyard import schema
    from shipyard.server import work_forever

    settings = with_pools(get_settings(), pool)

    def action() -> None:
        with database_urls(settings) as urls:
            if not schema.status(urls.owner).is_current:
                fail("database is behind; run `shipyard db upgrade`")
            asyncio.run(
                work_forever(
                    settings=settings,
                    database_url=urls.serving,
                    system_database_url=urls.owner,
                    concurrency=concurrency or settings.worker_concurrency,
                    name=name,
                )
            )

    run_guarded(action)


def _register_domain_commands() -> None:
    from shipyard.approvals.cli import app as approvals_app
    from shipyard.audit.cli import app as audit_app
    from shipyard.cicd.cli import app as cicd_app
    from shipyard.client.login_cli import login, logout, profiles_app
    from shipyard.deployments.cli import app as deploy_app
    from shipyard.deployments.retention_cli import app as logs_app
    from shipyard.freeze.cli import app as freeze_app
    from shipyard.git.cli import providers_app as git_providers_app
    from shipyard.git.cli import repos_app
    from shipyard.hosts.cli import app as hosts_app
    from shipyard.hosts.inventory_cli import groups_app, inventory_app
    from shipyard.notifications.cli import app as notifications_app
    from shipyard.schedules.cli import app as schedules_app
    from shipyard.sso.cli import app as sso_app
    from shipyard.templates.cli import app as templates_app
    from shipyard.templates.cli import run_template
    from shipyard.webhooks.cli import app as webhooks_app

    app.add_typer(hosts_app, name="hosts")
    app.add_typer(repos_app, name="repos")
    app.add_typer(git_providers_app, name="providers")
    app.add_typer(groups_app, name="groups")
    app.add_typer(inventory_app, name="inventory")
    app.add_typer(deploy_app, name="deploy")
    app.add_typer(logs_app, name="logs")
    app.add_typer(cicd_app, name="cicd")
    app.add_typer(templates_app, name="templates")
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(notifications_app, name="notifications")
    app.add_typer(approvals_app, name="approvals")
    app.add_typer(freeze_app, name="freeze-windows")
    app.add_typer(audit_app, name="audit")
    app.add_typer(sso_app, name="sso")
    app.command("run")(run_template)
    app.command("login")(login)
    app.command("logout")(logout)
    app.add_typer(profiles_app, name="profiles")


_register_domain_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
