"""``shipyard sso``: identity providers, group-to-role rules and the log-in policy.

A provider's secret (the OIDC client secret, the LDAP service account's password) never travels
on the command line: ``--secret-stdin`` reads one line from standard input, ``--secret-prompt``
asks without echoing. Its settings are ``--set key=value`` (a JSON value, else text:
``--set start_tls=true``, ``--set scopes="openid email groups"``). Providers are named by name
or id; rules by id or by their number in ``rules list``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
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
from shipyard.client.output import emit

app = ApiTyper(
    help="Single sign-on: identity providers, role rules, log-in policy.", no_args_is_help=True
)
providers_app = ApiTyper(help="Identity providers (OpenID Connect, LDAP).", no_args_is_help=True)
rules_app = ApiTyper(help="Group-to-role rules, in order.", no_args_is_help=True)
settings_app = ApiTyper(help="The team's log-in policy.", no_args_is_help=True)
app.add_typer(providers_app, name="providers")
app.add_typer(rules_app, name="rules")
app.add_typer(settings_app, name="settings")

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A setting, key=value (JSON or text). oidc: issuer, client_id, scopes, "
        "groups_claim, email_claim, name_claim, graph_url; ldap: url, start_tls, bind_dn, "
        "user_base, user_filter, group_search, group_base, group_filter, "
        "group_name_attribute, nested_groups, directory_check, email_attribute, "
        "name_attribute, ca_certificate, timeout_seconds.",
    ),
]
SecretStdin = Annotated[
    bool, typer.Option("--secret-stdin", help="Read the secret from standard input (one line).")
]
SecretPrompt = Annotated[
    bool, typer.Option("--secret-prompt", help="Ask for the secret (not echoed).")
]
ProviderArgument = Annotated[
    str,
    name_argument(names.SSO_PROVIDER, "The provider (name or id)."),
]
ProviderOption = Annotated[
    str | None,
    name_option(
        names.SSO_PROVIDER, "Only for this provider (name or id).", "--provider", metavar=None
    ),
]
RuleArgument = Annotated[str, typer.Argument(help="Id, or number in the list.")]


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--set takes key=value, not {pair!r}", exits.USAGE)
        key = key.strip()
        value: Any
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if key == "scopes" and isinstance(value, str):
            value = value.replace(",", " ").split()
        config[key] = value
    return config


def _secret(from_stdin: bool, prompt: bool) -> str | None:
    if from_stdin and prompt:
        fail("give the secret with --secret-stdin or --secret-prompt, not both", exits.USAGE)
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif prompt:
        value = typer.prompt("Secret", hide_input=True)
    else:
        return None
    if not value:
        fail("the secret is empty")
    return value


def _provider_id(api: ApiClient, provider: str) -> str:
    return resolve(api, names.SSO_PROVIDER, provider)


def _provider_text(item: dict[str, Any]) -> str:
    lines = [
        f"{item['name']} ({item['kind']}, {item['id']})",
        f"  enabled: {'yes' if item['enabled'] else 'no'}",
        f"  secret: {'set' if item['has_secret'] else 'none'}",
        f"  sign-in: {item['login_path']}",
    ]
    for key, value in sorted(item["config"].items()):
        shown = json.dumps(value) if not isinstance(value, str) else value
        lines.append(f"  {key}: {shown}")
    return escape("\n".join(lines))


# --- providers ---------------------------------------------------------------------------------


@providers_app.command("list")
def providers_list() -> None:
    """The team's identity providers."""
    with api_client() as api:
        providers = api.get("/sso/providers")

    def table() -> Table:
        rendered = Table()
        for column in ("id", "name", "kind", "enabled", "secret", "address"):
            rendered.add_column(column)
        for item in providers:
            config = item["config"]
            rendered.add_row(
                item["id"],
                item["name"],
                item["kind"],
                "yes" if item["enabled"] else "no",
                "set" if item["has_secret"] else "none",
                str(config.get("issuer") or config.get("url") or ""),
            )
        return rendered

    emit(providers, table=table)


@providers_app.command("show")
def providers_show(provider: ProviderArgument) -> None:
    """One provider's settings (never its secret)."""
    with api_client() as api:
        found = api.get(f"/sso/providers/{_provider_id(api, provider)}")
    emit(found, table=lambda: _provider_text(found))


@providers_app.command("create")
def providers_create(
    kind: Annotated[str, typer.Argument(help="oidc or ldap.")],
    name: Annotated[str, typer.Argument(help='Shown as "Sign in with <name>".')],
    settings: SetOption = None,
    secret_stdin: SecretStdin = False,
    secret_prompt: SecretPrompt = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it turned off.")] = False,
) -> None:
    """Add an OpenID Connect issuer or an LDAP directory."""
    body: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "enabled": not disabled,
        "config": _settings(settings),
        "secret": _secret(secret_stdin, secret_prompt),
    }
    with api_client() as api:
        created = api.post("/sso/providers", json=body)
    emit(
        created,
        table=lambda: escape(f"created identity provider {created['id']} ({created['name']})"),
    )


