"""Where a command's address and token come from: flags, then the environment, then a profile.

``shipyard login`` stores named profiles (an address and a personal API token) in a TOML file
readable only by its owner: ``$SHIPYARD_CONFIG``, else ``$XDG_CONFIG_HOME/shipyard/config.toml``,
else ``~/.config/shipyard/config.toml``. ``--url``/``--token`` win over ``SHIPYARD_URL``/
``SHIPYARD_TOKEN``, which win over the profile (``--profile``, ``SHIPYARD_PROFILE``, or the one
``shipyard login`` made current).
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"


class ProfileError(Exception):
    """The config file cannot be read or written, or names no such profile (one line)."""


@dataclass(frozen=True)
class Profile:
    url: str
    token: str
    token_id: str | None = None
    user: str | None = None


@dataclass
class Config:
    current: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    """The address and token a command talks with, and where the token came from."""

    url: str
    token: str | None
    profile: str | None
    token_source: str  # "flag", "environment", "profile <name>" or "none"


def config_path() -> Path:
    explicit = os.environ.get("SHIPYARD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shipyard" / "config.toml"


def load(path: Path | None = None) -> Config:
    """The config file's profiles; an empty config when there is no file."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
    try:
        data = tomllib.loads(raw.decode())
        profiles = {
            str(name): Profile(
                url=str(entry["url"]),
                token=str(entry["token"]),
                token_id=entry.get("token_id"),
                user=entry.get("user"),
            )
            for name, entry in dict(data.get("profiles") or {}).items()
        }
    except (
        tomllib.TOMLDecodeError,
        UnicodeDecodeError,
        KeyError,
        TypeError,
        AttributeError,
    ) as exc:
        raise ProfileError(f"{path} is not a Shipyard config file: {exc}") from exc
    current = data.get("current")
    return Config(current=str(current) if current else None, profiles=profiles)


def _toml_string(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def dumps(config: Config) -> str:
    lines = ["# Written by `shipyard login`; it holds API tokens: keep it private (mode 0600).", ""]
    if config.current:
        lines += [f"current = {_toml_string(config.current)}", ""]
    for name, profile in sorted(config.profiles.items()):
        lines.append(f"[profiles.{_toml_string(name)}]")
        lines.append(f"url = {_toml_string(profile.url)}")
        lines.append(f"token = {_toml_string(profile.token)}")
        if profile.token_id:
            lines.append(f"token_id = {_toml_string(profile.token_id)}")
        if profile.user:
            lines.append(f"user = {_toml_string(profile.user)}")
        lines.append("")
    return "\n".join(lines)


def save(config: Config, path: Path | None = None) -> Path:
    """Write the config file owner-only (directory 0700, file 0600), replacing it atomically."""
    path = path or config_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # Created 0600 from the start: the token is never readable by others, not even briefly.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(dumps(config))
        os.chmod(temporary, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(temporary, path)
    except OSError as exc:
        raise ProfileError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from exc
    return path


def resolve(
    *, url: str | None = None, token: str | None = None, profile: str | None = None
) -> Connection:
    """The connection for a command: each of url and token from the first of flag, environment,
    profile; the URL falls back to the local default."""
    env_url = os.environ.get("SHIPYARD_URL") or None
    env_token = os.environ.get("SHIPYARD_TOKEN") or None
    name = profile or os.environ.get("SHIPYARD_PROFILE") or None
    chosen: Profile | None = None
    if name is not None or not (url or env_url) or not (token or env_token):
        config = load()
        if name is not None and name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none yet: run `shipyard login URL`"
            raise ProfileError(f"no profile named {name!r} in {config_path()} (profiles: {known})")
        name = name or config.current
        chosen = config.profiles.get(name) if name else None
    address = (url or env_url or (chosen.url if chosen else None) or DEFAULT_URL).rstrip("/")
    if token:
        token_source = "flag"
    elif env_token:
        token, token_source = env_token, "environment"
    elif chosen is not None and chosen.url.rstrip("/") == address:
        # A profile's token goes only to its own address, never to one a flag points elsewhere.
        token, token_source = chosen.token, f"profile {name}"
    else:
        token_source = "none"
    return Connection(
        url=address,
        token=token,
        profile=name if chosen else None,
        token_source=token_source,
    )
