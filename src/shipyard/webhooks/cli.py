"""``shipyard webhooks``: list, show, create, rotate, deliveries, register, delete.

A hook is named by its id; its template by name or id. A hook's secret is shown once, by
``create`` and ``rotate`` (``-o json``: the ``secret`` field). ``--secret-file PATH`` writes it to
a new file readable only by its owner instead (for scripts and CI logs): the output then has no
``secret`` field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiError, exits, names
from shipyard.client.commands import ApiTyper, api_client, fail, name_option, resolve
from shipyard.client.output import emit, note
from shipyard.templates.cli import TemplateArgument, find

app = ApiTyper(help="Inbound webhooks on templates.", no_args_is_help=True)

WebhookArgument = Annotated[str, typer.Argument(metavar="WEBHOOK", help="The hook's id.")]
SecretFile = Annotated[
    Path | None,
    typer.Option(
        "--secret-file",
        help="Write the secret to this new file (mode 0600) instead of printing it.",
    ),
]


def _open_secret_file(secret_file: Path | None) -> int | None:
    """Create ``secret_file`` (0600, never over an existing file) before the secret exists."""
    if secret_file is None:
        return None
    try:
        return os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        fail(f"cannot create {secret_file}: {exc.strerror}")


def _hand_over(
    answer: dict[str, Any],
    secret_file: Path | None,
    descriptor: int | None,
    registered: dict[str, Any] | None = None,
) -> None:
    """Show the URL and the secret once (or put the secret in ``secret_file``)."""
    # The API's answer ({id, url, secret, webhook}); the hook as registered, if it was.
    shown = {**answer, "webhook": registered} if registered is not None else dict(answer)
    if descriptor is not None:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(answer["secret"] + "\n")
        shown.pop("secret", None)

    def view() -> Group:
        # No wrapping: the URL and the secret are copied from the terminal as they are.
        lines = [
            Text(f"id:     {answer['id']}"),
            Text(f"url:    {answer['url']}", no_wrap=True, overflow="ignore"),
        ]
        if descriptor is not None:
            lines.append(Text(f"secret: written to {secret_file}"))
        else:
            lines.append(Text(f"secret: {answer['secret']}", no_wrap=True, overflow="ignore"))
        if registered is not None:
            lines.append(Text(f"registered at the provider (id {registered['remote_hook_id']})"))
        return Group(*lines)

    emit(shown, table=view)
    if descriptor is None:
        note("The secret is shown this once; store it now.")


def _discard(secret_file: Path | None, descriptor: int | None) -> None:
    """The request failed: remove the empty file made for its secret."""
    if descriptor is not None and secret_file is not None:
        os.close(descriptor)
        secret_file.unlink(missing_ok=True)


def webhooks_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in (
        "id",
        "template",
        "provider",
        "events",
        "branches",
        "tags",
        "paths",
        "registered",
    ):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["id"],
            item["template_id"],
            item["provider"] + (f" ({item['auth']})" if item["provider"] == "generic" else ""),
            ", ".join(item["events"]),
            ", ".join(item["branches"]) or "any",
            ", ".join(item["tags"]) or "any",
            ", ".join(item["paths"]) or "any",
            "yes" if item["remote_hook_id"] else "" if item["enabled"] else "disabled",
        )
    return table


@app.command("list")
def list_webhooks(
    template: Annotated[
        str | None,
        name_option(names.TEMPLATE, "Only this template's (name or id)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The hooks, newest first: provider, events, filters, and whether registered upstream."""
    with api_client() as api:
        template_id = resolve(api, names.TEMPLATE, template) if template else None
        page = api.get("/webhooks", limit=limit, template_id=template_id)
    items: list[dict[str, Any]] = page["items"]
    emit(items, table=lambda: webhooks_table(items))


@app.command("show")
def show(webhook: WebhookArgument) -> None:
    """One hook: its URL, provider, events, filters, parameter map (never its secret)."""
    with api_client() as api:
        item = api.get(f"/webhooks/{webhook}")
    emit(item)


