"""A template's edit form and launch form as flat HTML fields, and back into API bodies.

Rows are numbered like the inventory's variable rows (``script_id_N``, ``param_name_N``,
``cicd_job_N``): the chosen or stored ones first, then a few blank ones, so the page works
without JavaScript; "More rows" re-renders the form with more blank rows. Environment rows are
the inventory's (``var_name_N``...), with its rule for secrets: never put back into the page,
kept when left blank, replaced when typed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from shipyard.web.inventory_form import form_tags, form_variables

BLANK_PARAMETER_ROWS = 2
BLANK_CICD_ROWS = 2
MAX_ROWS = 200
PARAMETER_TYPES = ("string", "text", "integer", "boolean", "choice", "multi_choice", "secret")
SIMPLE_FIELDS = (
    "name",
    "description",
    "repository_id",
    "ref",
    "tags",
    "parallelism",
    "batch_size",
    "batch_percent",
    "max_failure_percent",
    "script_timeout_seconds",
    "approval.approvals_needed",
    "approval.approver_role",
    "approval.timeout_minutes",
)
CHECKBOXES = ("stop_on_failure", "admin_only", "approval.required", "approval.allow_self_approval")
APPROVAL_DEFAULTS = {
    "approval.approvals_needed": "1",
    "approval.approver_role": "developer",
    "approval.timeout_minutes": "1440",
}
# ``{{ version }}`` holds spaces: set aside while splitting, so a shell-like split keeps it whole.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# A placeholder is set aside while the text is split (private-use characters mark its place).
HELD = "\ue000"
HELD_TOKEN = re.compile(HELD + r"(\d+)" + HELD)
PLAIN_WORD = re.compile(r"^[\w@%+=:,./{}-]+$")
LIST_SEPARATORS = re.compile(r"\s*[\n,]\s*")


def split_arguments(text: str) -> list[str]:
    """Arguments as a shell splits them; ``{{ name }}`` stays whole (spaces and all) in its word."""
    placeholders: list[str] = []

    def hold(match: re.Match[str]) -> str:
        placeholders.append(match.group(0))
        return f"{HELD}{len(placeholders) - 1}{HELD}"

    words = shlex.split(PLACEHOLDER.sub(hold, text))
    return [HELD_TOKEN.sub(lambda m: placeholders[int(m.group(1))], word) for word in words]


def join_arguments(arguments: Sequence[str]) -> str:
    """The inverse of :func:`split_arguments`, quoting only where a word needs it."""
    return " ".join(
        argument if PLAIN_WORD.match(PLACEHOLDER.sub("{{}}", argument)) else shlex.quote(argument)
        for argument in arguments
    )


def parse_list(text: str) -> list[str]:
    """Choices typed one a line or separated by commas."""
    return [item for item in LIST_SEPARATORS.split(text.strip()) if item]


def parse_key_values(text: str) -> dict[str, str]:
    """``key=value`` lines (CI/CD parameters); raises ValueError naming a line without ``=``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"'{line.strip()}' is not key=value")
        found[key.strip()] = value.strip()
    return found


def _get(item: Any, key: str, default: Any = None) -> Any:
    """A field of a pydantic model or a dict (the API's shapes, read or raw)."""
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


@dataclass
class ScriptRow:
    script_id: str
    label: str
    run: bool = False
    order: str = ""
    arguments: str = ""


@dataclass
class ParameterRow:
    name: str = ""
    type: str = "string"
    required: bool = False
    default: str = ""
    choices: str = ""
    pattern: str = ""
    min: str = ""
    max: str = ""
    description: str = ""


@dataclass
class CicdRow:
    job_id: str = ""
    stage: str = "before"
    parameters: str = ""


