"""``shipyard deploy``: create, follow, list, show, cancel and re-run deployments over the REST API."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError
from shipyard.deployments.log_format import terminal_line

app = typer.Typer(
    help="Deployments (talks to SHIPYARD_URL with SHIPYARD_TOKEN).", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)
FINAL = {"success", "failed", "partial", "cancelled", "interrupted"}
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
EXIT_CODES = {"success": 0, "partial": 2, "failed": 1, "cancelled": 3, "interrupted": 4}


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def client() -> ApiClient:
    try:
        return ApiClient()
    except ApiError as exc:
        fail(str(exc))
        raise


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def parse_env(values: list[str], *, secret: bool) -> list[dict[str, Any]]:
    variables = []
    for value in values:
        name, sep, content = value.partition("=")
        if not sep:
            fail(f"--{'secret' if secret else 'env'} takes NAME=VALUE, got {value!r}")
        variables.append({"name": name, "value": content, "secret": secret})
    return variables


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Deployment name.")],
    repository: Annotated[str | None, typer.Option(help="Repository id.")] = None,
    script: Annotated[
        list[str] | None,
        typer.Option(help="Script id; repeat in run order. ID:arg1,arg2 adds arguments."),
    ] = None,
    host: Annotated[list[str] | None, typer.Option(help="Host id; repeat for several.")] = None,
    ref: Annotated[
        str | None, typer.Option(help="Branch, tag or SHA (default branch otherwise).")
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE environment variable.")] = None,
    secret: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE secret variable (masked in logs).")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Run later, at this ISO time with timezone.")
    ] = None,
    parallelism: Annotated[int, typer.Option(help="Hosts at once.")] = 20,
    batch_size: Annotated[int | None, typer.Option(help="Hosts per rolling batch.")] = None,
    stop_on_failure: Annotated[bool, typer.Option(help="Stop at the first failed host.")] = False,
    timeout: Annotated[int, typer.Option(help="Per-script timeout in seconds.")] = 3600,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the deployment until it ends.")
    ] = False,
    override_freeze: Annotated[
        str | None,
        typer.Option(
            "--override-freeze",
            metavar="REASON",
            help="Admins: start it although a freeze window is in force (the reason is audited).",
        ),
    ] = None,
) -> None:
    """Create a deployment; with --wait, follow it and exit with its outcome."""
    scripts = []
    for item in script or []:
        script_id, _, args = item.partition(":")
        scripts.append({"script_id": script_id, "arguments": args.split(",") if args else []})
    body: dict[str, Any] = {
        "name": name,
        "repository_id": repository,
        "ref": ref,
        "scripts": scripts,
        "host_ids": host or [],
        "environment": parse_env(env or [], secret=False) + parse_env(secret or [], secret=True),
        "options": {
            "parallelism": parallelism,
            "batch_size": batch_size,
            "stop_on_failure": stop_on_failure,
            "script_timeout_seconds": timeout,
        },
    }
    if at:
        body.update(schedule="later", scheduled_time=at)
    if override_freeze is not None:
        body["freeze_override"] = {"reason": override_freeze}
    with client() as api:
        try:
            deployment = api.post("/deployments", json=body)
        except ApiError as exc:
            fail(str(exc))
            return
        console.print(f"created deployment {deployment['id']} ({styled(deployment['status'])})")
        if wait:
            raise typer.Exit(follow(api, deployment["id"]))


# The log filters of `watch` and `logs`: the same as the grid and the download on the web.
HostOption = Annotated[
    str | None, typer.Option("--host", metavar="NAME|ID", help="Only this host's lines.")
]
ScriptOption = Annotated[
    str | None,
    typer.Option(
        "--script", metavar="NAME|ID", help="Only this script's lines (name, path or id)."
    ),
]
FailedOption = Annotated[
    bool, typer.Option("--failed", help="Only the lines of failed host/script pairs.")
]
GrepOption = Annotated[
    str | None,
    typer.Option(
        "--grep", metavar="PATTERN", help="Only lines containing PATTERN (case-insensitive)."
    ),
]
RegexOption = Annotated[
    bool, typer.Option("--regex", "-E", help="PATTERN is a regular expression.")
]
ColorOption = Annotated[
    bool | None,
    typer.Option(
        "--color/--no-color",
        help="ANSI colours in the output (default: when stdout is a terminal and NO_COLOR is unset).",
    ),
]


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
                fail(f"--grep is not a valid regular expression: {exc}")
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


@app.command("watch")
def watch(
    deployment_id: str,
    host: HostOption = None,
    script: ScriptOption = None,
    failed: FailedOption = False,
    grep: GrepOption = None,
    regex: RegexOption = False,
    color: ColorOption = None,
) -> None:
    """Follow a deployment: the live log and its progress, until it ends.

    With --failed the failed scripts' lines are printed when the run ends (a script is known to
    have failed only then).
    """
    filters = LogFilters(host=host, script=script, failed=failed, grep=grep, regex=regex)
    with client() as api:
        raise typer.Exit(follow(api, deployment_id, filters=filters, colour=use_colour(color)))


@app.command("logs")
def logs(
    deployment_id: str,
    host: HostOption = None,
    script: ScriptOption = None,
    failed: FailedOption = False,
    grep: GrepOption = None,
    regex: RegexOption = False,
    color: ColorOption = None,
) -> None:
    """Print a deployment's stored log, streamed, with the filters of its page."""
    filters = LogFilters(host=host, script=script, failed=failed, grep=grep, regex=regex)
    with client() as api:
        try:
            print_download(api, deployment_id, filters, colour=use_colour(color))
        except ApiError as exc:
            fail(str(exc))


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
    for entry in download_lines(api, deployment_id, filters):
        print_entry(entry, entry.get("host") or entry.get("host_id"), colour=colour)
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
    """Print the live log, then the results; return the exit code for the final status."""
    filters = filters or LogFilters()
    colour = use_colour(None) if colour is None else colour
    status = "unknown"
    try:
        matcher = LiveMatcher(api, deployment_id, filters)
        if filters.failed:
            err_console.print("the failed scripts' lines follow when the run ends", highlight=False)
        event = None
        for line in api.stream_lines(f"/deployments/{deployment_id}/logs/stream"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "log":
                entry = json.loads(line[6:])
                if not filters.failed and matcher.matches(entry):
                    print_entry(entry, matcher.name(entry.get("host_id")), colour=colour)
                    sys.stdout.flush()
            elif line.startswith("data: ") and event == "end":
                status = json.loads(line[6:])["status"]
                break
        if filters.failed:
            print_download(api, deployment_id, filters, colour=colour)
        console.print(results_table(all_results(api, deployment_id), only_failed=filters.failed))
    except ApiError as exc:
        fail(str(exc))
    console.print(f"deployment {deployment_id}: {styled(status)}")
    return EXIT_CODES.get(status, 1)


@app.command("list")
def list_deployments(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
) -> None:
    """The newest deployments."""
    with client() as api:
        try:
            page = api.get("/deployments", limit=limit, status=status)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "name", "status", "created", "hosts"):
        table.add_column(column)
    for item in page["items"]:
        table.add_row(
            item["id"],
            item["name"],
            styled(item["status"]),
            item["created_at"][:19],
            str(len(item["host_ids"])),
        )
    console.print(table)


