"""``shipyard notifications``: notification channels, rules and deliveries (SHIPYARD_URL, SHIPYARD_TOKEN).

Secrets never travel on the command line: the SMTP password comes from ``--password-stdin``,
a Slack, Teams or Discord webhook URL (the URL is the credential) from ``--url-stdin``, an ntfy
token from ``--token-stdin``, or else from a prompt that does not echo; ``channels update``
replaces any type's secret with ``--secret-stdin`` (or ``--secret-prompt``). A generic webhook's
generated signing secret is printed once (or written to ``--secret-file``, mode 0600).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(help="Notification channels, rules and deliveries.", no_args_is_help=True)
channels_app = typer.Typer(help="Where messages go: email, Slack, Teams, Discord, ntfy, webhook.")
rules_app = typer.Typer(help="Which events go to which channel.")
app.add_typer(channels_app, name="channels", no_args_is_help=True)
app.add_typer(rules_app, name="rules", no_args_is_help=True)

CHANNELS = "/notification-channels"
RULES = "/notification-rules"
URL_TYPES = ("slack", "teams", "discord")
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(1)


def client() -> ApiClient:
    try:
        return ApiClient()
    except ApiError as exc:
        fail(str(exc))
        raise


def _secret(label: str, from_stdin: bool, *, required: bool) -> str | None:
    """A secret from standard input (one line) or a prompt that does not echo."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            fail(f"standard input held no {label}")
        return value
    if not required:
        return None
    value = typer.prompt(label.capitalize(), hide_input=True)
    return str(value)


def _find_channel(api: ApiClient, channel: str) -> dict[str, Any]:
    for item in api.get(CHANNELS):
        if channel in (item["id"], item["name"]):
            found: dict[str, Any] = item
            return found
    fail(f"no notification channel {channel!r}")
    raise typer.Exit(1)


def _summary(item: dict[str, Any]) -> str:
    config = item["config"]
    if item["type"] == "email":
        return f"{config.get('host')}:{config.get('port')} -> {', '.join(config.get('to', []))}"
    if item["type"] == "ntfy":
        return f"{config.get('server')}/{config.get('topic')}"
    if item["type"] == "webhook":
        return str(config.get("url"))
    return "(webhook URL stored)" if config.get("has_url") else "(no URL)"


@channels_app.command("list")
def list_channels() -> None:
    """The channels: type, where they send (secrets never shown), enabled."""
    with client() as api:
        try:
            found = api.get(CHANNELS)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "name", "type", "sends to", "enabled"):
        table.add_column(column)
    for item in found:
        table.add_row(
            item["id"], item["name"], item["type"], _summary(item), str(item["enabled"]).lower()
        )
    console.print(table)


