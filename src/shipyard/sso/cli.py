"""``shipyard sso``: identity providers, group-to-role rules and the log-in policy
(SHIPYARD_URL, SHIPYARD_TOKEN).

A provider's secret (the OIDC client secret, the LDAP service account's password) never travels
on the command line: ``--secret-stdin`` reads one line from standard input, ``--secret-prompt``
asks without echoing. Its settings are ``--set key=value`` (a JSON value, else text:
``--set start_tls=true``, ``--set scopes="openid email groups"``).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(
    help="Single sign-on: identity providers, role rules, log-in policy "
    "(SHIPYARD_URL, SHIPYARD_TOKEN).",
    no_args_is_help=True,
)
providers_app = typer.Typer(help="Identity providers (OpenID Connect, LDAP).", no_args_is_help=True)
rules_app = typer.Typer(help="Group-to-role rules, in order.", no_args_is_help=True)
settings_app = typer.Typer(help="The team's log-in policy.", no_args_is_help=True)
app.add_typer(providers_app, name="providers")
app.add_typer(rules_app, name="rules")
app.add_typer(settings_app, name="settings")
console = Console()
err_console = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A setting, key=value (JSON or text). oidc: issuer, client_id, scopes, "
        "groups_claim, email_claim, name_claim; ldap: url, start_tls, bind_dn, user_base, "
        "user_filter, group_search, group_base, group_filter, group_name_attribute, "
        "email_attribute, name_attribute, ca_certificate, timeout_seconds.",
    ),
]
SecretStdin = Annotated[
    bool, typer.Option("--secret-stdin", help="Read the secret from standard input (one line).")
]
SecretPrompt = Annotated[
    bool, typer.Option("--secret-prompt", help="Ask for the secret (not echoed).")
]


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        with ApiClient() as api:
            return api.request(method, path, **kwargs)
    except ApiError as exc:
        _fail(str(exc))


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--set takes key=value, not {pair!r}")
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
        _fail("give the secret with --secret-stdin or --secret-prompt, not both")
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif prompt:
        value = typer.prompt("Secret", hide_input=True)
    else:
        return None
    if not value:
        _fail("the secret is empty")
    return value


def _find_provider(name_or_id: str) -> dict[str, Any]:
    for item in _call("GET", "/sso/providers"):
        if name_or_id in (item["id"], item["name"]):
            found: dict[str, Any] = item
            return found
    _fail(f"no identity provider {name_or_id!r}")
    raise AssertionError  # unreachable: _fail exits


def _show_provider(item: dict[str, Any]) -> None:
    console.print(f"{item['name']} ({item['kind']}, {item['id']})", highlight=False)
    console.print(f"  enabled: {'yes' if item['enabled'] else 'no'}", highlight=False)
    console.print(f"  secret: {'set' if item['has_secret'] else 'none'}", highlight=False)
    console.print(f"  sign-in: {item['login_path']}", highlight=False)
    for key, value in sorted(item["config"].items()):
        shown = json.dumps(value) if not isinstance(value, str) else value
        console.print(f"  {key}: {shown}", highlight=False)


# --- providers ---------------------------------------------------------------------------------


@providers_app.command("list")
def providers_list() -> None:
    """The team's identity providers."""
    table = Table()
    for column in ("id", "name", "kind", "enabled", "secret", "address"):
        table.add_column(column)
    for item in _call("GET", "/sso/providers"):
        config = item["config"]
        table.add_row(
            item["id"],
            item["name"],
            item["kind"],
            "yes" if item["enabled"] else "no",
            "set" if item["has_secret"] else "none",
            str(config.get("issuer") or config.get("url") or ""),
        )
    console.print(table)


@providers_app.command("show")
def providers_show(provider: Annotated[str, typer.Argument(help="Id or name.")]) -> None:
    """One provider's settings (never its secret)."""
    _show_provider(_find_provider(provider))


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
    created = _call("POST", "/sso/providers", json=body)
    console.print(f"created identity provider {created['id']} ({created['name']})", highlight=False)