@dataclass
class TemplateForm:
    """What the edit form shows and sends, as text, so a failed save re-renders as typed."""

    values: dict[str, str] = field(default_factory=dict)
    scripts: list[ScriptRow] = field(default_factory=list)
    host_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    parameters: list[ParameterRow] = field(default_factory=list)
    cicd: list[CicdRow] = field(default_factory=list)
    # The environment rows as submitted (``var_*``), for inventory_form's helpers.
    variable_values: dict[str, str] | None = None
    extra_rows: int = 0

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_template(cls, template: Any) -> TemplateForm:
        """The form of a stored template (its secrets' values are not in it)."""
        options = _get(template, "options") or {}
        target = _get(template, "target") or {}
        values = {
            "name": _text(_get(template, "name")),
            "description": _text(_get(template, "description")),
            "repository_id": _text(_get(template, "repository_id")),
            "ref": _text(_get(template, "ref")),
            "tags": " ".join(_get(target, "tags") or []),
        }
        for key in ("parallelism", "batch_size", "batch_percent", "max_failure_percent"):
            values[key] = _text(_get(options, key))
        values["script_timeout_seconds"] = _text(_get(options, "script_timeout_seconds"))
        if _get(options, "stop_on_failure"):
            values["stop_on_failure"] = "1"
        if _get(template, "admin_only"):
            values["admin_only"] = "1"
        approval = _get(template, "approval")
        values.update(APPROVAL_DEFAULTS)
        if approval is not None:
            for key in ("approvals_needed", "approver_role", "timeout_minutes"):
                values[f"approval.{key}"] = _text(_get(approval, key))
            for key in ("required", "allow_self_approval"):
                if _get(approval, key):
                    values[f"approval.{key}"] = "1"
        scripts = [
            ScriptRow(
                script_id=str(_get(choice, "script_id")),
                label=str(_get(choice, "path") or _get(choice, "script_id")),
                run=True,
                order=str(index + 1),
                arguments=join_arguments(_get(choice, "arguments") or []),
            )
            for index, choice in enumerate(_get(template, "scripts") or [])
        ]
        parameters = [
            ParameterRow(
                name=_text(_get(item, "name")),
                type=_text(_get(item, "type")) or "string",
                required=bool(_get(item, "required")),
                default=_text(_get(item, "default")),
                choices=", ".join(str(choice) for choice in _get(item, "choices") or []),
                pattern=_text(_get(item, "pattern")),
                min=_text(_get(item, "min")),
                max=_text(_get(item, "max")),
                description=_text(_get(item, "description")),
            )
            for item in _get(template, "parameters") or []
        ]
        cicd = [
            CicdRow(
                job_id=_text(_get(step, "cicd_job_id")),
                stage=_text(_get(step, "stage")) or "before",
                parameters="\n".join(
                    f"{key}={value}" for key, value in (_get(step, "parameters") or {}).items()
                ),
            )
            for step in _get(template, "cicd_steps") or []
        ]
        return cls(
            values=values,
            scripts=scripts,
            host_ids=[str(host_id) for host_id in _get(target, "host_ids") or []],
            group_ids=[str(group_id) for group_id in _get(target, "group_ids") or []],
            parameters=parameters,
            cicd=cicd,
        )

    @classmethod
    def from_form(cls, form: FormData) -> TemplateForm:
        """The submitted edit form, as typed."""
        flat = {key: value for key, value in form.items() if isinstance(value, str)}
        values = {key: flat.get(key, "").strip() for key in SIMPLE_FIELDS}
        values["description"] = flat.get("description", "").strip()
        for key in CHECKBOXES:
            if flat.get(key) == "1":
                values[key] = "1"
        scripts: list[ScriptRow] = []
        for index in range(MAX_ROWS):
            script_id = flat.get(f"script_id_{index}")
            if script_id is None:
                break
            scripts.append(
                ScriptRow(
                    script_id=script_id.strip(),
                    label=flat.get(f"script_label_{index}", script_id).strip(),
                    run=flat.get(f"script_run_{index}") == "1",
                    order=flat.get(f"script_order_{index}", "").strip(),
                    arguments=flat.get(f"script_args_{index}", ""),
                )
            )
        parameters: list[ParameterRow] = []
        for index in range(MAX_ROWS):
            if f"param_name_{index}" not in flat:
                break
            if flat.get(f"param_remove_{index}") == "1":
                continue
            parameters.append(
                ParameterRow(
                    name=flat.get(f"param_name_{index}", "").strip(),
                    type=flat.get(f"param_type_{index}", "string").strip() or "string",
                    required=flat.get(f"param_required_{index}") == "1",
                    default=flat.get(f"param_default_{index}", ""),
                    choices=flat.get(f"param_choices_{index}", ""),
                    pattern=flat.get(f"param_pattern_{index}", ""),
                    min=flat.get(f"param_min_{index}", "").strip(),
                    max=flat.get(f"param_max_{index}", "").strip(),
                    description=flat.get(f"param_description_{index}", "").strip(),
                )
            )
        cicd: list[CicdRow] = []
        for index in range(MAX_ROWS):
            if f"cicd_job_{index}" not in flat:
                break
            cicd.append(
                CicdRow(
                    job_id=flat.get(f"cicd_job_{index}", "").strip(),
                    stage=flat.get(f"cicd_stage_{index}", "before").strip() or "before",
                    parameters=flat.get(f"cicd_params_{index}", ""),
                )
            )
        variable_values = {
            key: value if key.startswith("var_value_") else value.strip()
            for key, value in flat.items()
            if key.startswith("var_")
        }
        try:
            extra_rows = min(max(int(flat.get("extra_rows", "0")), 0), 50)
        except ValueError:
            extra_rows = 0
        return cls(
            extra_rows=extra_rows,
            values=values,
            scripts=scripts,
            host_ids=[v for v in form.getlist("host_ids") if isinstance(v, str)],
            group_ids=[v for v in form.getlist("group_ids") if isinstance(v, str)],
            parameters=[row for row in parameters if row.name or _has_content(row)],
            cicd=[row for row in cicd if row.job_id],
            variable_values=variable_values,
        )

    def with_catalogue(self, catalogue: Iterable[Any]) -> TemplateForm:
        """Offer the catalogue's scripts after the chosen ones; name the chosen by their path."""
        paths = {str(_get(script, "id")): str(_get(script, "path")) for script in catalogue}
        for row in self.scripts:
            row.label = paths.get(row.script_id, row.label)
        shown = {row.script_id for row in self.scripts}
        self.scripts += [
            ScriptRow(script_id=script_id, label=path)
            for script_id, path in paths.items()
            if script_id not in shown
        ]
        return self

    def ordered_scripts(self) -> list[ScriptRow]:
        """The chosen scripts in run order: by the order typed, then as listed."""

        def key(item: tuple[int, ScriptRow]) -> tuple[float, int]:
            index, row = item
            try:
                return float(row.order), index
            except ValueError:
                return float("inf"), index

        return [row for _, row in sorted(enumerate(self.scripts), key=key) if row.run]

    # -- the API body -----------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        """The TemplateCreate body (validated by its schema); ValueError for unreadable text."""
        values = self.values
        options: dict[str, Any] = {"stop_on_failure": values.get("stop_on_failure") == "1"}
        for key in (
            "parallelism",
            "batch_size",
            "batch_percent",
            "max_failure_percent",
            "script_timeout_seconds",
        ):
            if values.get(key):
                options[key] = values[key]
        scripts: list[dict[str, Any]] = []
        for row in self.ordered_scripts():
            try:
                arguments = split_arguments(row.arguments)
            except ValueError as exc:
                raise FormTextError(
                    f"scripts.{len(scripts)}.arguments", f"{row.label}: {exc}"
                ) from exc
            scripts.append({"script_id": row.script_id, "arguments": arguments})
        steps: list[dict[str, Any]] = []
        for index, step in enumerate(self.cicd):
            try:
                parameters = parse_key_values(step.parameters)
            except ValueError as exc:
                raise FormTextError(f"cicd_steps.{index}.parameters", str(exc)) from exc
            steps.append(
                {"cicd_job_id": step.job_id, "stage": step.stage, "parameters": parameters}
            )
        return {
            "name": values.get("name", ""),
            "description": values.get("description") or None,
            "repository_id": values.get("repository_id") or None,
            "ref": values.get("ref") or None,
            "scripts": scripts,
            "target": {
                "host_ids": self.host_ids,
                "group_ids": self.group_ids,
                "tags": form_tags(values.get("tags", "")),
            },
            "options": options,
            "environment": form_variables(self.variable_values or {}),
            "cicd_steps": steps,
            "parameters": [parameter_item(row) for row in self.parameters],
            "admin_only": values.get("admin_only") == "1",
            "approval": {
                "required": values.get("approval.required") == "1",
                "allow_self_approval": values.get("approval.allow_self_approval") == "1",
                **{
                    key: values.get(f"approval.{key}") or APPROVAL_DEFAULTS[f"approval.{key}"]
                    for key in ("approvals_needed", "approver_role", "timeout_minutes")
                },
            },
        }

    def parameter_rows(self) -> list[ParameterRow]:
        blank = BLANK_PARAMETER_ROWS + self.extra_rows
        return self.parameters + [ParameterRow() for _ in range(blank)]

    def cicd_rows(self) -> list[CicdRow]:
        return self.cicd + [CicdRow() for _ in range(BLANK_CICD_ROWS + self.extra_rows)]


