"""The deployment wizard's state: carried from step to step in the query string, then validated.

Steps are plain GET forms (nothing changes until the last POST), so the browser's back button
and reloads behave, and every step can be linked to. The order of ``script_id`` in the query is
the order the scripts run in: picks are appended, and the scripts step's up/down buttons (plain
submit buttons, so they work without JavaScript) move one (``move=up:<id>``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from starlette.datastructures import ImmutableMultiDict

STEPS = (
    ("source", "Repository"),
    ("scripts", "Scripts"),
    ("hosts", "Hosts"),
    ("options", "Schedule & options"),
    ("review", "Review"),
)
STATE_KEYS = (
    "name",
    "repository_id",
    "ref",
    "schedule",
    "scheduled_local",
    "tz_offset",
    "parallelism",
    "batch_size",
    "stop_on_failure",
    "cicd_before",
    "cicd_before_params",
    "cicd_after",
    "cicd_after_params",
    "tags",
)
MOVES = ("up", "down")


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


@dataclass
class WizardState:
    values: dict[str, str] = field(default_factory=dict)
    script_ids: list[UUID] = field(default_factory=list)
    arguments: dict[UUID, str] = field(default_factory=dict)
    host_ids: list[UUID] = field(default_factory=list)
    group_ids: list[UUID] = field(default_factory=list)

    @classmethod
    def parse(cls, params: ImmutableMultiDict[str, Any]) -> WizardState:
        values = {
            key: str(params.get(key, "")).strip()
            for key in STATE_KEYS
            if isinstance(params.get(key, ""), str)
        }
        script_ids = [
            parsed
            for raw in params.getlist("script_id")
            if isinstance(raw, str) and (parsed := _uuid(raw))
        ]
        arguments = {
            script_id: str(params.get(f"args_{script_id}", ""))
            for script_id in script_ids
            if params.get(f"args_{script_id}")
        }
        host_ids = [
            parsed
            for raw in params.getlist("host_id")
            if isinstance(raw, str) and (parsed := _uuid(raw))
        ]
        group_ids = [
            parsed
            for raw in params.getlist("group_id")
            if isinstance(raw, str) and (parsed := _uuid(raw))
        ]
        return cls(
            values=values,
            script_ids=list(dict.fromkeys(script_ids)),
            arguments=arguments,
            host_ids=list(dict.fromkeys(host_ids)),
            group_ids=list(dict.fromkeys(group_ids)),
        )

    def move(self, command: str) -> None:
        """Move one script a place up or down the run order (``up:<id>`` or ``down:<id>``)."""
        direction, _, raw = command.partition(":")
        script_id = _uuid(raw)
        if direction not in MOVES or script_id not in self.script_ids:
            return
        index = self.script_ids.index(script_id)
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(self.script_ids):
            order = self.script_ids
            order[index], order[other] = order[other], order[index]

    @property
    def tags(self) -> list[str]:
        """The tags a target asks for: comma- or space-separated, each once."""
        raw = self.get("tags").replace(",", " ").split()
        return list(dict.fromkeys(raw))

    @property
    def by_rule(self) -> bool:
        """The hosts are (also) chosen by group or tag, resolved when the run starts."""
        return bool(self.group_ids or self.tags)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key) or default

    def hidden(self, *, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """Name/value pairs to carry the state through the next form, minus ``skip``."""
        pairs = [(key, value) for key, value in self.values.items() if value and key not in skip]
        if "scripts" not in skip:
            pairs += [("script_id", str(script_id)) for script_id in self.script_ids]
            pairs += [(f"args_{sid}", text) for sid, text in self.arguments.items()]
        if "hosts" not in skip:
            pairs += [("host_id", str(host_id)) for host_id in self.host_ids]
            pairs += [("group_id", str(group_id)) for group_id in self.group_ids]
        return pairs

    def query(self, *, skip: tuple[str, ...] = ()) -> str:
        return urlencode(self.hidden(skip=skip))

    def split_arguments(self, script_id: UUID) -> list[str]:
        """Arguments as a shell would split them: quotes group words."""
        return shlex.split(self.arguments.get(script_id, ""))

    def scheduled_time(self) -> datetime | None:
        """The browser's local date-time plus its UTC offset (minutes, as JS reports it)."""
        local = self.get("scheduled_local")
        if not local:
            return None
        naive = datetime.fromisoformat(local)
        offset = int(self.get("tz_offset", "0") or 0)
        # getTimezoneOffset() is UTC minus local, in minutes.
        return naive.replace(tzinfo=timezone(timedelta(minutes=-offset)))

    @staticmethod
    def parameters(text: str) -> dict[str, str]:
        """``key=value`` lines into a dict; blank lines are skipped."""
        found: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"'{line.strip()}' is not key=value")
            found[key.strip()] = value.strip()
        return found

    def body(self) -> dict[str, Any]:
        """The DeploymentCreate request this wizard describes (validated by its schema)."""
        options: dict[str, Any] = {"stop_on_failure": self.get("stop_on_failure") == "1"}
        if self.get("parallelism"):
            options["parallelism"] = self.get("parallelism")
        if self.get("batch_size"):
            options["batch_size"] = self.get("batch_size")
        steps: list[dict[str, Any]] = []
        for stage in ("before", "after"):
            job = self.get(f"cicd_{stage}")
            if job:
                steps.append(
                    {
                        "cicd_job_id": job,
                        "stage": stage,
                        "parameters": self.parameters(self.get(f"cicd_{stage}_params")),
                    }
                )
        schedule = self.get("schedule", "now")
        body: dict[str, Any] = {
            "name": self.get("name") or "Deployment",
            "repository_id": self.get("repository_id") or None,
            "ref": self.get("ref") or None,
            "scripts": [
                {"script_id": str(script_id), "arguments": self.split_arguments(script_id)}
                for script_id in self.script_ids
            ],
            "host_ids": [str(host_id) for host_id in self.host_ids],
            "schedule": schedule,
            "options": options,
            "cicd_steps": steps,
        }
        if self.by_rule:
            # A rule: the hosts picked plus those of the groups and tags, resolved at start.
            body["target"] = {
                "host_ids": body.pop("host_ids"),
                "group_ids": [str(group_id) for group_id in self.group_ids],
                "tags": self.tags,
            }
        if schedule == "later":
            body["scheduled_time"] = self.scheduled_time()
        return body
