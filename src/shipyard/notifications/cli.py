"""``shipyard notifications``: notification channels, rules and deliveries.

Secrets never travel on the command line: the SMTP password comes from ``--password-stdin``,
a Slack, Teams or Discord webhook URL (the URL is the credential) from ``--url-stdin``, an ntfy
token from ``--token-stdin``, or else from a prompt that does not echo; ``channels update``
replaces any type's secret with ``--secret-stdin`` (or ``--secret-prompt``). A generic webhook's
generated signing secret is printed once (or written to ``--secret-file``, mode 0600).
Channels are named by name or id.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import (
    ApiTyper,
    api_client,
    fail,
    name_argument,
    name_option,
    resolve,
)
from shipyard.client.output import emit

app = ApiTyper(help="Notification channels, rules and deliveries.", no_args_is_help=True)
channels_app = ApiTyper(help="Where messages go: email, Slack, Teams, Discord, ntfy, webhook.")
rules_app = ApiTyper(help="Which events go to which channel.")
app.add_typer(channels_app, name="channels", no_args_is_help=True)
app.add_typer(rules_app, name="rules", no_args_is_help=True)

CHANNELS = "/notification-channels"
RULES = "/notification-rules"
URL_TYPES = ("slack", "teams", "discord")

ChannelArgument = Annotated[
    str,
    name_argument(names.CHANNEL, "The channel (name or id)."),
]
TemplateOption = Annotated[
    str | None,
    name_option(
        names.TEMPLATE, "Only this template's runs (name or id).", "--template", metavar=None
    ),
]
RepositoryOption = Annotated[
    str | None,
    name_option(
        names.REPOSITORY, "Only this repository's runs (name or id).", "--repository", metavar=None
    ),
]


def _secret(label: str, from_stdin: bool, *, required: bool) -> str | None:
    """A secret from standard input (one line) or a prompt that does not echo."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            fail(f"standard input held no {label}", exits.USAGE)
        return value
    if not required:
        return None
    value = typer.prompt(label.capitalize(), hide_input=True)
    return str(value)


def _find_channel(api: ApiClient, channel: str) -> dict[str, Any]:
    """The channel named (or identified by) ``channel``."""
    found: dict[str, Any] = api.get(f"{CHANNELS}/{resolve(api, names.CHANNEL, channel)}")
    return found


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
    with api_client() as api:
        found = api.get(CHANNELS)

    def table() -> Table:
        rendered = Table()
        for column in ("id", "name", "type", "sends to", "enabled"):
            rendered.add_column(column)
        for item in found:
            rendered.add_row(
                item["id"], item["name"], item["type"], _summary(item), str(item["enabled"]).lower()
            )
        return rendered

    emit(found, table=table)


@channels_app.command("show")
def show_channel(channel: ChannelArgument) -> None:
    """One channel: its settings (secrets only as has_* flags)."""
    with api_client() as api:
        found = _find_channel(api, channel)
    emit(found)