class FormTextError(ValueError):
    """Text the form could not read (unbalanced quotes, a line without ``=``), with its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _has_content(row: ParameterRow) -> bool:
    return any((row.default, row.choices, row.pattern, row.min, row.max, row.description))


def parameter_item(row: ParameterRow) -> dict[str, Any]:
    """A parameter row as the API's item: typed default, list of choices, numbers as typed."""
    item: dict[str, Any] = {
        "name": row.name,
        "type": row.type,
        "required": row.required,
        "description": row.description or None,
    }
    if row.choices.strip():
        item["choices"] = parse_list(row.choices)
    if row.pattern:
        item["pattern"] = row.pattern
    if row.min:
        item["min"] = row.min
    if row.max:
        item["max"] = row.max
    default = row.default
    if row.type == "boolean":
        item["default"] = default.strip().lower() in ("1", "true", "yes", "on")
    elif row.type == "multi_choice":
        if default.strip():
            item["default"] = parse_list(default)
    elif row.type != "secret" and default.strip():
        # Numbers as typed: the schema turns "5" into 5 or names the parameter.
        item["default"] = default.strip() if row.type == "integer" else default
    return item


# -- the launch form ------------------------------------------------------------------------


def launch_field(name: str) -> str:
    """The form field of a parameter (parameter names are environment names: safe here)."""
    return f"param.{name}"


