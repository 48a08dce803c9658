"""``shipyard templates`` (list, show, create, update, delete, preview, rollback) and
``shipyard run TEMPLATE``.

Secret parameter values never travel on the command line (argv is visible to other users of
the machine and lands in shell history): they come from ``--param-stdin NAME`` or a prompt.
"""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.client import ApiClient, ApiError
from shipyard.deployments.cli import client, console, fail, follow, styled

app = typer.Typer(
    help="Templates: saved runs with parameters (talks to SHIPYARD_URL with SHIPYARD_TOKEN).",
    no_args_is_help=True,
)

PARAM_HELP = "NAME=VALUE; repeat a name for a multi_choice parameter. Not for secrets."
STDIN_HELP = "Read this (secret) parameter's value from one line of standard input."
ParamOption = Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)]
StdinOption = Annotated[list[str] | None, typer.Option("--param-stdin", help=STDIN_HELP)]


def find(api: ApiClient, template: str) -> dict[str, Any]:
    """A template by id or by its exact name."""
    try:
        uuid.UUID(template)
    except ValueError:
        found = api.get("/templates", name=template, limit=1)["items"]
        if not found:
            fail(f"no template named {template!r}")
        result: dict[str, Any] = found[0]
        return result
    by_id: dict[str, Any] = api.get(f"/templates/{template}")
    return by_id


def launch_values(
    template: dict[str, Any], params: list[str], from_stdin: list[str]
) -> dict[str, Any]:
    """The launch's values: --param pairs, --param-stdin lines, prompts for missing secrets."""
    kinds = {item["name"]: item for item in template["parameters"]}
    values: dict[str, Any] = {}
    for pair in params:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--param takes NAME=VALUE, got {name!r}")
        if kinds.get(name, {}).get("type") == "secret":
            fail(
                f"{name} is a secret parameter: pass it with --param-stdin {name} or leave it "
                "out to be asked (a value on the command line is visible to other users)"
            )
        if name in values:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    for name in from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail(f"--param-stdin {name}: standard input ended before its value")
        values[name] = line.rstrip("\r\n")
    for name, item in kinds.items():
        wanted = item["type"] == "secret" and item["required"] and name not in values
        if wanted:
            if not sys.stdin.isatty():
                fail(f"secret parameter {name} is required: pass it with --param-stdin {name}")
            values[name] = getpass.getpass(f"{name}: ")
    return values


@app.command("list")
def list_templates(limit: Annotated[int, typer.Option(help="How many.")] = 50) -> None:
    """The templates, newest first, with their last successful commit."""
    with client() as api:
        try:
            page = api.get("/templates", limit=limit)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "name", "ref", "parameters", "admin only", "last success"):
        table.add_column(column)
    for item in page["items"]:
        last = item["last_success"]
        table.add_row(
            item["id"],
            item["name"],
            item["ref"] or "(default branch)",
            ", ".join(parameter["name"] for parameter in item["parameters"]),
            "yes" if item["admin_only"] else "",
            (last["commit_sha"] or "")[:12] if last else "",
        )
    console.print(table)


@app.command("show")
def show(template: str) -> None:
    """One template (by id or name): its definition, parameters and newest runs."""
    with client() as api:
        try:
            found = find(api, template)
            runs = api.get(f"/templates/{found['id']}/runs", limit=10)["items"]
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"[bold]{found['name']}[/] {found['id']}", highlight=False)
    for key in ("description", "repository_id", "ref"):
        if found.get(key):
            console.print(f"  {key}: {found[key]}", highlight=False)
    console.print(f"  target: {json.dumps(found['target'])}", highlight=False)
    approval = found.get("approval") or {}
    if approval.get("required"):
        console.print(
            f"  approval: {approval['approvals_needed']} of role {approval['approver_role']}+, "
            f"self-approval {'allowed' if approval['allow_self_approval'] else 'not allowed'}, "
            f"expires after {approval['timeout_minutes']} min",
            highlight=False,
        )
    parameters = Table(title="parameters")
    for column in ("name", "type", "required", "default", "rules"):
        parameters.add_column(column)
    for item in found["parameters"]:
        rules = [
            f"{key}={item[key]}" for key in ("pattern", "min", "max") if item.get(key) is not None
        ]
        if item["choices"]:
            rules.append("choices=" + ",".join(item["choices"]))
        parameters.add_row(
            item["name"],
            item["type"],
            "yes" if item["required"] else "",
            "" if item["default"] is None else json.dumps(item["default"]),
            " ".join(rules),
        )
    console.print(parameters)
    history = Table(title="runs")
    for column in ("id", "status", "commit", "trigger", "launched by", "seconds"):
        history.add_column(column)
    for run in runs:
        launched_by = run["launched_by"] or {}
        seconds = run["duration_seconds"]
        history.add_row(
            run["id"],
            styled(run["status"]),
            (run["commit_sha"] or "")[:12],
            run["trigger"],
            launched_by.get("name") or "",
            "" if seconds is None else f"{seconds:.1f}",
        )
    console.print(history)