@app.command("show")
def show(deployment_id: str) -> None:
    """One deployment with its per-host, per-script results."""
    with client() as api:
        try:
            deployment = api.get(f"/deployments/{deployment_id}")
            console.print(f"[bold]{deployment['name']}[/] {styled(deployment['status'])}")
            for key in (
                "id",
                "ref",
                "commit_sha",
                "template_id",
                "trigger",
                "created_at",
                "started_at",
                "completed_at",
                "error",
            ):
                if deployment.get(key):
                    console.print(f"  {key}: {deployment[key]}", highlight=False)
            launched_by = deployment.get("launched_by") or {}
            if launched_by:
                who = launched_by.get("name") or launched_by.get("id") or ""
                console.print(f"  launched by: {launched_by['kind']} {who}", highlight=False)
            if deployment.get("parameters"):
                # Secret values come back as *** already.
                console.print(
                    f"  parameters: {json.dumps(deployment['parameters'])}", highlight=False
                )
            console.print(results_table(all_results(api, deployment_id), only_failed=False))
        except ApiError as exc:
            fail(str(exc))


@app.command("cancel")
def cancel(deployment_id: str) -> None:
    """Cancel a waiting or running deployment."""
    with client() as api:
        try:
            deployment = api.post(f"/deployments/{deployment_id}/cancel")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"deployment {deployment_id}: cancel requested ({styled(deployment['status'])})")


@app.command("rerun")
def rerun(
    deployment_id: str,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the new deployment.")] = False,
) -> None:
    """Run a deployment again with the same inputs."""
    with client() as api:
        try:
            deployment = api.post(f"/deployments/{deployment_id}/rerun")
        except ApiError as exc:
            fail(str(exc))
            return
        console.print(f"created deployment {deployment['id']} (re-run of {deployment_id})")
        if wait:
            raise typer.Exit(follow(api, deployment["id"]))
