"""Following a deployment from the command line: the live log (Server-Sent Events resumed from
``Last-Event-ID``), the stored log's download with the page's filters, and the results table.
``shipyard deploy watch``, ``create --wait`` and ``rerun --wait`` and ``shipyard run --wait`` end
here and exit with the run's outcome (``shipyard.client.exits``)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, exits
from shipyard.client.commands import fail
from shipyard.client.output import console, emit, emit_event, is_table, note
from shipyard.deployments.log_format import terminal_line

STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "partial": "yellow",
    "cancelled": "magenta",
    "interrupted": "yellow",
    "in_progress": "cyan",
    "pending": "white",
    "scheduled": "blue",
    "pending_approval": "yellow",
    "running": "cyan",
    "skipped": "dim",
}


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def announce(deployment: dict[str, Any], text: str, *, wait: bool) -> None:
    """The new deployment: its line for people; as JSON unless followed (the follow's summary
    carries it then, and stdout stays one JSON object per line)."""
    if wait and not is_table():
        note(Text.from_markup(text).plain)
        return
    emit(deployment, table=lambda: text)


@dataclass
class LogFilters:
    host: str | None = None
    script: str | None = None
    failed: bool = False
    grep: str | None = None
    regex: bool = False

    @property
    def narrowing(self) -> bool:
        return bool(self.host or self.script or self.failed or self.grep)

    def params(self) -> dict[str, str]:
        """The download API's query for these filters."""
        params = {"format": "jsonl"}
        if self.host:
            params["host"] = self.host
        if self.script:
            params["script"] = self.script
        if self.failed:
            params["failed"] = "true"
        if self.grep:
            params["grep"] = self.grep
            if self.regex:
                params["regex"] = "true"
        return params


def use_colour(choice: bool | None) -> bool:
    if choice is not None:
        return choice
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def print_entry(entry: dict[str, Any], host: str | None, *, colour: bool) -> None:
    sys.stdout.write(
        terminal_line(
            timestamp=str(entry.get("timestamp") or ""),
            host=host,
            stream=entry.get("stream"),
            level=str(entry.get("level") or "INFO"),
            message=str(entry.get("message") or ""),
            colour=colour,
        )
    )


def all_results(api: ApiClient, deployment_id: str) -> dict[str, Any]:
    """The results grid (every host, page by page)."""
    results: dict[str, Any] = api.get(f"/deployments/{deployment_id}/results", limit=5000)
    offset = results.get("next_offset")
    while offset is not None:
        page = api.get(f"/deployments/{deployment_id}/results", limit=5000, offset=offset)
        results["hosts"].extend(page["hosts"])
        offset = page.get("next_offset")
    return results


@dataclass
class LiveMatcher:
    """The filters applied to live lines (``watch``), with the names the grid gives ids."""

    api: ApiClient
    deployment_id: str
    filters: LogFilters
    host_names: dict[str, str] = field(default_factory=dict)
    host_ids: set[str] | None = None
    row_ids: set[str] | None = None
    known: set[str] = field(default_factory=set)
    refreshed: float = 0.0
    pattern: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        grep = self.filters.grep
        if grep:
            try:
                self.pattern = re.compile(grep if self.filters.regex else re.escape(grep), re.I)
            except re.error as exc:
                fail(f"--grep is not a valid regular expression: {exc}", exits.USAGE)
        self.refresh(strict=True)

    def refresh(self, *, strict: bool = False) -> None:
        """Read the grid again: hosts and script rows that appeared since (a rule resolved)."""
        self.refreshed = time.monotonic()
        results = all_results(self.api, self.deployment_id)
        labels = {s["position"]: (s["name"], s["path"]) for s in results["scripts"]}
        self.host_names = {h["host_id"]: h["name"] for h in results["hosts"] if h["host_id"]}
        self.known = set(self.host_names)
        host, script = self.filters.host, self.filters.script
        hosts = {h_id for h_id, name in self.host_names.items() if host in (h_id, name)}
        rows: set[str] = set()
        for row in results["hosts"]:
            for cell in row["cells"]:
                self.known.add(cell["id"])
                if script in (cell["id"], cell["script_id"], *labels.get(cell["position"], ())):
                    rows.add(cell["id"])
        started = bool(results["hosts"])
        if host:
            if strict and started and not hosts:
                fail(f"no host {host!r} in deployment {self.deployment_id}")
            self.host_ids = hosts
        if script:
            if strict and started and not rows:
                fail(f"no script {script!r} in deployment {self.deployment_id}")
            self.row_ids = rows

    def name(self, host_id: str | None) -> str | None:
        return self.host_names.get(host_id, host_id) if host_id else None

    def matches(self, entry: dict[str, Any]) -> bool:
        host_id, row_id = entry.get("host_id"), entry.get("deployment_script_id")
        # Names are needed for every host; script rows only when filtering by script.
        unknown = (host_id and host_id not in self.known) or (
            self.row_ids is not None and row_id and row_id not in self.known
        )
        if unknown and time.monotonic() - self.refreshed > 2.0:
            self.refresh()
        if self.host_ids is not None and host_id not in self.host_ids:
            return False
        if self.row_ids is not None and row_id not in self.row_ids:
            return False
        return self.pattern is None or bool(self.pattern.search(str(entry.get("message") or "")))


