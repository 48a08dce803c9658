"""``shipyard webhooks``: list, create, rotate, deliveries, register, delete (over the REST API).

A hook's secret is shown once, by ``create`` and ``rotate``. ``--secret-file PATH`` writes it
to a new file readable only by its owner instead of printing it (for scripts and CI logs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.client import ApiError
from shipyard.deployments.cli import client, console, err_console, fail
from shipyard.templates.cli import find

app = typer.Typer(
    help="Inbound webhooks on templates (talks to SHIPYARD_URL with SHIPYARD_TOKEN).",
    no_args_is_help=True,
)

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
        raise


def _hand_over(answer: dict[str, Any], secret_file: Path | None, descriptor: int | None) -> None:
    """Show the URL and the secret once (or put the secret in ``secret_file``)."""
    console.print(f"id:     {answer['id']}", highlight=False)
    console.print(f"url:    {answer['url']}", highlight=False)
    if descriptor is not None:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(answer["secret"] + "\n")
        console.print(f"secret: written to {secret_file}", highlight=False)
    else:
        console.print(f"secret: {answer['secret']}", highlight=False, soft_wrap=True)
        err_console.print("The secret is shown this once; store it now.")


def _discard(secret_file: Path | None, descriptor: int | None) -> None:
    """The request failed: remove the empty file made for its secret."""
    if descriptor is not None and secret_file is not None:
        os.close(descriptor)
        secret_file.unlink(missing_ok=True)


@app.command("list")
def list_webhooks(
    template: Annotated[str | None, typer.Option(help="Only this template's (id or name).")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The hooks, newest first: provider, events, filters, and whether registered upstream."""
    with client() as api:
        try:
            params: dict[str, Any] = {"limit": limit}
            if template:
                params["template_id"] = find(api, template)["id"]
            page = api.get("/webhooks", **params)
        except ApiError as exc:
            fail(str(exc))
            return
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
    for item in page["items"]:
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
    console.print(table)


@app.command("create")
def create(
    template: Annotated[str, typer.Argument(help="The template (id or name).")],
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
            fail(f"--map takes PARAMETER=path, got {pair!r}")
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
    with client() as api:
        try:
            found = find(api, template)
            answer = api.post(f"/templates/{found['id']}/webhooks", body)
        except ApiError as exc:
            _discard(secret_file, descriptor)
            fail(str(exc))
            return
        _hand_over(answer, secret_file, descriptor)
        if register:
            try:
                registered = api.post(f"/webhooks/{answer['id']}/register")
            except ApiError as exc:
                fail(f"created, but not registered at the provider: {exc}")
                return
    if register:
        console.print(f"registered at the provider (id {registered['remote_hook_id']})")


@app.command("rotate")
def rotate(webhook: str, secret_file: SecretFile = None) -> None:
    """A new secret (shown once); deliveries signed with the old one are refused from now on."""
    descriptor = _open_secret_file(secret_file)
    with client() as api:
        try:
            answer = api.post(f"/webhooks/{webhook}/rotate")
        except ApiError as exc:
            _discard(secret_file, descriptor)
            fail(str(exc))
            return
    _hand_over(answer, secret_file, descriptor)


@app.command("deliveries")
def deliveries(webhook: str, limit: Annotated[int, typer.Option(help="How many.")] = 50) -> None:
    """The hook's deliveries, newest first: verdict, reason, run, ref and commit."""
    with client() as api:
        try:
            page = api.get(f"/webhooks/{webhook}/deliveries", limit=limit)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("received", "event", "verdict", "reason", "deployment", "ref", "commit"):
        table.add_column(column)
    for item in page["items"]:
        table.add_row(
            item["received_at"][:19].replace("T", " "),
            item["event"] or "",
            item["verdict"],
            item["reason"] or "",
            item["deployment_id"] or "",
            item["ref"] or "",
            (item["commit"] or "")[:12],
        )
    console.print(table)


@app.command("register")
def register_hook(
    webhook: str,
    remove: Annotated[bool, typer.Option("--remove", help="Remove it there instead.")] = False,
) -> None:
    """Create (or remove) the hook at the template repository's provider."""
    with client() as api:
        try:
            if remove:
                api.delete(f"/webhooks/{webhook}/register")
            else:
                answer = api.post(f"/webhooks/{webhook}/register")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(
        "removed at the provider" if remove else f"registered (id {answer['remote_hook_id']})"
    )


@app.command("delete")
def delete(webhook: str) -> None:
    """Delete the hook (and remove it at the provider when Shipyard registered it)."""
    with client() as api:
        try:
            api.delete(f"/webhooks/{webhook}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"deleted {webhook}")
