"""``shipyard templates`` (list, show, history, create, update, delete, preview, launch,
rollback) and ``shipyard run TEMPLATE``. A template is named by its name or its id.

Secret parameter values never travel on the command line (argv is visible to other users of
the machine and lands in shell history): they come from ``--param-stdin NAME`` or a prompt.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import ApiTyper, api_client, complete, fail, name_option, resolve
from shipyard.client.output import emit
from shipyard.deployments.cli_follow import announce, follow, styled

app = ApiTyper(help="Templates: saved runs with parameters.", no_args_is_help=True)

PARAM_HELP = "NAME=VALUE; repeat a name for a multi_choice parameter. Not for secrets."
STDIN_HELP = "Read this (secret) parameter's value from one line of standard input."
ParamOption = Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)]
StdinOption = Annotated[list[str] | None, typer.Option("--param-stdin", help=STDIN_HELP)]
TemplateArgument = Annotated[
    str,
    typer.Argument(
        metavar="TEMPLATE", help="Template name or id.", autocompletion=complete(names.TEMPLATE)
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Follow the run; exit with its outcome (0 on success).")
]


def find(api: ApiClient, template: str) -> dict[str, Any]:
    """A template by its name or its id (a missing or ambiguous name ends the command)."""
    found: dict[str, Any] = api.get(f"/templates/{resolve(api, names.TEMPLATE, template)}")
    return found


def read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"{file}: not a JSON document ({exc})", exits.USAGE)


def launch_values(
    template: dict[str, Any], params: list[str], from_stdin: list[str]
) -> dict[str, Any]:
    """The launch's values: --param pairs, --param-stdin lines, prompts for missing secrets."""
    kinds = {item["name"]: item for item in template["parameters"]}
    values: dict[str, Any] = {}
    for pair in params:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--param takes NAME=VALUE, got {name!r}", exits.USAGE)
        if kinds.get(name, {}).get("type") == "secret":
            fail(
                f"{name} is a secret parameter: pass it with --param-stdin {name} or leave it "
                "out to be asked (a value on the command line is visible to other users)",
                exits.USAGE,
            )
        if name in values:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    for name in from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail(f"--param-stdin {name}: standard input ended before its value", exits.USAGE)
        values[name] = line.rstrip("\r\n")
    for name, item in kinds.items():
        wanted = item["type"] == "secret" and item["required"] and name not in values
        if wanted:
            if not sys.stdin.isatty():
                fail(
                    f"secret parameter {name} is required: pass it with --param-stdin {name}",
                    exits.USAGE,
                )
            values[name] = getpass.getpass(f"{name}: ")
    return values


def templates_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("id", "name", "ref", "parameters", "admin only", "last success"):
        table.add_column(column)
    for item in items:
        last = item["last_success"]
        table.add_row(
            item["id"],
            item["name"],
            item["ref"] or "(default branch)",
            ", ".join(parameter["name"] for parameter in item["parameters"]),
            "yes" if item["admin_only"] else "",
            (last["commit_sha"] or "")[:12] if last else "",
        )
    return table


