"""Which deliveries run, and the run's parameter values taken from the payload.

Patterns (branches, tags, paths) are globs, matched against the whole name:

- ``*`` any run of characters except ``/``; ``?`` one character except ``/``;
- ``**`` any run of characters including ``/`` (``**/`` also matches no directory at all, so
  ``docs/**/*.md`` matches ``docs/a.md`` and ``docs/x/y/a.md``);
- ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (not of) a set, as in :mod:`fnmatch`.

So ``release/*`` matches ``release/1.2`` but not ``release/1.2/hotfix``; ``release/**`` matches
both. Case matters (git's names do). An empty list matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from shipyard.webhooks.payloads import Event

MAX_PATTERN = 255
MAX_MAPPED_VALUE = 10_000


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression of ``pattern`` (see the module's rules)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def check_pattern(pattern: str) -> str:
    """``pattern`` if it compiles (for the schemas); ValueError otherwise."""
    if not pattern or len(pattern) > MAX_PATTERN:
        raise ValueError(f"a pattern is 1 to {MAX_PATTERN} characters")
    try:
        compile_glob(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid pattern: {exc}") from exc
    return pattern


def matches(patterns: Sequence[str], value: str) -> bool:
    """Whether ``value`` matches one of ``patterns`` (an empty list matches everything)."""
    return not patterns or any(compile_glob(pattern).match(value) for pattern in patterns)


def filter_reason(
    event: Event,
    *,
    events: Sequence[str],
    branches: Sequence[str],
    tags: Sequence[str],
    paths: Sequence[str],
) -> str | None:
    """Why ``event`` runs nothing under these filters, or None when it runs."""
    if event.kind == "other":
        return f"event {event.name!r} is not push, tag or release"
    if event.kind not in events:
        return f"event {event.kind} is not one of this hook's events ({', '.join(events)})"
    if event.inert is not None:
        return event.inert
    if event.kind == "push":
        if event.branch is None:
            return "the push names no branch (no 'ref')"
        if not matches(branches, event.branch):
            return f"branch {event.branch!r} matches none of {', '.join(branches)}"
    else:
        if event.tag is None:
            return f"the {event.kind} names no tag"
        if not matches(tags, event.tag):
            return f"tag {event.tag!r} matches none of {', '.join(tags)}"
    if paths and event.paths is not None and not any(matches(paths, p) for p in event.paths):
        return f"no changed path matches {', '.join(paths)}"
    return None


def lookup(payload: Any, path: str) -> tuple[bool, Any]:
    """``payload`` followed along dotted ``path`` (``head_commit.message``, ``commits.0.id``)."""
    current = payload
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return current is not None, current


class MappingRefused(Exception):
    """A mapped payload value that cannot be a parameter value (an object, a mixed list)."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(f"parameters.{name}: {path} in the payload is not a single value")
        self.field = f"parameters.{name}"
        self.reason = str(self)


def map_parameters(parameter_map: Mapping[str, str], payload: Any) -> dict[str, Any]:
    """The launch values ``parameter_map`` (parameter -> dotted path) takes from ``payload``.

    A path the payload does not have leaves the parameter out, so its default applies; a
    required parameter without one is then refused by the launch's own check, naming
    ``parameters.<name>``. A value must be text, a number, a boolean or a list of texts;
    anything else raises MappingRefused naming the parameter.
    """
    values: dict[str, Any] = {}
    for name, path in parameter_map.items():
        found, value = lookup(payload, path)
        if not found:
            continue
        if isinstance(value, bool | int | float):
            values[name] = value
        elif isinstance(value, str):
            values[name] = value[:MAX_MAPPED_VALUE]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            values[name] = value
        else:
            raise MappingRefused(name, path)
    return values