@channels_app.command("create")
def create_channel(
    channel_type: Annotated[
        str, typer.Argument(help="email, slack, teams, discord, ntfy or webhook.")
    ],
    name: Annotated[str, typer.Argument(help="A name, unique in the tenant.")],
    url: Annotated[
        str | None, typer.Option("--url", help="webhook: the URL to POST to (not secret).")
    ] = None,
    url_stdin: Annotated[
        bool, typer.Option("--url-stdin", help="slack/teams/discord: read the URL from stdin.")
    ] = False,
    host: Annotated[str | None, typer.Option("--host", help="email: SMTP server.")] = None,
    port: Annotated[int, typer.Option("--port", help="email: SMTP port.")] = 587,
    security: Annotated[
        str, typer.Option("--security", help="email: none, starttls or tls.")
    ] = "starttls",
    username: Annotated[str | None, typer.Option("--username", help="email: SMTP login.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="email: read the SMTP password from stdin.")
    ] = False,
    sender: Annotated[str | None, typer.Option("--from", help="email: From address.")] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="email: a recipient (repeat for more).")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="email: PEM of a private CA to trust.")
    ] = None,
    server: Annotated[str, typer.Option("--server", help="ntfy: server URL.")] = "https://ntfy.sh",
    topic: Annotated[str | None, typer.Option("--topic", help="ntfy: topic.")] = None,
    priority: Annotated[int, typer.Option("--priority", help="ntfy: 1 to 5.")] = 3,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="ntfy: read an access token from stdin.")
    ] = False,
    card: Annotated[str, typer.Option("--card", help="teams: adaptive or message.")] = "adaptive",
    body_template: Annotated[
        Path | None,
        typer.Option("--body-template", help="webhook: a Jinja2 body template file."),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", help="webhook: write the generated secret here (0600)."),
    ] = None,
) -> None:
    """Add a channel; prints its id (and a webhook's signing secret, once)."""
    config: dict[str, Any]
    if channel_type == "email":
        password = _secret("SMTP password", password_stdin, required=False)
        config = {
            "host": host,
            "port": port,
            "security": security,
            "username": username,
            "from": sender,
            "to": to or [],
        }
        if password:
            config["password"] = password
        if ca_file is not None:
            config["ca_certificate"] = ca_file.read_text()
    elif channel_type in URL_TYPES:
        config = {"url": _secret(f"{channel_type} webhook URL", url_stdin, required=True)}
        if channel_type == "teams":
            config["card"] = card
    elif channel_type == "ntfy":
        config = {"server": server, "topic": topic, "priority": priority}
        token = _secret("ntfy token", token_stdin, required=False)
        if token:
            config["token"] = token
    elif channel_type == "webhook":
        config = {"url": url}
        if body_template is not None:
            config["body_template"] = body_template.read_text()
    else:
        fail(f"unknown channel type {channel_type!r}")
        return
    descriptor = None
    if secret_file is not None:
        try:
            descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            fail(f"cannot create {secret_file}: {exc.strerror}")
            return
    with client() as api:
        try:
            created = api.post(CHANNELS, {"type": channel_type, "name": name, "config": config})
        except ApiError as exc:
            if descriptor is not None and secret_file is not None:
                os.close(descriptor)
                secret_file.unlink(missing_ok=True)
            fail(str(exc))
            return
    console.print(f"id:     {created['id']}", highlight=False)
    generated = created.get("secret")
    if descriptor is not None:
        with os.fdopen(descriptor, "w") as handle:
            handle.write((generated or "") + "\n")
        console.print(f"secret: written to {secret_file}", highlight=False)
    elif generated:
        console.print(f"secret: {generated}  (shown once)", highlight=False)


SECRET_FIELD = {
    "email": "password",
    "slack": "url",
    "teams": "url",
    "discord": "url",
    "ntfy": "token",
    "webhook": "secret",
}
SECRET_LABEL = {
    "email": "SMTP password",
    "slack": "Slack webhook URL",
    "teams": "Teams webhook URL",
    "discord": "Discord webhook URL",
    "ntfy": "ntfy token",
    "webhook": "signing secret",
}
CLEARABLE = ("email", "ntfy")


def _update_config(channel_type: str, given: dict[str, Any]) -> dict[str, Any]:
    """The config fields given on the command line that the channel's type has (a field of
    another type is an error: it would only be refused by the server less clearly)."""
    allowed = {
        "email": {"host", "port", "security", "username", "from", "to", "ca_certificate"},
        "slack": set(),
        "teams": {"card"},
        "discord": set(),
        "ntfy": {"server", "topic", "priority"},
        "webhook": {"url", "body_template"},
    }[channel_type]
    config: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if key == "url" and channel_type in URL_TYPES:
            fail(f"a {channel_type} channel's URL is its secret: give it with --secret-stdin")
        if key not in allowed:
            option = {"ca_certificate": "--ca-file"}.get(key, "--" + key.replace("_", "-"))
            fail(f"{option} does not apply to a {channel_type} channel")
        config[key] = value
    return config