@app.command("list")
def list_templates(
    repository: Annotated[
        str | None,
        name_option(names.REPOSITORY, "Only this repository's (name or id)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The templates, newest first, with their last successful commit."""
    with api_client() as api:
        repository_id = resolve(api, names.REPOSITORY, repository) if repository else None
        page = api.get("/templates", limit=limit, repository_id=repository_id)
    items: list[dict[str, Any]] = page["items"]
    emit(items, table=lambda: templates_table(items))


def runs_table(runs: list[dict[str, Any]]) -> Table:
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
    return history


def template_view(found: dict[str, Any], runs: list[dict[str, Any]]) -> Group:
    lines: list[Any] = [Text.from_markup(f"[bold]{found['name']}[/] {found['id']}")]
    for key in ("description", "repository_id", "ref"):
        if found.get(key):
            lines.append(Text(f"  {key}: {found[key]}"))
    lines.append(Text(f"  target: {json.dumps(found['target'])}"))
    approval = found.get("approval") or {}
    if approval.get("required"):
        lines.append(
            Text(
                f"  approval: {approval['approvals_needed']} of role {approval['approver_role']}+, "
                f"self-approval {'allowed' if approval['allow_self_approval'] else 'not allowed'}, "
                f"expires after {approval['timeout_minutes']} min"
            )
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
    lines.append(parameters)
    lines.append(runs_table(runs))
    return Group(*lines)


@app.command("show")
def show(template: TemplateArgument) -> None:
    """One template: its definition, parameters and newest runs.

    With -o json: ``{"template": {...}, "runs": [...]}`` (the API's objects)."""
    with api_client() as api:
        found = find(api, template)
        runs: list[dict[str, Any]] = api.get(f"/templates/{found['id']}/runs", limit=10)["items"]
    emit({"template": found, "runs": runs}, table=lambda: template_view(found, runs))


@app.command("history")
def history(
    template: TemplateArgument,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
) -> None:
    """The template's runs, newest first: status, commit, trigger, who launched them."""
    with api_client() as api:
        found = find(api, template)
        runs: list[dict[str, Any]] = api.get(f"/templates/{found['id']}/runs", limit=limit)["items"]
    emit(runs, table=lambda: runs_table(runs))


@app.command("create")
def create(
    file: Annotated[
        Path, typer.Option("--file", help="The template as JSON (the API's body).", exists=True)
    ],
) -> None:
    """Save a template from a JSON file."""
    body = read_json(file)
    with api_client() as api:
        created = api.post("/templates", json=body)
    emit(created, table=lambda: f"created template {created['id']} ({created['name']})")


@app.command("update")
def update(
    template: TemplateArgument,
    file: Annotated[
        Path,
        typer.Option(
            "--file", help="The fields to change as JSON (the API's PATCH body).", exists=True
        ),
    ],
) -> None:
    """Change a template from a JSON file of the fields to change."""
    body = read_json(file)
    with api_client() as api:
        found = find(api, template)
        changed = api.patch(f"/templates/{found['id']}", json=body)
    emit(changed, table=lambda: f"updated template {changed['id']} ({changed['name']})")


@app.command("rollback")
def rollback(
    template: TemplateArgument,
    deployment_id: Annotated[
        str, typer.Argument(help="An earlier successful run of the template (see `history`).")
    ],
    wait: WaitOption = False,
) -> None:
    """Launch the template again at the commit (and with the values) of an earlier successful run."""
    with api_client() as api:
        found = find(api, template)
        run = api.post(f"/templates/{found['id']}/rollback", json={"deployment_id": deployment_id})
        announce(
            run,
            f"rolled {found['name']} back: deployment {run['id']} at commit "
            f"{(run['commit_sha'] or '')[:12]} ({styled(run['status'])})",
            wait=wait,
        )
        if wait:
            raise typer.Exit(follow(api, run["id"]))


@app.command("delete")
def delete(template: TemplateArgument) -> None:
    """Delete a template; its runs stay.

    With -o json: the deleted template."""
    with api_client() as api:
        found = find(api, template)
        api.delete(f"/templates/{found['id']}")
    emit(found, table=lambda: f"deleted template {found['id']} ({found['name']})")


def preview_view(shown: dict[str, Any]) -> Group:
    lines = [Text(f"commit {shown['commit_sha']} ({shown['ref'] or 'default branch'})")]
    for position, script in enumerate(shown["scripts"], start=1):
        lines.append(Text(f"  {position}. {script['path']} {' '.join(script['arguments'])}"))
    for number, batch in enumerate(shown["batches"], start=1):
        hosts = ", ".join(host["name"] for host in batch)
        lines.append(Text(f"  batch {number}: {hosts}"))
    if not shown["hosts"]:
        lines.append(Text("  no hosts match the target now"))
    return Group(*lines)


@app.command("preview")
def preview(
    template: TemplateArgument, param: ParamOption = None, param_stdin: StdinOption = None
) -> None:
    """What a launch would run now: the commit, the scripts in order, the hosts and batches."""
    with api_client() as api:
        found = find(api, template)
        values = launch_values(found, param or [], param_stdin or [])
        shown = api.post(f"/templates/{found['id']}/preview", json={"parameters": values})
    emit(shown, table=lambda: preview_view(shown))


def run_template(
    template: TemplateArgument,
    param: ParamOption = None,
    param_stdin: StdinOption = None,
    wait: WaitOption = False,
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
    """Launch a template with parameter values; with --wait, exit with the run's outcome."""
    body: dict[str, Any] = {}
    if ref is not None:
        body["ref"] = ref
    if override_freeze is not None:
        body["freeze_override"] = {"reason": override_freeze}
    with api_client() as api:
        found = find(api, template)
        values = launch_values(found, param or [], param_stdin or [])
        run = api.post(f"/templates/{found['id']}/launch", json={"parameters": values, **body})
        announce(
            run,
            f"launched deployment {run['id']} of {found['name']} at commit "
            f"{(run['commit_sha'] or '')[:12]} ({styled(run['status'])})",
            wait=wait,
        )
        if wait:
            raise typer.Exit(follow(api, run["id"]))


# `shipyard run TEMPLATE` is registered on the root command (shipyard.cli); the same here.
app.command("launch")(run_template)