@app.command("create")
def create(
    file: Annotated[
        Path, typer.Option("--file", help="The template as JSON (the API's body).", exists=True)
    ],
) -> None:
    """Save a template from a JSON file."""
    try:
        body = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"{file}: not a JSON document ({exc})")
        return
    with client() as api:
        try:
            created = api.post("/templates", json=body)
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"created template {created['id']} ({created['name']})", highlight=False)


@app.command("update")
def update(
    template: str,
    file: Annotated[
        Path,
        typer.Option(
            "--file", help="The fields to change as JSON (the API's PATCH body).", exists=True
        ),
    ],
) -> None:
    """Change a template (by id or name) from a JSON file of the fields to change."""
    try:
        body = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"{file}: not a JSON document ({exc})")
        return
    with client() as api:
        try:
            found = find(api, template)
            changed = api.patch(f"/templates/{found['id']}", json=body)
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"updated template {changed['id']} ({changed['name']})", highlight=False)


@app.command("rollback")
def rollback(
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    deployment_id: Annotated[
        str, typer.Argument(help="An earlier successful run of the template (see `show`).")
    ],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run; exit non-zero unless it succeeds.")
    ] = False,
) -> None:
    """Launch the template again at the commit (and with the values) of an earlier successful run."""
    with client() as api:
        try:
            found = find(api, template)
            run = api.post(
                f"/templates/{found['id']}/rollback", json={"deployment_id": deployment_id}
            )
        except ApiError as exc:
            fail(str(exc))
            return
        console.print(
            f"rolled {found['name']} back: deployment {run['id']} at commit "
            f"{(run['commit_sha'] or '')[:12]} ({styled(run['status'])})",
            highlight=False,
        )
        if wait:
            raise typer.Exit(follow(api, run["id"]))


@app.command("delete")
def delete(template: str) -> None:
    """Delete a template (by id or name); its runs stay."""
    with client() as api:
        try:
            found = find(api, template)
            api.delete(f"/templates/{found['id']}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"deleted template {found['id']} ({found['name']})", highlight=False)


@app.command("preview")
def preview(template: str, param: ParamOption = None, param_stdin: StdinOption = None) -> None:
    """What a launch would run now: the commit, the scripts in order, the hosts and batches."""
    with client() as api:
        try:
            found = find(api, template)
            values = launch_values(found, param or [], param_stdin or [])
            shown = api.post(f"/templates/{found['id']}/preview", json={"parameters": values})
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"commit {shown['commit_sha']} ({shown['ref'] or 'default branch'})")
    for position, script in enumerate(shown["scripts"], start=1):
        console.print(f"  {position}. {script['path']} {' '.join(script['arguments'])}")
    for number, batch in enumerate(shown["batches"], start=1):
        names = ", ".join(host["name"] for host in batch)
        console.print(f"  batch {number}: {names}", highlight=False)
    if not shown["hosts"]:
        console.print("  no hosts match the target now")


def run_template(
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    param: ParamOption = None,
    param_stdin: StdinOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run; exit non-zero unless it succeeds.")
    ] = False,
    override_freeze: Annotated[
        str | None,
        typer.Option(
            "--override-freeze",
            metavar="REASON",
            help="Admins: launch although a freeze window is in force (the reason is audited).",
        ),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref",
            help="This launch only: a branch, tag or commit SHA instead of the template's ref.",
        ),
    ] = None,
) -> None:
    """Launch a template with parameter values."""
    body: dict[str, Any] = {}
    if ref is not None:
        body["ref"] = ref
    if override_freeze is not None:
        body["freeze_override"] = {"reason": override_freeze}
    with client() as api:
        try:
            found = find(api, template)
            values = launch_values(found, param or [], param_stdin or [])
            run = api.post(f"/templates/{found['id']}/launch", json={"parameters": values, **body})
        except ApiError as exc:
            fail(str(exc))
            return
        console.print(
            f"launched deployment {run['id']} of {found['name']} at commit "
            f"{(run['commit_sha'] or '')[:12]} ({styled(run['status'])})",
            highlight=False,
        )
        if wait:
            raise typer.Exit(follow(api, run["id"]))
