"""A name or an id wherever a command takes an id: hosts, groups, repositories, templates, ...

An id (a UUID) is used as given. Anything else is looked up in the tenant's list by exact name
(a repository also by ``owner/name`` and by URL); no match is an error, several matches a usage
error that lists their ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shipyard.client.http import ApiClient, ApiError


class AmbiguousName(ApiError):
    """Several objects carry the name given."""


@dataclass(frozen=True)
class Kind:
    noun: str
    path: str
    fields: tuple[str, ...] = ("name",)
    # A list filter that narrows the search server-side (it must be a superset of the matches).
    filter_param: str | None = None
    paginated: bool = True


HOST = Kind("host", "/hosts", filter_param="search")
GROUP = Kind("group", "/host-groups", paginated=False)
REPOSITORY = Kind(
    "repository",
    "/repositories",
    fields=("name", "full_name", "url", "clone_url"),
    filter_param="q",
)
TEMPLATE = Kind("template", "/templates", filter_param="name")
GIT_PROVIDER = Kind("git provider", "/git-providers", fields=("name", "display_name"))
CICD_PROVIDER = Kind("CI/CD provider", "/cicd-providers")
SCHEDULE = Kind("schedule", "/schedules")
CHANNEL = Kind("notification channel", "/notification-channels", paginated=False)
SSO_PROVIDER = Kind("identity provider", "/sso/providers", paginated=False)
AUDIT_STREAM = Kind("audit stream", "/audit/streams", paginated=False)
MEMBER = Kind("member", "/tenant/members", fields=("email",), paginated=False)


def plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def is_id(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _candidates(api: ApiClient, kind: Kind, value: str | None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {kind.filter_param: value} if kind.filter_param and value else {}
    if kind.paginated:
        return list(api.paginate(kind.path, limit=200, **params))
    answer = api.get(kind.path, **params)
    items = answer["items"] if isinstance(answer, dict) else answer
    return list(items)


def matches(kind: Kind, value: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items whose name fields equal ``value``; case-insensitively only if none match exactly."""
    exact = [item for item in items if any(item.get(f) == value for f in kind.fields)]
    if exact:
        return exact
    folded = value.casefold()
    return [
        item
        for item in items
        if any(isinstance(item.get(f), str) and item[f].casefold() == folded for f in kind.fields)
    ]


def resolve(api: ApiClient, kind: Kind, value: str) -> str:
    """The id of the ``kind`` named (or identified by) ``value``."""
    if is_id(value):
        return value
    found = matches(kind, value, _candidates(api, kind, value))
    if not found:
        raise ApiError(f"no {kind.noun} named {value!r}", status_code=404, code="not_found")
    if len(found) > 1:
        ids = ", ".join(str(item["id"]) for item in found)
        raise AmbiguousName(
            f"{len(found)} {plural(kind.noun)} are named {value!r} ({ids}): give an id",
            code="ambiguous_name",
        )
    return str(found[0]["id"])


def names(api: ApiClient, kind: Kind) -> list[str]:
    """Every name of ``kind`` (shell completion)."""
    return [
        str(item[kind.fields[0]])
        for item in _candidates(api, kind, None)
        if item.get(kind.fields[0])
    ]