@providers_app.command("update")
def providers_update(
    provider: Annotated[str, typer.Argument(help="Id or name.")],
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
    found = _find_provider(provider)
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
    updated = _call("PATCH", f"/sso/providers/{found['id']}", json=body)
    console.print(f"updated identity provider {updated['id']} ({updated['name']})", highlight=False)


@providers_app.command("delete")
def providers_delete(
    provider: Annotated[str, typer.Argument(help="Id or name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a provider; its members keep their accounts but can no longer sign in with it."""
    found = _find_provider(provider)
    if not yes:
        typer.confirm(f"Delete identity provider {found['name']}?", abort=True)
    _call("DELETE", f"/sso/providers/{found['id']}")
    console.print(f"deleted identity provider {found['id']} ({found['name']})", highlight=False)


@providers_app.command("test")
def providers_test(provider: Annotated[str, typer.Argument(help="Id or name.")]) -> None:
    """Reach the provider as a sign-in would and say what it found."""
    found = _find_provider(provider)
    result = _call("POST", f"/sso/providers/{found['id']}/test")
    console.print(f"ok: {result['message']}", highlight=False)


# --- rules -------------------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _call("GET", "/sso/rules")
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
    _fail(f"no role rule {rule!r} (give its id or its number in `shipyard sso rules list`)")
    raise AssertionError  # unreachable: _fail exits


def _provider_names() -> dict[str, str]:
    return {item["id"]: item["name"] for item in _call("GET", "/sso/providers")}


@rules_app.command("list")
def rules_list() -> None:
    """The rules in order: the highest role among those whose group a person is in wins."""
    names = _provider_names()
    table = Table()
    for column in ("#", "id", "group", "role", "provider"):
        table.add_column(column)
    for number, item in enumerate(_rules(), start=1):
        provider = (
            names.get(item["provider_id"], item["provider_id"]) if item["provider_id"] else "any"
        )
        table.add_row(str(number), item["id"], item["group"], item["role"], provider)
    console.print(table)


@rules_app.command("add")
def rules_add(
    group: Annotated[str, typer.Argument(help="The group name (or DN) as the provider sends it.")],
    role: Annotated[str, typer.Argument(help="admin, developer or viewer.")],
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only for this provider (id or name).")
    ] = None,
    position: Annotated[
        int | None, typer.Option("--position", min=1, help="Its number (1: first); default last.")
    ] = None,
) -> None:
    """Members of GROUP get ROLE."""
    body: dict[str, Any] = {"group": group, "role": role}
    if provider is not None:
        body["provider_id"] = _find_provider(provider)["id"]
    if position is not None:
        body["position"] = position - 1
    created = _call("POST", "/sso/rules", json=body)
    console.print(
        f"added rule #{created['position'] + 1} {created['id']}: {group} -> {role}", highlight=False
    )


@rules_app.command("update")
def rules_update(
    rule: Annotated[str, typer.Argument(help="Id, or number in the list.")],
    group: Annotated[str | None, typer.Option("--group")] = None,
    role: Annotated[str | None, typer.Option("--role")] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only for this provider (id or name).")
    ] = None,
    any_provider: Annotated[
        bool, typer.Option("--any-provider", help="For every provider.")
    ] = False,
) -> None:
    """Change a rule's group, role or provider."""
    found = _find_rule(rule, _rules())
    body: dict[str, Any] = {}
    if group is not None:
        body["group"] = group
    if role is not None:
        body["role"] = role
    if provider is not None and any_provider:
        _fail("give --provider or --any-provider, not both")
    if provider is not None:
        body["provider_id"] = _find_provider(provider)["id"]
    if any_provider:
        body["provider_id"] = None
    updated = _call("PATCH", f"/sso/rules/{found['id']}", json=body)
    console.print(
        f"updated rule {updated['id']}: {updated['group']} -> {updated['role']}", highlight=False
    )


@rules_app.command("remove")
def rules_remove(rule: Annotated[str, typer.Argument(help="Id, or number in the list.")]) -> None:
    found = _find_rule(rule, _rules())
    _call("DELETE", f"/sso/rules/{found['id']}")
    console.print(
        f"removed rule {found['id']} ({found['group']} -> {found['role']})", highlight=False
    )


@rules_app.command("move")
def rules_move(
    rule: Annotated[str, typer.Argument(help="Id, or number in the list.")],
    to: Annotated[int, typer.Argument(min=1, help="Its new number (1: first).")],
) -> None:
    """Move a rule to another place in the order."""
    rules = _rules()
    found = _find_rule(rule, rules)
    ids = [item["id"] for item in rules]
    ids.remove(found["id"])
    ids.insert(min(to, len(rules)) - 1, found["id"])
    _call("PUT", "/sso/rules/order", json={"ids": ids})
    console.print(f"moved rule {found['id']} to #{ids.index(found['id']) + 1}", highlight=False)


# --- settings and explanation ------------------------------------------------------------------


def _find_member(member: str) -> dict[str, Any]:
    for item in _call("GET", "/tenant/members"):
        if member in (item["id"], item["email"]):
            found: dict[str, Any] = item
            return found
    _fail(f"no member {member!r}")
    raise AssertionError  # unreachable: _fail exits


@settings_app.command("show")
def settings_show() -> None:
    """The log-in policy, the team's log-in URL and the redirect URL to register."""
    current = _call("GET", "/sso/settings")
    console.print(f"log-in URL: {current['login_url']}", highlight=False)
    console.print(f"slug: {current['login_slug'] or '(none)'}", highlight=False)
    console.print(f"default role: {current['default_role'] or 'refuse'}", highlight=False)
    console.print(f"SSO required: {'yes' if current['sso_required'] else 'no'}", highlight=False)
    console.print(
        f"break-glass admin: {current['break_glass_member_id'] or '(none)'}", highlight=False
    )
    console.print(f"OIDC redirect URL: {current['redirect_uri']}", highlight=False)


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
        typer.Option("--break-glass", help="The break-glass admin (e-mail or id; '' removes)."),
    ] = None,
) -> None:
    """Change the log-in policy (only what is given)."""
    body: dict[str, Any] = {}
    if slug is not None:
        body["login_slug"] = slug or None
    if default_role is not None:
        body["default_role"] = None if default_role == "refuse" else default_role
    if break_glass is not None:
        body["break_glass_member_id"] = _find_member(break_glass)["id"] if break_glass else None
    if require_sso is not None:
        body["sso_required"] = require_sso
    if not body:
        _fail("nothing to change: give --slug, --default-role, --require-sso or --break-glass")
    _call("PATCH", "/sso/settings", json=body)
    settings_show()


@app.command("explain")
def explain(member: Annotated[str, typer.Argument(help="The member (e-mail or id).")]) -> None:
    """Which rule (or the default) gave a member their role, and their identities."""
    found = _find_member(member)
    answer = _call("GET", f"/sso/members/{found['id']}")
    console.print(f"{answer['email']}: {answer['explanation']}", highlight=False)
    if answer["is_disabled"]:
        console.print(f"  disabled ({answer['disabled_reason'] or 'admin'})", highlight=False)
    for identity in answer["identities"]:
        console.print(
            f"  {identity['provider_name']} ({identity['provider_kind']}): {identity['subject']}; "
            f"groups: {', '.join(identity['groups']) or 'none'}; "
            f"last sign-in: {identity['last_login_at'] or 'never'}",
            highlight=False,
        )