@channels_app.command("create")
def create_channel(
    channel_type: Annotated[
        str, typer.Argument(help="email, slack, teams, discord, ntfy or webhook.")
    ],
    name: Annotated[str, typer.Argument(help="A name, unique in the tenant.")],
    url: Annotated[
        str | None, typer.Option("--webhook-url", help="webhook: the URL to POST to (not secret).")
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
        fail(f"unknown channel type {channel_type!r}", exits.USAGE)
    descriptor = None
    if secret_file is not None:
        try:
            descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            fail(f"cannot create {secret_file}: {exc.strerror}")
            return
    try:
        with api_client() as api:
            created = api.post(CHANNELS, {"type": channel_type, "name": name, "config": config})
    except typer.Exit:
        if descriptor is not None and secret_file is not None:
            os.close(descriptor)
            secret_file.unlink(missing_ok=True)
        raise
    generated = created.get("secret")
    lines = [f"id:     {created['id']}"]
    if descriptor is not None:
        with os.fdopen(descriptor, "w") as handle:
            handle.write((generated or "") + "\n")
        # Written to the file instead: not in the output either.
        created = {**created, "secret": None, "secret_file": str(secret_file)}
        lines.append(f"secret: written to {secret_file}")
    elif generated:
        lines.append(f"secret: {generated}  (shown once)")
    emit(created, table=lambda: "\n".join(lines))


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
            fail(
                f"a {channel_type} channel's URL is its secret: give it with --secret-stdin",
                exits.USAGE,
            )
        if key not in allowed:
            option = {"ca_certificate": "--ca-file", "url": "--webhook-url"}.get(
                key, "--" + key.replace("_", "-")
            )
            fail(f"{option} does not apply to a {channel_type} channel", exits.USAGE)
        config[key] = value
    return config


@channels_app.command("update")
def update_channel(
    channel: ChannelArgument,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Send, or send nothing.")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--webhook-url", help="webhook: the URL to POST to (not secret).")
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
        fail("give one of --secret-stdin, --secret-prompt and --clear-secret", exits.USAGE)
    with api_client() as api:
        found = _find_channel(api, channel)
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
                fail(f"a {channel_type} channel needs its secret: replace it instead", exits.USAGE)
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
            fail("nothing to change: give an option (see --help)", exits.USAGE)
        updated = api.patch(f"{CHANNELS}/{found['id']}", body)
    state = "enabled" if updated["enabled"] else "disabled"
    emit(updated, table=lambda: f"{updated['name']}: updated ({state})")


@channels_app.command("test")
def test_channel(channel: ChannelArgument) -> None:
    """Send a test message now and print what the receiver answered (exit 1 if it failed)."""
    with api_client() as api:
        answer = api.post(f"{CHANNELS}/{resolve(api, names.CHANNEL, channel)}/test")

    def table() -> Text:
        status = answer["status_code"] if answer["status_code"] is not None else "-"
        lines = [
            f"{'ok' if answer['ok'] else 'FAILED'}: status {status} in {answer['duration_ms']} ms"
        ]
        if answer.get("reply"):
            lines.append(f"reply: {answer['reply']}")
        if answer.get("error"):
            lines.append(f"error: {answer['error']}")
        # The receiver's words, printed as they came (no markup).
        return Text("\n".join(lines))

    emit(answer, table=table)
    if not answer["ok"]:
        raise typer.Exit(exits.ERROR)


@channels_app.command("delete")
def delete_channel(channel: ChannelArgument) -> None:
    """Delete the channel with its rules and deliveries."""
    with api_client() as api:
        found = _find_channel(api, channel)
        api.delete(f"{CHANNELS}/{found['id']}")
    emit(
        {"id": found["id"], "name": found["name"], "deleted": True},
        table=lambda: f"{found['name']}: deleted",
    )


@app.command("deliveries")
def deliveries(
    channel: ChannelArgument,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The channel's deliveries, newest first, with every attempt."""
    with api_client() as api:
        items = api.get(
            f"{CHANNELS}/{resolve(api, names.CHANNEL, channel)}/deliveries", limit=limit
        )

    def table() -> Table:
        rendered = Table()
        for column in ("created", "event", "subject", "status", "attempts"):
            rendered.add_column(column)
        for item in items:
            attempts = "\n".join(
                f"#{a['attempt']} {'ok' if a['succeeded'] else 'failed'} "
                f"{a['status_code'] if a['status_code'] is not None else '-'} "
                f"{a['error'] or ''}".rstrip()
                for a in item["attempt_log"]
            )
            rendered.add_row(
                item["created_at"], item["event"], item["title"] or "", item["status"], attempts
            )
        return rendered

    emit(items, table=table)


@rules_app.command("list")
def list_rules() -> None:
    """The rules: events, scope, channel, only on change."""
    with api_client() as api:
        found = api.get(RULES)
        channel_names = {item["id"]: item["name"] for item in api.get(CHANNELS)}

    def table() -> Table:
        rendered = Table()
        for column in ("id", "events", "scope", "channel", "only on change", "enabled"):
            rendered.add_column(column)
        for item in found:
            scope = item["scope"]
            rendered.add_row(
                item["id"],
                ", ".join(item["events"]),
                scope["type"] + (f" {scope['id']}" if scope["id"] else ""),
                channel_names.get(item["channel_id"], item["channel_id"]),
                str(item["only_on_change"]).lower(),
                str(item["enabled"]).lower(),
            )
        return rendered

    emit(found, table=table)


ChannelOption = Annotated[
    str,
    name_option(names.CHANNEL, "The channel (name or id).", "--channel", metavar=None),
]


def _scope(api: ApiClient, template: str | None, repository: str | None) -> dict[str, Any] | None:
    """The rule scope a --template or --repository (name or id) gives; None for neither."""
    if template is not None:
        return {"type": "template", "id": resolve(api, names.TEMPLATE, template)}
    if repository is not None:
        return {"type": "repository", "id": resolve(api, names.REPOSITORY, repository)}
    return None


def _rule_line(rule: dict[str, Any]) -> str:
    state = "enabled" if rule["enabled"] else "disabled"
    return f"rule {rule['id']}: {', '.join(rule['events'])} ({state})"


@rules_app.command("create")
def create_rule(
    channel: ChannelOption,
    event: Annotated[list[str], typer.Option("--event", help="An event name (repeat for more).")],
    template: TemplateOption = None,
    repository: RepositoryOption = None,
    only_on_change: Annotated[
        bool, typer.Option("--only-on-change", help="Outcomes only when they change.")
    ] = False,
    name: Annotated[str | None, typer.Option("--name")] = None,
) -> None:
    """Send ``--event`` events (in a scope) to a channel."""
    if template is not None and repository is not None:
        fail("give --template or --repository, not both", exits.USAGE)
    with api_client() as api:
        created = api.post(
            RULES,
            {
                "channel_id": resolve(api, names.CHANNEL, channel),
                "events": event,
                "scope": _scope(api, template, repository) or {"type": "tenant"},
                "only_on_change": only_on_change,
                "name": name,
            },
        )
    emit(created, table=lambda: f"rule {created['id']}: {', '.join(created['events'])}")


@rules_app.command("show")
def show_rule(rule: Annotated[str, typer.Argument(help="The rule's id.")]) -> None:
    """One rule."""
    with api_client() as api:
        found = api.get(f"{RULES}/{rule}")
    emit(found)


@rules_app.command("update")
def update_rule(
    rule: Annotated[str, typer.Argument(help="The rule's id.")],
    channel: Annotated[
        str | None,
        name_option(names.CHANNEL, "Send to this channel (name or id).", "--channel", metavar=None),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event name (repeat; replaces the rule's events)."),
    ] = None,
    template: TemplateOption = None,
    repository: RepositoryOption = None,
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
        fail("give one of --template, --repository and --tenant", exits.USAGE)
    body: dict[str, Any] = {}
    if tenant:
        body["scope"] = {"type": "tenant"}
    if event:
        body["events"] = event
    if only_on_change is not None:
        body["only_on_change"] = only_on_change
    if enabled is not None:
        body["enabled"] = enabled
    if name is not None:
        body["name"] = name
    if not body and channel is None and template is None and repository is None:
        fail("nothing to change: give an option (see --help)", exits.USAGE)
    with api_client() as api:
        scope = _scope(api, template, repository)
        if scope is not None:
            body["scope"] = scope
        if channel is not None:
            body["channel_id"] = resolve(api, names.CHANNEL, channel)
        updated = api.patch(f"{RULES}/{rule}", body)
    emit(updated, table=lambda: _rule_line(updated))


@rules_app.command("delete")
def delete_rule(rule: Annotated[str, typer.Argument(help="The rule's id.")]) -> None:
    """Delete a rule."""
    with api_client() as api:
        api.delete(f"{RULES}/{rule}")
    emit({"id": rule, "deleted": True}, table=lambda: f"{rule}: deleted")
