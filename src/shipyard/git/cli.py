"""``shipyard repos`` and ``shipyard providers``: Git repositories and the Git providers they
come from, through the REST API.

Templates and deployments take a repository and its scripts by id: these commands find them.
Repositories are named by name, ``owner/name``, URL or id; providers by login, display name or
id. ``-o json`` prints the API's objects. A provider's access token is read from standard input,
never from an option.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import (
    ApiTyper,
    api_client,
    fail,
    name_argument,
    name_option,
    resolve,
)
from shipyard.client.output import emit, note

repos_app = ApiTyper(
    no_args_is_help=True,
    help="Git repositories: list, show, add by URL, sync, branches and runnable scripts.",
)
providers_app = ApiTyper(
    no_args_is_help=True,
    help="Git providers (GitHub, GitLab, Gitea accounts): list, show, add, sync, delete.",
)

SYNC_POLL_SECONDS = 0.5
FINISHED_SYNC_STATUSES = ("synced", "error")

RepositoryArgument = Annotated[
    str,
    name_argument(names.REPOSITORY, "Repository: name, owner/name, URL or ID."),
]
ProviderArgument = Annotated[
    str,
    name_argument(names.GIT_PROVIDER, "Git provider: its login, display name or ID."),
]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until the sync has finished.")
]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait with --wait.")]


def _yes(value: Any) -> str:
    return "yes" if value else ""


def repositories_table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("ID", "Repository", "Source", "Default branch", "Private", "Pinned", "Sync"):
        table.add_column(column, overflow="fold")
    for repo in rows:
        table.add_row(
            repo["id"],
            repo["full_name"],
            repo.get("provider_type") or "",
            repo.get("default_branch") or "",
            _yes(repo.get("is_private")),
            _yes(repo.get("is_pinned")),
            (repo.get("sync_status") or "") + (f": {repo['error']}" if repo.get("error") else ""),
        )
    return table


def providers_table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("ID", "Type", "Login", "Display name", "Server", "Repos", "Sync", "Synced"):
        table.add_column(column, overflow="fold")
    for provider in rows:
        table.add_row(
            provider["id"],
            provider["type"],
            provider.get("name") or "",
            provider.get("display_name") or "",
            provider.get("server_url") or "",
            str(provider.get("repository_count", "")),
            (provider.get("sync_status") or "")
            + (f": {provider['error']}" if provider.get("error") else ""),
            (provider.get("last_synced") or "never")[:19].replace("T", " "),
        )
    return table


# Repositories


@repos_app.command("list")
def list_repositories(
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Text in the name or owner.")
    ] = None,
    provider: Annotated[
        str | None,
        name_option(
            names.GIT_PROVIDER, "Only this provider's repositories (name or ID).", metavar=None
        ),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--type", help="github, gitlab, gitea or url.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Only this language.")] = None,
    pinned: Annotated[bool, typer.Option("--pinned", help="Only your pinned ones.")] = False,
) -> None:
    """List the tenant's repositories: your pinned ones first, then by owner/name."""
    with api_client() as api:
        provider_id = resolve(api, names.GIT_PROVIDER, provider) if provider else None
        rows = list(
            api.paginate(
                "/repositories",
                limit=200,
                q=search,
                provider_id=provider_id,
                provider_type=source,
                language=language,
                pinned="true" if pinned else None,
            )
        )
    emit(rows, table=lambda: repositories_table(rows) if rows else "no repositories")


@repos_app.command("show")
def show_repository(repository: RepositoryArgument) -> None:
    """Show one repository: source, URLs, default branch, sync state."""
    with api_client() as api:
        found = api.get(f"/repositories/{resolve(api, names.REPOSITORY, repository)}")
    emit(found)


@repos_app.command("add")
def add_repository(
    url: Annotated[str, typer.Argument(help="Clone URL of a public repository.")],
    name: Annotated[str | None, typer.Option(help="Name (default: from the URL).")] = None,
    description: Annotated[str | None, typer.Option(help="What it holds.")] = None,
) -> None:
    """Add a public repository by its clone URL (private ones come through a provider)."""
    body: dict[str, Any] = {"url": url}
    if name is not None:
        body["name"] = name
    if description is not None:
        body["description"] = description
    with api_client() as api:
        created = api.post("/repositories", body)
    emit(created, table=lambda: repositories_table([created]))


@repos_app.command("delete")
def delete_repository(repository: RepositoryArgument) -> None:
    """Remove a repository added by URL. -o json: {"id", "name", "deleted": true}."""
    with api_client() as api:
        found = api.get(f"/repositories/{resolve(api, names.REPOSITORY, repository)}")
        api.delete(f"/repositories/{found['id']}")
    emit(
        {"id": found["id"], "name": found["full_name"], "deleted": True},
        table=lambda: f"deleted repository {found['full_name']}",
    )


@repos_app.command("sync")
def sync_repository(
    repository: RepositoryArgument, wait: WaitOption = False, timeout: TimeoutOption = 300.0
) -> None:
    """Sync the provider a repository comes from (its branches, and the provider's other
    repositories). A repository added by URL is read live at each use: nothing to sync.

    -o json: {"sync": {provider_id, sync_status, queued}, "provider": {...}}."""
    with api_client() as api:
        found = api.get(f"/repositories/{resolve(api, names.REPOSITORY, repository)}")
        if not found.get("provider_id"):
            fail(
                f"{found['full_name']} was added by URL: Shipyard reads it from its URL at "
                "each use, there is nothing to sync",
                exits.USAGE,
            )
        _sync(api, found["provider_id"], wait=wait, timeout=timeout)