def download_lines(
    api: ApiClient, deployment_id: str, filters: LogFilters
) -> Iterator[dict[str, Any]]:
    """The stored lines the filters keep, as the server streams them (JSON lines)."""
    path = f"/deployments/{deployment_id}/logs/download?{urlencode(filters.params())}"
    for raw in api.stream_lines(path):
        if raw.strip():
            yield json.loads(raw)


def print_download(
    api: ApiClient, deployment_id: str, filters: LogFilters, *, colour: bool
) -> None:
    table = is_table()
    for entry in download_lines(api, deployment_id, filters):
        if table:
            print_entry(entry, entry.get("host") or entry.get("host_id"), colour=colour)
        else:
            emit_event(entry)
    sys.stdout.flush()


def results_table(results: dict[str, Any], *, only_failed: bool) -> Table:
    """The cells that need a look: every one for a small run, else those that did not succeed."""
    labels = {s["position"]: s["name"] or s["path"] or "-" for s in results["scripts"]}
    cells = [(h, c) for h in results["hosts"] for c in h["cells"]]
    small = len(cells) <= 20 and not only_failed
    table = Table(title=results["progress"]["text"], expand=False)
    for column in ("host", "script", "status", "exit"):
        table.add_column(column)
    for host, cell in cells:
        if not small and cell["status"] == "success":
            continue
        if only_failed and cell["status"] not in ("failed", "interrupted"):
            continue
        table.add_row(
            host["name"],
            labels.get(cell["position"], "-"),
            styled(cell["status"]),
            "" if cell["exit_code"] is None else str(cell["exit_code"]),
        )
    return table


def follow(
    api: ApiClient,
    deployment_id: str,
    *,
    filters: LogFilters | None = None,
    colour: bool | None = None,
) -> int:
    """Print the live log, then the results; return the exit code for the outcome.

    People get coloured lines, a results table and a status line; ``-o json`` gets one JSON
    object per log line (the API's fields) and then ``{"deployment": ..., "results": ...}``."""
    filters = filters or LogFilters()
    colour = use_colour(None) if colour is None else colour
    table = is_table()
    matcher = LiveMatcher(api, deployment_id, filters)
    if filters.failed:
        note("the failed scripts' lines follow when the run ends")
    last_seq = -1
    for event in api.events(f"/deployments/{deployment_id}/logs/stream"):
        if event.event != "log":
            continue
        entry = json.loads(event.data)
        seq = entry.get("seq")
        if isinstance(seq, int):
            # The stream resumes after the last id received; a line seen twice is not printed twice.
            if seq <= last_seq:
                continue
            last_seq = seq
        if filters.failed or not matcher.matches(entry):
            continue
        if table:
            print_entry(entry, matcher.name(entry.get("host_id")), colour=colour)
            sys.stdout.flush()
        else:
            emit_event(entry)
    if filters.failed:
        print_download(api, deployment_id, filters, colour=colour)
    deployment = api.get(f"/deployments/{deployment_id}")
    results = all_results(api, deployment_id)
    status = str(deployment["status"])
    if table:
        console.print(results_table(results, only_failed=filters.failed))
        line = f"deployment {deployment_id}: {styled(status)}"
        if deployment.get("error"):
            line += f" ({deployment['error']})"
        console.print(line, highlight=False)
    else:
        emit_event({"deployment": deployment, "results": results})
    return exits.for_outcome(deployment)
