"""A delivery's payload, as each provider documents it, reduced to what a filter and a run need.

- **GitHub** (docs.github.com, "Webhook events and payloads"): ``push`` carries ``ref``
  (``refs/heads/<branch>`` or ``refs/tags/<tag>``), ``after`` (the pushed commit), ``deleted``,
  ``commits[]`` with ``added``/``modified``/``removed`` and ``head_commit``; ``release`` carries
  ``action`` and ``release.tag_name``/``target_commitish``; ``ping`` is sent when a hook is made.
- **GitLab** (docs.gitlab.com, "Webhook events"): ``Push Hook`` / ``Tag Push Hook`` carry
  ``object_kind`` (``push``/``tag_push``), ``ref``, ``after``, ``checkout_sha`` (the commit; for
  an annotated tag ``after`` is the tag object), ``commits[]`` with the same three path lists and
  ``project.path_with_namespace``; ``Release Hook`` carries ``action``, ``tag`` and ``commit.id``.
- **Gitea** (docs.gitea.com, "Webhooks"): GitHub's shapes (``push`` with ``ref``, ``after``,
  ``commits[]``, ``head_commit``, ``repository.full_name``; ``release`` with ``action`` and
  ``release.tag_name``).
- **generic**: the event from ``X-Shipyard-Event`` (``push``, ``tag``, ``release``, ``ping``)
  and GitHub's push fields when present: ``ref``, ``after``, ``commits[]`` (or a plain
  ``paths`` list), ``repository`` (a name, or an object with ``full_name``).

A push of ``refs/tags/...`` is a ``tag`` event. A release runs on publication only (GitHub and
Gitea ``published``, GitLab ``create``): GitHub also sends ``created`` and ``released`` for the
same release, which would run it twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

KINDS = ("push", "tag", "release")
ZERO_SHA = re.compile(r"^0+$")
FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# The provider event names that mean each kind (other events are logged and filtered).
_EVENT_NAMES = {
    "github": {"push": "push", "release": "release", "ping": "ping"},
    "gitea": {"push": "push", "release": "release"},
    "gitlab": {
        "push hook": "push",
        "tag push hook": "push",
        "release hook": "release",
    },
    "generic": {"push": "push", "tag": "push", "release": "release", "ping": "ping"},
}
_PUBLISHED = {"github": "published", "gitea": "published", "gitlab": "create", "generic": None}


@dataclass(frozen=True)
class Event:
    """One delivery's meaning: ``kind`` is push, tag, release, ping or other."""

    kind: str
    name: str
    ref: str | None = None
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    # Changed paths; None when the event says nothing about paths (a release, a ping).
    paths: tuple[str, ...] | None = None
    repository: str | None = None
    # Why the event runs nothing even when every filter matches (a deleted branch, a release
    # action other than publication).
    inert: str | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _get(payload: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def _sha(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    text = text.lower()
    return text if FULL_SHA.match(text) and not ZERO_SHA.match(text) else None


def changed_paths(payload: Any) -> tuple[str, ...]:
    """Every path ``commits[].added/modified/removed`` names, in order, once each."""
    seen: dict[str, None] = {}
    commits = _get(payload, "commits")
    for commit in commits if isinstance(commits, list) else []:
        for key in ("added", "modified", "removed"):
            paths = commit.get(key) if isinstance(commit, dict) else None
            for path in paths if isinstance(paths, list) else []:
                if isinstance(path, str) and path:
                    seen.setdefault(path, None)
    plain = _get(payload, "paths")
    for path in plain if isinstance(plain, list) else []:
        if isinstance(path, str) and path:
            seen.setdefault(path, None)
    return tuple(seen)


def _repository(provider: str, payload: Any) -> str | None:
    if provider == "gitlab":
        return _text(_get(payload, "project", "path_with_namespace"))
    value = _get(payload, "repository")
    return _text(value) or _text(_get(value, "full_name"))


def _push(provider: str, name: str, payload: Any) -> Event:
    ref = _text(_get(payload, "ref"))
    repository = _repository(provider, payload)
    after = _text(_get(payload, "after"))
    deleted = _get(payload, "deleted") is True or (
        after is not None and bool(ZERO_SHA.match(after))
    )
    # The commit to run: a tag's commit rather than an annotated tag's object when the payload
    # names it (GitLab checkout_sha, GitHub/Gitea head_commit.id); a branch push's `after`.
    tag_commit = _sha(_get(payload, "checkout_sha")) or _sha(_get(payload, "head_commit", "id"))
    inert = f"the push deleted {ref}" if deleted else None
    if ref is not None and ref.startswith("refs/tags/"):
        return Event(
            kind="tag",
            name=name,
            ref=ref,
            tag=ref.removeprefix("refs/tags/"),
            commit=None if deleted else tag_commit or _sha(after),
            paths=changed_paths(payload),
            repository=repository,
            inert=inert,
        )
    branch = ref.removeprefix("refs/heads/") if ref is not None else None
    return Event(
        kind="push",
        name=name,
        ref=ref,
        branch=branch,
        commit=None if deleted else _sha(after),
        paths=changed_paths(payload),
        repository=repository,
        inert=inert,
    )


def _release(provider: str, name: str, payload: Any) -> Event:
    action = _text(_get(payload, "action"))
    if provider == "gitlab":
        tag = _text(_get(payload, "tag"))
        commit = _sha(_get(payload, "commit", "id"))
    else:
        tag = _text(_get(payload, "release", "tag_name")) or _text(_get(payload, "tag"))
        # GitHub and Gitea name a branch or a commit here; only a full SHA pins the run.
        commit = _sha(_get(payload, "release", "target_commitish")) or _sha(_get(payload, "after"))
    wanted = _PUBLISHED[provider]
    inert = None
    if wanted is not None and action != wanted:
        inert = f"release action {action or 'none'!r} (only {wanted!r} runs)"
    return Event(
        kind="release",
        name=name,
        ref=f"refs/tags/{tag}" if tag else None,
        tag=tag,
        commit=commit,
        paths=None,
        repository=_repository(provider, payload),
        inert=inert,
    )


def normalise(provider: str, event_name: str, payload: Any) -> Event:
    """What a delivery of ``event_name`` with ``payload`` means, for ``provider``."""
    kind = _EVENT_NAMES[provider].get(event_name.strip().lower())
    if kind == "ping":
        return Event(kind="ping", name=event_name, repository=_repository(provider, payload))
    if kind == "push":
        event = _push(provider, event_name, payload)
        if provider == "generic" and event_name.strip().lower() == "tag" and event.kind == "push":
            # A generic "tag" event may name a bare tag in `ref`.
            tag = event.branch
            return Event(
                kind="tag",
                name=event_name,
                ref=f"refs/tags/{tag}" if tag else None,
                tag=tag,
                commit=event.commit,
                paths=event.paths,
                repository=event.repository,
                inert=event.inert,
            )
        return event
    if kind == "release":
        return _release(provider, event_name, payload)
    return Event(kind="other", name=event_name, repository=_repository(provider, payload))
