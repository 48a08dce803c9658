"""Job parameter definitions in one normalised shape, and validation of values against them.

Every provider's definitions become ``{"name", "type", "default", "choices", "description",
"required"}`` with ``type`` one of string, boolean, choice, password, integer, number.
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.crypto import is_sealed
from shipyard.errors import ValidationFailed

PARAMETER_TYPES = ("string", "boolean", "choice", "password", "integer", "number")
MAX_VALUE_LENGTH = 65536
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parameter(
    name: str,
    type_: str,
    *,
    default: Any = None,
    choices: list[str] | None = None,
    description: str | None = None,
    required: bool = False,
    first_choice_default: bool = True,
) -> dict[str, Any]:
    """A normalised parameter definition; a password's default is never kept.

    ``first_choice_default``: a choice without a default defaults to its first option (what
    Jenkins does); GitHub passes False for a required input, which must then be given.
    """
    if type_ not in PARAMETER_TYPES:
        type_ = "string"
    if type_ == "password":
        default = None
    if type_ == "choice" and choices and default is None and first_choice_default:
        default = choices[0]
    return {
        "name": name,
        "type": type_,
        "default": default,
        "choices": list(choices) if choices is not None else None,
        "description": description or None,
        "required": bool(required),
    }


def _coerce(definition: dict[str, Any], value: Any) -> tuple[bool, Any, str]:
    """Return (ok, normalised value, reason when not ok)."""
    kind = definition.get("type", "string")
    if kind == "boolean":
        if isinstance(value, bool):
            return True, value, ""
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return True, value.strip().lower() == "true", ""
        return False, None, "must be a boolean (true or false)"
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value, ""
        if isinstance(value, str) and _INTEGER.match(value.strip()):
            return True, int(value.strip()), ""
        return False, None, "must be an integer"
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, value, ""
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            text = value.strip()
            return True, int(text) if _INTEGER.match(text) else float(text), ""
        return False, None, "must be a number"
    if kind == "password" and is_sealed(value):
        # A stored (encrypted) value coming back, e.g. when a deployment is re-run.
        return True, value, ""
    if not isinstance(value, str):
        return False, None, "must be a string"
    if len(value) > MAX_VALUE_LENGTH:
        return False, None, f"must be at most {MAX_VALUE_LENGTH} characters"
    if kind == "choice":
        choices = definition.get("choices") or []
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            return False, None, f"must be one of {listed}"
    return True, value, ""


def validate_values(
    definitions: list[dict[str, Any]], values: dict[str, Any], *, field_prefix: str
) -> dict[str, Any]:
    """Check ``values`` against ``definitions``; return them normalised, defaults filled in.

    Raises ValidationFailed naming ``<field_prefix>.<name>`` for an unknown name, a wrong type,
    a value outside the choices or a missing required value.
    """
    by_name = {definition["name"]: definition for definition in definitions}
    result: dict[str, Any] = {}
    for name, value in values.items():
        field = f"{field_prefix}.{name}"
        definition = by_name.get(name)
        if definition is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise ValidationFailed(
                f"unknown parameter '{name}' (this job takes: {known})", field=field
            )
        if value is None:
            if definition.get("required") and definition.get("default") is None:
                raise ValidationFailed(f"parameter '{name}' is required", field=field)
            continue
        ok, normalised, reason = _coerce(definition, value)
        if not ok:
            raise ValidationFailed(f"parameter '{name}' {reason}", field=field)
        result[name] = normalised
    for name, definition in by_name.items():
        if name in result:
            continue
        default = definition.get("default")
        if default is not None and definition.get("type") != "password":
            result[name] = default
        elif definition.get("required"):
            raise ValidationFailed(
                f"parameter '{name}' is required", field=f"{field_prefix}.{name}"
            )
    return result


def secret_names(definitions: list[dict[str, Any]]) -> set[str]:
    return {d["name"] for d in definitions if d.get("type") == "password"}