@providers_app.command("update")
def providers_update(
    provider: ProviderArgument,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn it on or off.")
    ] = None,
    settings: SetOption = None,
    secret_stdin: SecretStdin = False,
    secret_prompt: SecretPrompt = False,
    clear_secret: Annotated[
        bool, typer.Option("--clear-secret", help="Remove the secret.")
    ] = False,
) -> None:
    """Change what is given; the secret stays unless a new one is given or it is cleared."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if enabled is not None:
        body["enabled"] = enabled
    if settings:
        body["config"] = _settings(settings)
    secret = _secret(secret_stdin, secret_prompt)
    if secret is not None:
        body["secret"] = secret
    if clear_secret:
        body["clear_secret"] = True
    with api_client() as api:
        updated = api.patch(f"/sso/providers/{_provider_id(api, provider)}", json=body)
    emit(
        updated,
        table=lambda: escape(f"updated identity provider {updated['id']} ({updated['name']})"),
    )


@providers_app.command("delete")
def providers_delete(
    provider: ProviderArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a provider; its members keep their accounts but can no longer sign in with it."""
    with api_client() as api:
        found = api.get(f"/sso/providers/{_provider_id(api, provider)}")
        if not yes:
            typer.confirm(f"Delete identity provider {found['name']}?", abort=True)
        api.delete(f"/sso/providers/{found['id']}")
    emit(
        {"id": found["id"], "name": found["name"], "deleted": True},
        table=lambda: escape(f"deleted identity provider {found['id']} ({found['name']})"),
    )


@providers_app.command("test")
def providers_test(provider: ProviderArgument) -> None:
    """Reach the provider as a sign-in would and say what it found (exit 1 if it failed)."""
    with api_client() as api:
        result = api.post(f"/sso/providers/{_provider_id(api, provider)}/test")
    emit(result, table=lambda: escape(f"{'ok' if result['ok'] else 'FAILED'}: {result['message']}"))
    if not result["ok"]:
        raise typer.Exit(exits.ERROR)


@providers_app.command("check-directory")
def providers_check_directory(provider: ProviderArgument) -> None:
    """Run an LDAP provider's directory check now: disable members gone from the directory or
    left with no role, apply changed roles (exit 1 if the directory cannot be asked)."""
    with api_client() as api:
        result = api.post(f"/sso/providers/{_provider_id(api, provider)}/directory-check")
    emit(
        result,
        table=lambda: escape(
            f"checked {result['checked']}: {result['disabled']} disabled, "
            f"{result['enabled']} enabled again, {result['role_changes']} role changes"
        ),
    )


# --- rules -------------------------------------------------------------------------------------


def _rules(api: ApiClient) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = api.get("/sso/rules")
    return rules