@channels_app.command("update")
def update_channel(
    channel: Annotated[str, typer.Argument(help="The channel (id or name).")],
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Send, or send nothing.")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="webhook: the URL to POST to (not secret).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="email: SMTP server.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="email: SMTP port.")] = None,
    security: Annotated[
        str | None, typer.Option("--security", help="email: none, starttls or tls.")
    ] = None,
    username: Annotated[str | None, typer.Option("--username", help="email: SMTP login.")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="email: From address.")] = None,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="email: the recipients (repeat; replaces the list)."),
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="email: PEM of a private CA to trust.")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help="ntfy: server URL.")] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="ntfy: topic.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", help="ntfy: 1 to 5.")] = None,
    card: Annotated[str | None, typer.Option("--card", help="teams: adaptive or message.")] = None,
    body_template: Annotated[
        Path | None,
        typer.Option("--body-template", help="webhook: a Jinja2 body template file."),
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="Replace the type's secret (SMTP password, Slack/Teams/Discord URL, ntfy "
            "token, webhook signing secret) with one line read from stdin.",
        ),
    ] = False,
    secret_prompt: Annotated[
        bool,
        typer.Option("--secret-prompt", help="Replace the secret, typed at a hidden prompt."),
    ] = False,
    clear_secret: Annotated[
        bool,
        typer.Option("--clear-secret", help="email/ntfy: remove the stored password or token."),
    ] = False,
) -> None:
    """Change a channel: only the options given change; its secret is kept unless replaced
    (from stdin or a prompt, never an argument) or, for email and ntfy, cleared."""
    if sum((secret_stdin, secret_prompt, clear_secret)) > 1:
        fail("give one of --secret-stdin, --secret-prompt and --clear-secret")
    with client() as api:
        try:
            found = _find_channel(api, channel)
        except ApiError as exc:
            fail(str(exc))
            return
        channel_type = str(found["type"])
        config = _update_config(
            channel_type,
            {
                "url": url,
                "host": host,
                "port": port,
                "security": security,
                "username": username,
                "from": sender,
                "to": to or None,
                "ca_certificate": ca_file.read_text() if ca_file is not None else None,
                "server": server,
                "topic": topic,
                "priority": priority,
                "card": card,
                "body_template": body_template.read_text() if body_template is not None else None,
            },
        )
        field = SECRET_FIELD[channel_type]
        if clear_secret:
            if channel_type not in CLEARABLE:
                fail(f"a {channel_type} channel needs its secret: replace it instead")
            config[field] = None
        elif secret_stdin or secret_prompt:
            config[field] = _secret(SECRET_LABEL[channel_type], secret_stdin, required=True)
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if enabled is not None:
            body["enabled"] = enabled
        if config:
            body["config"] = config
        if not body:
            fail("nothing to change: give an option (see --help)")
        try:
            updated = api.patch(f"{CHANNELS}/{found['id']}", body)
        except ApiError as exc:
            fail(str(exc))
            return
    state = "enabled" if updated["enabled"] else "disabled"
    console.print(f"{updated['name']}: updated ({state})", highlight=False)


@channels_app.command("test")
def test_channel(channel: Annotated[str, typer.Argument(help="The channel (id or name).")]) -> None:
    """Send a test message now and print what the receiver answered."""
    with client() as api:
        try:
            found = _find_channel(api, channel)
            answer = api.post(f"{CHANNELS}/{found['id']}/test")
        except ApiError as exc:
            fail(str(exc))
            return
    status = answer["status_code"] if answer["status_code"] is not None else "-"
    console.print(
        f"{'ok' if answer['ok'] else 'FAILED'}: status {status} in {answer['duration_ms']} ms",
        highlight=False,
    )
    if answer.get("reply"):
        console.print(f"reply: {answer['reply']}", highlight=False, markup=False)
    if answer.get("error"):
        console.print(f"error: {answer['error']}", highlight=False, markup=False)
    if not answer["ok"]:
        raise typer.Exit(1)


