"""``shipyard login``, ``logout`` and ``profiles``: a named address and token in the config file.

``login`` signs in (password, LDAP, or a token pasted on stdin), creates a personal API token
through the API, ends the sign-in session, and stores the address and the token under a profile
name. The password is read from a prompt or stdin, never from an option.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import typer

from shipyard.client import exits, profiles
from shipyard.client.commands import ApiTyper, chosen, fail
from shipyard.client.http import ApiClient, ApiError
from shipyard.client.output import emit, note

profiles_app = ApiTyper(help="Saved `shipyard login` profiles.", no_args_is_help=True)


def _read_stdin_line(what: str, *, strip: bool = True) -> str:
    """One line of standard input; a password keeps its spaces (only the line end goes)."""
    line = sys.stdin.readline()
    value = line.strip() if strip else line.rstrip("\r\n")
    if not value:
        fail(f"standard input held no {what}", exits.USAGE)
    return value


def _profile_name() -> str | None:
    """--profile, else SHIPYARD_PROFILE (as every other command reads them)."""
    return chosen("profile") or os.environ.get("SHIPYARD_PROFILE") or None


def _public(name: str, profile: profiles.Profile, current: str | None) -> dict[str, Any]:
    """A profile as printed: never the token itself."""
    return {
        "name": name,
        "url": profile.url,
        "user": profile.user,
        "token_id": profile.token_id,
        "current": name == current,
    }


def _ldap_provider_id(http: ApiClient, ldap: str, team: str | None) -> str:
    """``--ldap``'s provider id: the id given, or the one LDAP provider of ``--team`` with that
    name (the team's log-in page lists them, before anyone signs in)."""
    with contextlib.suppress(ValueError):
        return str(UUID(ldap))
    if team is None:
        fail(
            f"--ldap {ldap!r} is a provider's name: give your team's log-in slug with --team "
            "(its log-in page is /login/t/SLUG), or the provider's id",
            exits.USAGE,
        )
    page = http.get(f"/auth/teams/{quote(team, safe='')}")
    directories = [p for p in page["providers"] if p["kind"] == "ldap"]
    matches = [p for p in directories if p["name"].casefold() == ldap.casefold()]
    if len(matches) == 1:
        return str(matches[0]["id"])
    known = ", ".join(repr(p["name"]) for p in directories) or "none"
    if matches:
        ids = ", ".join(str(p["id"]) for p in matches)
        fail(f"team {team!r} has {len(matches)} LDAP providers named {ldap!r}: {ids}", exits.USAGE)
    fail(f"team {team!r} has no LDAP provider named {ldap!r} (its LDAP providers: {known})")
    raise AssertionError("unreachable")


def _session_token(
    url: str, *, email: str, provider_id: str | None, password: str
) -> tuple[str, str]:
    """Sign in, with a password or through the LDAP provider; (the session token, the e-mail)."""
    with ApiClient(url, anonymous=True) as http:
        if provider_id is not None:
            answer = http.post(
                "/auth/ldap",
                json={"provider_id": provider_id, "username": email, "password": password},
            )
        else:
            answer = http.post("/auth/login", json={"email": email, "password": password})
    return str(answer["access_token"]), str(answer["user"]["email"])


def _revoke_quietly(url: str, token: str, token_id: str) -> bool:
    """Revoke a personal token with itself; False if that could not be done (best effort)."""
    try:
        with ApiClient(url, token, timeout=10.0) as api:
            api.delete(f"/auth/tokens/{token_id}")
    except ApiError:
        return False
    return True


def login(
    url: Annotated[str, typer.Argument(help="Shipyard's address, e.g. https://shipyard.example.")],
    email: Annotated[
        str | None, typer.Option(help="Your e-mail (with --ldap: your directory user name).")
    ] = None,
    ldap: Annotated[
        str | None,
        typer.Option(
            metavar="PROVIDER",
            help="Sign in through this LDAP provider of your team: its name (with --team) or id.",
        ),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(
            metavar="SLUG", help="Your team's log-in slug (/login/t/SLUG), to find --ldap by name."
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    with_token: Annotated[
        bool,
        typer.Option(
            "--with-token",
            help="Store an API token read from standard input (made on the web, e.g. after SSO).",
        ),
    ] = False,
    name: Annotated[
        str, typer.Option("--name", help="Name of the token created for this machine.")
    ] = "",
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="The token expires after this many days.")
    ] = None,
) -> None:
    """Sign in to Shipyard at URL and store the address and an API token under a profile
    (--profile or SHIPYARD_PROFILE, default "default"), which becomes the current one."""
    profile_name = _profile_name() or profiles.DEFAULT_PROFILE
    address = url.rstrip("/")
    if not address.startswith(("http://", "https://")):
        fail(f"URL: give the address with its scheme, e.g. https://{address}", exits.USAGE)
    try:
        # Read before signing in: a broken config file must not leave a new token behind.
        config = profiles.load()
    except profiles.ProfileError as exc:
        fail(str(exc))
    replaced = config.profiles.get(profile_name)
    try:
        if with_token:
            token = _read_stdin_line("API token")
            token_id = None
            with ApiClient(address, token) as api:
                me = api.get("/me")
            user = str(me.get("email") or "")
        else:
            provider_id = None
            if ldap is not None:
                # Before the prompts: a provider name that matches nothing fails at once.
                with ApiClient(address, anonymous=True) as http:
                    provider_id = _ldap_provider_id(http, ldap, team)
            if email is None:
                email = typer.prompt("User name" if ldap else "E-mail")
            password = (
                _read_stdin_line("password", strip=False)
                if password_stdin
                else typer.prompt("Password", hide_input=True)
            )
            session_token, user = _session_token(
                address, email=email, provider_id=provider_id, password=password
            )
            with ApiClient(address, session_token) as api:
                try:
                    created = api.post(
                        "/auth/tokens",
                        json={
                            "name": name or f"shipyard CLI on {platform.node() or 'this machine'}",
                            "expires_in_days": expires_in_days,
                        },
                    )
                finally:
                    # The sign-in session is not needed once the personal token exists, nor
                    # left open when the token could not be made (best effort: it expires).
                    with contextlib.suppress(ApiError):
                        api.post("/auth/logout")
            token, token_id = str(created["token"]), str(created["id"])
    except ApiError as exc:
        fail(str(exc))
    config.profiles[profile_name] = profiles.Profile(
        url=address, token=token, token_id=token_id, user=user or None
    )
    config.current = profile_name
    try:
        path = profiles.save(config)
    except profiles.ProfileError as exc:
        if token_id is not None:
            _revoke_quietly(address, token, token_id)
        fail(str(exc))
    if replaced is not None and replaced.token_id and replaced.token != token:
        # The token a previous `shipyard login` made for this profile is not used any more.
        _revoke_quietly(replaced.url, replaced.token, replaced.token_id)
    stored = _public(profile_name, config.profiles[profile_name], config.current)
    emit(
        {**stored, "config_file": str(path)},
        table=lambda: (
            f"logged in to {address} as {user or 'the token owner'}; "
            f"profile {profile_name!r} saved in {path}"
        ),
    )


def logout(
    keep_token: Annotated[
        bool, typer.Option("--keep-token", help="Only forget the profile; do not revoke its token.")
    ] = False,
) -> None:
    """Revoke the profile's API token and remove the profile (--profile or SHIPYARD_PROFILE,
    else the current one). Removing the current profile leaves none current."""
    try:
        config = profiles.load()
    except profiles.ProfileError as exc:
        fail(str(exc))
    profile_name = _profile_name() or config.current
    if not profile_name or profile_name not in config.profiles:
        fail(f"no profile {profile_name or '(none is current)'} to log out of", exits.USAGE)
    profile = config.profiles[profile_name]
    revoked = False
    if not keep_token:
        try:
            with ApiClient(profile.url, profile.token) as api:
                if profile.token_id:
                    api.delete(f"/auth/tokens/{profile.token_id}")
                else:
                    api.post("/auth/logout")
            revoked = True
        except ApiError as exc:
            if exc.status_code != 401:  # an already revoked or expired token is fine
                fail(f"{exc}; the profile is kept (use --keep-token to forget it anyway)")
    del config.profiles[profile_name]
    if config.current == profile_name:
        # Not another profile silently: the next command could reach another server.
        config.current = None
    try:
        profiles.save(config)
    except profiles.ProfileError as exc:
        fail(str(exc))
    emit(
        {"name": profile_name, "url": profile.url, "token_revoked": revoked},
        table=lambda: (
            f"logged out of {profile.url} (profile {profile_name!r} removed"
            + (", token revoked)" if revoked else ")")
        ),
    )
    if config.profiles and config.current is None:
        note("no profile is current now: choose one with `shipyard profiles use NAME`")


@profiles_app.command("list")
def list_profiles() -> None:
    """The saved profiles (never their tokens); the current one is marked."""
    try:
        config = profiles.load()
    except profiles.ProfileError as exc:
        fail(str(exc))
    rows = [_public(n, p, config.current) for n, p in sorted(config.profiles.items())]
    emit(rows)
    if not rows:
        note("no profiles yet: run `shipyard login URL`")


@profiles_app.command("use")
def use_profile(
    name: Annotated[str, typer.Argument(help="The profile to make current.")],
) -> None:
    """Make NAME the profile commands use when neither --profile nor SHIPYARD_PROFILE is set."""
    try:
        config = profiles.load()
        if name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none"
            fail(f"no profile named {name!r} (profiles: {known})", exits.USAGE)
        config.current = name
        profiles.save(config)
    except profiles.ProfileError as exc:
        fail(str(exc))
    emit(
        _public(name, config.profiles[name], config.current),
        table=lambda: f"profile {name!r} is now current",
    )


@profiles_app.command("show")
def show_connection() -> None:
    """Where this command line would connect now, and where its token comes from."""
    try:
        target = profiles.resolve(
            url=chosen("url"), token=chosen("token"), profile=chosen("profile")
        )
    except profiles.ProfileError as exc:
        fail(str(exc), exits.USAGE)
    emit(
        {
            "url": target.url,
            "profile": target.profile,
            "token_source": target.token_source,
            "config_file": str(profiles.config_path()),
        }
    )