def kind_field(name: str) -> str:
    """The hidden field carrying a parameter's type, so a launch is read without a query."""
    return f"kind.{name}"


def launch_values(form: FormData) -> dict[str, Any]:
    """The launch body's ``parameters`` from the launch form, typed by each field's type.

    The types come from hidden fields of the form (the service checks every value against the
    template's own definitions, and refuses a name it does not have). A blank field is left
    out, so the parameter's default applies (or ``required`` is named); a checkbox is always
    sent, as true or false; an integer that does not read as one is sent as typed, for the
    service to refuse naming the parameter.
    """
    found: dict[str, Any] = {}
    for field_name, kind in form.multi_items():
        if not field_name.startswith("kind.") or not isinstance(kind, str):
            continue
        name = field_name.removeprefix("kind.")
        key = launch_field(name)
        if kind == "boolean":
            found[name] = form.get(key) == "1"
            continue
        if kind == "multi_choice":
            chosen = [value for value in form.getlist(key) if isinstance(value, str) and value]
            if chosen:  # none ticked: the default applies (or ``required`` is named)
                found[name] = chosen
            continue
        raw = form.get(key)
        if not isinstance(raw, str) or raw == "" or (kind != "secret" and not raw.strip()):
            continue
        if kind == "integer":
            try:
                found[name] = int(raw.strip())
            except ValueError:
                found[name] = raw
            continue
        found[name] = raw
    return found


def shown_launch_values(parameters: Sequence[Any], form: FormData | None) -> dict[str, Any]:
    """What the launch form shows: the defaults, or what was typed (never a secret's value)."""
    shown: dict[str, Any] = {}
    for parameter in parameters:
        name = str(_get(parameter, "name"))
        kind = str(_get(parameter, "type"))
        if kind == "secret":
            continue
        key = launch_field(name)
        if form is None:
            default = _get(parameter, "default")
            if kind == "multi_choice":
                shown[name] = [str(item) for item in default or []]
            elif kind == "boolean":
                shown[name] = bool(default)
            else:
                shown[name] = "" if default is None else str(default)
        elif kind == "multi_choice":
            shown[name] = [value for value in form.getlist(key) if isinstance(value, str)]
        elif kind == "boolean":
            shown[name] = form.get(key) == "1"
        else:
            raw = form.get(key)
            shown[name] = raw if isinstance(raw, str) else ""
    return shown