@app.command("create")
def create(
    template: TemplateArgument,
    provider: Annotated[str, typer.Option(help="github, gitlab, gitea or generic.")],
    auth: Annotated[str, typer.Option(help="Generic hooks: hmac or bearer.")] = "hmac",
    event: Annotated[
        list[str] | None, typer.Option("--event", help="push, tag, release (repeat).")
    ] = None,
    branch: Annotated[list[str] | None, typer.Option("--branch", help="Glob (repeat).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Glob (repeat).")] = None,
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Changed-path glob, ** spans dirs.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--map", help="PARAMETER=dotted.path.in.payload (repeat)."),
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Also create the hook at the repository's provider.")
    ] = False,
    secret_file: SecretFile = None,
) -> None:
    """Add a trigger URL to a template; prints the URL and, once, the secret."""
    mapping: dict[str, str] = {}
    for pair in param or []:
        name, sep, where = pair.partition("=")
        if not sep:
            fail(f"--map takes PARAMETER=path, got {pair!r}", exits.USAGE)
        mapping[name] = where
    body: dict[str, Any] = {
        "provider": provider,
        "auth": auth,
        "branches": branch or [],
        "tags": tag or [],
        "paths": path or [],
        "parameter_map": mapping,
    }
    if event:
        body["events"] = event
    descriptor = _open_secret_file(secret_file)
    with api_client() as api:
        try:
            found = find(api, template)
            answer = api.post(f"/templates/{found['id']}/webhooks", body)
        except ApiError:
            _discard(secret_file, descriptor)
            raise
        registered: dict[str, Any] | None = None
        failure: ApiError | None = None
        if register:
            try:
                registered = api.post(f"/webhooks/{answer['id']}/register")
            except ApiError as exc:
                failure = exc
        # The secret exists now: hand it over even when the registration failed.
        _hand_over(answer, secret_file, descriptor, registered)
    if failure is not None:
        fail(f"created, but not registered at the provider: {failure}")


@app.command("rotate")
def rotate(webhook: WebhookArgument, secret_file: SecretFile = None) -> None:
    """A new secret (shown once); deliveries signed with the old one are refused from now on."""
    descriptor = _open_secret_file(secret_file)
    with api_client() as api:
        try:
            answer = api.post(f"/webhooks/{webhook}/rotate")
        except ApiError:
            _discard(secret_file, descriptor)
            raise
    _hand_over(answer, secret_file, descriptor)


def deliveries_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("received", "event", "verdict", "reason", "deployment", "ref", "commit"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["received_at"][:19].replace("T", " "),
            item["event"] or "",
            item["verdict"],
            item["reason"] or "",
            item["deployment_id"] or "",
            item["ref"] or "",
            (item["commit"] or "")[:12],
        )
    return table


@app.command("deliveries")
def deliveries(
    webhook: WebhookArgument, limit: Annotated[int, typer.Option(help="How many.")] = 50
) -> None:
    """The hook's deliveries, newest first: verdict, reason, run, ref and commit."""
    with api_client() as api:
        page = api.get(f"/webhooks/{webhook}/deliveries", limit=limit)
    items: list[dict[str, Any]] = page["items"]
    emit(items, table=lambda: deliveries_table(items))


@app.command("register")
def register_hook(
    webhook: WebhookArgument,
    remove: Annotated[bool, typer.Option("--remove", help="Remove it there instead.")] = False,
) -> None:
    """Create (or remove) the hook at the template repository's provider."""
    with api_client() as api:
        if remove:
            answer = api.delete(f"/webhooks/{webhook}/register")
        else:
            answer = api.post(f"/webhooks/{webhook}/register")
    emit(
        answer,
        table=lambda: (
            "removed at the provider" if remove else f"registered (id {answer['remote_hook_id']})"
        ),
    )


@app.command("delete")
def delete(webhook: WebhookArgument) -> None:
    """Delete the hook (and remove it at the provider when Shipyard registered it).

    With -o json: the deleted hook."""
    with api_client() as api:
        item = api.get(f"/webhooks/{webhook}")
        api.delete(f"/webhooks/{webhook}")
    emit(item, table=lambda: f"deleted {webhook}")