def _find_rule(rule: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A rule by id or by its number in the list (1 is the first)."""
    for item in rules:
        if item["id"] == rule:
            return item
    if rule.lstrip("#").isdigit():
        number = int(rule.lstrip("#"))
        if 1 <= number <= len(rules):
            return rules[number - 1]
    fail(f"no role rule {rule!r} (give its id or its number in `shipyard sso rules list`)")


def _rules_table(rules: list[dict[str, Any]], provider_names: dict[str, str]) -> Table:
    table = Table()
    for column in ("#", "id", "group", "role", "provider"):
        table.add_column(column)
    for number, item in enumerate(rules, start=1):
        provider = (
            provider_names.get(item["provider_id"], item["provider_id"])
            if item["provider_id"]
            else "any"
        )
        table.add_row(str(number), item["id"], item["group"], item["role"], provider)
    return table


@rules_app.command("list")
def rules_list() -> None:
    """The rules in order: the highest role among those whose group a person is in wins."""
    with api_client() as api:
        rules = _rules(api)
        provider_names = {item["id"]: item["name"] for item in api.get("/sso/providers")}
    emit(rules, table=lambda: _rules_table(rules, provider_names))


@rules_app.command("add")
def rules_add(
    group: Annotated[str, typer.Argument(help="The group name (or DN) as the provider sends it.")],
    role: Annotated[str, typer.Argument(help="admin, developer or viewer.")],
    provider: ProviderOption = None,
    position: Annotated[
        int | None, typer.Option("--position", min=1, help="Its number (1: first); default last.")
    ] = None,
) -> None:
    """Members of GROUP get ROLE."""
    body: dict[str, Any] = {"group": group, "role": role}
    if position is not None:
        body["position"] = position - 1
    with api_client() as api:
        if provider is not None:
            body["provider_id"] = _provider_id(api, provider)
        created = api.post("/sso/rules", json=body)
    emit(
        created,
        table=lambda: escape(
            f"added rule #{created['position'] + 1} {created['id']}: {group} -> {role}"
        ),
    )


@rules_app.command("update")
def rules_update(
    rule: RuleArgument,
    group: Annotated[str | None, typer.Option("--group")] = None,
    role: Annotated[str | None, typer.Option("--role")] = None,
    provider: ProviderOption = None,
    any_provider: Annotated[
        bool, typer.Option("--any-provider", help="For every provider.")
    ] = False,
) -> None:
    """Change a rule's group, role or provider."""
    if provider is not None and any_provider:
        fail("give --provider or --any-provider, not both", exits.USAGE)
    body: dict[str, Any] = {}
    if group is not None:
        body["group"] = group
    if role is not None:
        body["role"] = role
    if any_provider:
        body["provider_id"] = None
    with api_client() as api:
        found = _find_rule(rule, _rules(api))
        if provider is not None:
            body["provider_id"] = _provider_id(api, provider)
        updated = api.patch(f"/sso/rules/{found['id']}", json=body)
    emit(
        updated,
        table=lambda: escape(
            f"updated rule {updated['id']}: {updated['group']} -> {updated['role']}"
        ),
    )


@rules_app.command("remove")
def rules_remove(rule: RuleArgument) -> None:
    """Remove a rule."""
    with api_client() as api:
        found = _find_rule(rule, _rules(api))
        api.delete(f"/sso/rules/{found['id']}")
    emit(
        {**found, "deleted": True},
        table=lambda: escape(f"removed rule {found['id']} ({found['group']} -> {found['role']})"),
    )


@rules_app.command("move")
def rules_move(
    rule: RuleArgument,
    to: Annotated[int, typer.Argument(min=1, help="Its new number (1: first).")],
) -> None:
    """Move a rule to another place in the order; prints the rules in their new order."""
    with api_client() as api:
        rules = _rules(api)
        found = _find_rule(rule, rules)
        ids = [item["id"] for item in rules]
        ids.remove(found["id"])
        ids.insert(min(to, len(rules)) - 1, found["id"])
        reordered = api.request("PUT", "/sso/rules/order", json={"ids": ids})
    emit(
        reordered,
        table=lambda: f"moved rule {found['id']} to #{ids.index(found['id']) + 1}",
    )


# --- settings and explanation ------------------------------------------------------------------


def _member_id(api: ApiClient, member: str) -> str:
    """A member by e-mail or id."""
    return resolve(api, names.MEMBER, member)


def _settings_text(current: dict[str, Any]) -> str:
    return escape(
        "\n".join(
            [
                f"log-in URL: {current['login_url']}",
                f"slug: {current['login_slug'] or '(none)'}",
                f"default role: {current['default_role'] or 'refuse'}",
                f"SSO required: {'yes' if current['sso_required'] else 'no'}",
                f"break-glass admin: {current['break_glass_member_id'] or '(none)'}",
                f"OIDC redirect URL: {current['redirect_uri']}",
            ]
        )
    )


@settings_app.command("show")
def settings_show() -> None:
    """The log-in policy, the team's log-in URL and the redirect URL to register."""
    with api_client() as api:
        current = api.get("/sso/settings")
    emit(current, table=lambda: _settings_text(current))


@settings_app.command("set")
def settings_set(
    slug: Annotated[
        str | None, typer.Option("--slug", help="The log-in URL's slug ('' removes it).")
    ] = None,
    default_role: Annotated[
        str | None,
        typer.Option("--default-role", help="admin, developer, viewer, or 'refuse'."),
    ] = None,
    require_sso: Annotated[
        bool | None, typer.Option("--require-sso/--allow-passwords", help="Require SSO.")
    ] = None,
    break_glass: Annotated[
        str | None,
        name_option(
            names.MEMBER,
            "The break-glass admin (e-mail or id; '' removes).",
            "--break-glass",
            metavar=None,
        ),
    ] = None,
) -> None:
    """Change the log-in policy (only what is given); prints the policy."""
    body: dict[str, Any] = {}
    if slug is not None:
        body["login_slug"] = slug or None
    if default_role is not None:
        body["default_role"] = None if default_role == "refuse" else default_role
    if require_sso is not None:
        body["sso_required"] = require_sso
    if not body and break_glass is None:
        fail(
            "nothing to change: give --slug, --default-role, --require-sso or --break-glass",
            exits.USAGE,
        )
    with api_client() as api:
        if break_glass is not None:
            body["break_glass_member_id"] = _member_id(api, break_glass) if break_glass else None
        updated = api.patch("/sso/settings", json=body)
    emit(updated, table=lambda: _settings_text(updated))


@app.command("explain")
def explain(
    member: Annotated[
        str,
        name_argument(names.MEMBER, "The member (e-mail or id)."),
    ],
) -> None:
    """Which rule (or the default) gave a member their role, and their identities."""
    with api_client() as api:
        answer = api.get(f"/sso/members/{_member_id(api, member)}")

    def text() -> str:
        lines = [f"{answer['email']}: {answer['explanation']}"]
        if answer["is_disabled"]:
            lines.append(f"  disabled ({answer['disabled_reason'] or 'admin'})")
        for identity in answer["identities"]:
            lines.append(
                f"  {identity['provider_name']} ({identity['provider_kind']}): "
                f"{identity['subject']}; groups: {', '.join(identity['groups']) or 'none'}; "
                f"last sign-in: {identity['last_login_at'] or 'never'}"
            )
        return escape("\n".join(lines))

    emit(answer, table=text)