@repos_app.command("branches")
def list_branches(repository: RepositoryArgument) -> None:
    """List a repository's branches (the default one marked)."""
    with api_client() as api:
        rows = api.get(f"/repositories/{resolve(api, names.REPOSITORY, repository)}/branches")

    def table() -> Table:
        shown = Table("Branch", "Commit", "Default", "Protected")
        for branch in rows:
            shown.add_row(
                branch["name"],
                (branch.get("commit_sha") or "")[:12],
                _yes(branch.get("is_default")),
                _yes(branch.get("protected")),
            )
        return shown

    emit(rows, table=table)


@repos_app.command("scripts")
def list_scripts(
    repository: RepositoryArgument,
    ref: Annotated[
        str | None, typer.Option(help="Branch, tag or commit (default: the default branch).")
    ] = None,
) -> None:
    """The runnable scripts at a ref: their ids are what deployments and templates take."""
    with api_client() as api:
        repository_id = resolve(api, names.REPOSITORY, repository)
        catalogue = api.get(f"/repositories/{repository_id}/scripts", ref=ref)

    def table() -> Table:
        shown = Table("ID", "Path", "Kind", "Executable", title=f"scripts at {catalogue['ref']}")
        for script in catalogue["scripts"]:
            shown.add_row(
                script["id"], script["path"], script["kind"], _yes(script.get("executable"))
            )
        return shown

    emit(catalogue, table=table)


# Providers


@providers_app.command("list")
def list_providers() -> None:
    """List the Git providers connected to the tenant."""
    with api_client() as api:
        rows = list(api.paginate("/git-providers", limit=200))
    emit(rows, table=lambda: providers_table(rows) if rows else "no Git providers")


@providers_app.command("show")
def show_provider(provider: ProviderArgument) -> None:
    """Show one Git provider: server, login, repositories, last sync and its error."""
    with api_client() as api:
        found = api.get(f"/git-providers/{resolve(api, names.GIT_PROVIDER, provider)}")
    emit(found)


@providers_app.command("add")
def add_provider(
    provider_type: Annotated[str, typer.Argument(metavar="TYPE", help="github, gitlab or gitea.")],
    token_stdin: Annotated[
        bool,
        typer.Option(
            "--token-stdin", help="Read the personal access token from standard input (required)."
        ),
    ] = False,
    server_url: Annotated[
        str | None,
        typer.Option(help="The server, for a self-hosted one (default: the public service)."),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown for it.")] = None,
) -> None:
    """Connect a provider with a personal access token (checked against the provider; a first
    sync of its repositories is queued)."""
    if not token_stdin:
        fail(
            "give --token-stdin and the access token on standard input (never as an option)",
            exits.USAGE,
        )
    token = sys.stdin.readline().strip()
    if not token:
        fail("--token-stdin: standard input held no token", exits.USAGE)
    body: dict[str, Any] = {"type": provider_type, "access_token": token}
    if server_url is not None:
        body["server_url"] = server_url
    if display_name is not None:
        body["display_name"] = display_name
    with api_client() as api:
        created = api.post("/git-providers", body)
    emit(created, table=lambda: providers_table([created]))


@providers_app.command("sync")
def sync_provider(
    provider: ProviderArgument, wait: WaitOption = False, timeout: TimeoutOption = 300.0
) -> None:
    """Queue a sync of a provider's repositories (--wait: until it has finished).

    -o json: {"sync": {provider_id, sync_status, queued}, "provider": {...}}."""
    with api_client() as api:
        _sync(api, resolve(api, names.GIT_PROVIDER, provider), wait=wait, timeout=timeout)


@providers_app.command("delete")
def delete_provider(provider: ProviderArgument) -> None:
    """Disconnect a provider: its repositories and their pins are removed.
    -o json: {"id", "name", "deleted": true}."""
    with api_client() as api:
        found = api.get(f"/git-providers/{resolve(api, names.GIT_PROVIDER, provider)}")
        api.delete(f"/git-providers/{found['id']}")
    label = found.get("display_name") or found.get("name") or found["id"]
    emit(
        {"id": found["id"], "name": found.get("name"), "deleted": True},
        table=lambda: f"disconnected Git provider {label}",
    )


def _sync(api: ApiClient, provider_id: str, *, wait: bool, timeout: float) -> None:
    queued = api.post(f"/git-providers/{provider_id}/sync")
    provider = api.get(f"/git-providers/{provider_id}")
    label = provider.get("display_name") or provider.get("name") or provider_id
    message = (
        f"sync of {label} queued" if queued["queued"] else f"a sync of {label} is already waiting"
    )
    if wait:
        note(message)
        provider = _wait_for_sync(api, provider_id, timeout)
        if provider["sync_status"] == "error":
            emit({"sync": queued, "provider": provider}, table=lambda: None)
            fail(f"the sync of {label} failed: {provider.get('error') or 'no reason given'}")
        message = f"{label} synced: {provider.get('repository_count', 0)} repositories"
    emit({"sync": queued, "provider": provider}, table=lambda: message)


def _wait_for_sync(api: ApiClient, provider_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        provider: dict[str, Any] = api.get(f"/git-providers/{provider_id}")
        if provider.get("sync_status") in FINISHED_SYNC_STATUSES:
            return provider
        time.sleep(SYNC_POLL_SECONDS)
    fail(f"the sync did not finish within {timeout:g} s (is a worker running?)")
