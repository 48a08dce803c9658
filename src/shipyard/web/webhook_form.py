"""The webhook form of the web UI: what was typed, read into the webhooks API's body.

Patterns are typed one per line (or comma-separated); the parameter map is rows of a
parameter name and a dotted path into the payload. The form keeps everything as typed so a
422 re-renders it as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from shipyard.webhooks.schemas import WebhookRead

PROVIDERS = (
    ("github", "GitHub"),
    ("gitlab", "GitLab"),
    ("gitea", "Gitea"),
    ("generic", "Generic (any system that can POST)"),
)
GENERIC_AUTH = (
    ("hmac", "HMAC-SHA256 of the body in X-Shipyard-Signature"),
    ("bearer", "A bearer token in Authorization"),
)
EVENTS = (
    ("push", "Push to a branch"),
    ("tag", "Tag pushed"),
    ("release", "Release published"),
)
PATTERN_FIELDS = ("branches", "tags", "paths")
BLANK_MAP_ROWS = 3
MAX_MAP_ROWS = 100
_SPLIT = re.compile(r"[\n,]")


def patterns(text: str) -> list[str]:
    """One pattern per line or comma; blanks dropped."""
    return [part.strip() for part in _SPLIT.split(text) if part.strip()]


@dataclass
class WebhookForm:
    values: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=lambda: ["push"])
    map_rows: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def blank(cls) -> WebhookForm:
        return cls(values={"provider": "github", "auth": "hmac"})

    @classmethod
    def from_hook(cls, hook: WebhookRead) -> WebhookForm:
        """The form of a stored hook, for its edit page."""
        values = {
            "provider": hook.provider,
            "auth": hook.auth,
            **{name: "\n".join(getattr(hook, name)) for name in PATTERN_FIELDS},
        }
        return cls(
            values=values, events=list(hook.events), map_rows=list(hook.parameter_map.items())
        )

    @classmethod
    def from_form(cls, form: FormData) -> WebhookForm:
        values: dict[str, str] = {}
        for name in ("provider", "auth", *PATTERN_FIELDS):
            raw = form.get(name)
            values[name] = raw.strip() if isinstance(raw, str) else ""
        events = [value for value in form.getlist("events") if isinstance(value, str)]
        rows: list[tuple[str, str]] = []
        for index in range(MAX_MAP_ROWS):
            raw_name, raw_path = form.get(f"map_name_{index}"), form.get(f"map_path_{index}")
            if raw_name is None and raw_path is None:
                continue
            rows.append(
                (
                    raw_name.strip() if isinstance(raw_name, str) else "",
                    raw_path.strip() if isinstance(raw_path, str) else "",
                )
            )
        return cls(values=values, events=events, map_rows=rows)

    def rows(self) -> list[tuple[str, str]]:
        """The typed rows plus blank ones to fill in."""
        typed = [row for row in self.map_rows if row[0] or row[1]]
        return typed + [("", "")] * BLANK_MAP_ROWS

    def payload(self) -> dict[str, Any]:
        """The body of ``WebhookCreate``: a row with a name but no path is sent for the API to
        refuse naming it (never silently dropped)."""
        mapping = {name: path for name, path in self.map_rows if name or path}
        body: dict[str, Any] = {
            "provider": self.values.get("provider") or "github",
            "events": self.events,
            "parameter_map": mapping,
            **{name: patterns(self.values.get(name, "")) for name in PATTERN_FIELDS},
        }
        if body["provider"] == "generic":
            body["auth"] = self.values.get("auth") or "hmac"
        return body

    def update_payload(self, provider: str) -> dict[str, Any]:
        """The body of ``WebhookUpdate``: every editable field (lists replace the stored ones);
        the provider is the stored hook's (it cannot change: its secret and URL follow it)."""
        body = self.payload()
        body.pop("provider")
        if provider == "generic":
            body["auth"] = self.values.get("auth") or "hmac"
        return body