@channels_app.command("delete")
def delete_channel(
    channel: Annotated[str, typer.Argument(help="The channel (id or name).")],
) -> None:
    """Delete the channel with its rules and deliveries."""
    with client() as api:
        try:
            found = _find_channel(api, channel)
            api.delete(f"{CHANNELS}/{found['id']}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"{found['name']}: deleted", highlight=False)


@app.command("deliveries")
def deliveries(
    channel: Annotated[str, typer.Argument(help="The channel (id or name).")],
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The channel's deliveries, newest first, with every attempt."""
    with client() as api:
        try:
            found = _find_channel(api, channel)
            items = api.get(f"{CHANNELS}/{found['id']}/deliveries", limit=limit)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("created", "event", "subject", "status", "attempts"):
        table.add_column(column)
    for item in items:
        attempts = "\n".join(
            f"#{a['attempt']} {'ok' if a['succeeded'] else 'failed'} "
            f"{a['status_code'] if a['status_code'] is not None else '-'} "
            f"{a['error'] or ''}".rstrip()
            for a in item["attempt_log"]
        )
        table.add_row(
            item["created_at"], item["event"], item["title"] or "", item["status"], attempts
        )
    console.print(table)


@rules_app.command("list")
def list_rules() -> None:
    """The rules: events, scope, channel, only on change."""
    with client() as api:
        try:
            found = api.get(RULES)
            names = {item["id"]: item["name"] for item in api.get(CHANNELS)}
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "events", "scope", "channel", "only on change", "enabled"):
        table.add_column(column)
    for item in found:
        scope = item["scope"]
        table.add_row(
            item["id"],
            ", ".join(item["events"]),
            scope["type"] + (f" {scope['id']}" if scope["id"] else ""),
            names.get(item["channel_id"], item["channel_id"]),
            str(item["only_on_change"]).lower(),
            str(item["enabled"]).lower(),
        )
    console.print(table)


@rules_app.command("create")
def create_rule(
    channel: Annotated[str, typer.Option("--channel", help="The channel (id or name).")],
    event: Annotated[list[str], typer.Option("--event", help="An event name (repeat for more).")],
    template: Annotated[
        str | None, typer.Option("--template", help="Only this template's runs (id).")
    ] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", help="Only this repository's runs (id).")
    ] = None,
    only_on_change: Annotated[
        bool, typer.Option("--only-on-change", help="Outcomes only when they change.")
    ] = False,
    name: Annotated[str | None, typer.Option("--name")] = None,
) -> None:
    """Send ``--event`` events (in a scope) to a channel."""
    scope: dict[str, Any] = {"type": "tenant"}
    if template is not None:
        scope = {"type": "template", "id": template}
    elif repository is not None:
        scope = {"type": "repository", "id": repository}
    with client() as api:
        try:
            found = _find_channel(api, channel)
            created = api.post(
                RULES,
                {
                    "channel_id": found["id"],
                    "events": event,
                    "scope": scope,
                    "only_on_change": only_on_change,
                    "name": name,
                },
            )
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"rule {created['id']}: {', '.join(created['events'])}", highlight=False)


@rules_app.command("update")
def update_rule(
    rule: Annotated[str, typer.Argument(help="The rule's id.")],
    channel: Annotated[
        str | None, typer.Option("--channel", help="Send to this channel (id or name).")
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event name (repeat; replaces the rule's events)."),
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Only this template's runs (id).")
    ] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", help="Only this repository's runs (id).")
    ] = None,
    tenant: Annotated[
        bool, typer.Option("--tenant", help="The whole tenant (drops a template/repository).")
    ] = False,
    only_on_change: Annotated[
        bool | None,
        typer.Option("--only-on-change/--every-time", help="Outcomes only when they change."),
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Route events, or not.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
) -> None:
    """Change a rule: only the options given change."""
    if sum((template is not None, repository is not None, tenant)) > 1:
        fail("give one of --template, --repository and --tenant")
    body: dict[str, Any] = {}
    if template is not None:
        body["scope"] = {"type": "template", "id": template}
    elif repository is not None:
        body["scope"] = {"type": "repository", "id": repository}
    elif tenant:
        body["scope"] = {"type": "tenant"}
    if event:
        body["events"] = event
    if only_on_change is not None:
        body["only_on_change"] = only_on_change
    if enabled is not None:
        body["enabled"] = enabled
    if name is not None:
        body["name"] = name
    if not body and channel is None:
        fail("nothing to change: give an option (see --help)")
    with client() as api:
        try:
            if channel is not None:
                body["channel_id"] = _find_channel(api, channel)["id"]
            updated = api.patch(f"{RULES}/{rule}", body)
        except ApiError as exc:
            fail(str(exc))
            return
    state = "enabled" if updated["enabled"] else "disabled"
    console.print(
        f"rule {updated['id']}: {', '.join(updated['events'])} ({state})", highlight=False
    )


@rules_app.command("delete")
def delete_rule(rule: Annotated[str, typer.Argument(help="The rule's id.")]) -> None:
    with client() as api:
        try:
            api.delete(f"{RULES}/{rule}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"{rule}: deleted", highlight=False)
