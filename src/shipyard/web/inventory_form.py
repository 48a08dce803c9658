"""Tags and variables as form fields, shared by the host form and the group form.

Variables are numbered rows (``var_name_N``, ``var_value_N``, ``var_secret_N``): the stored ones
first, then a few blank rows for new ones. A secret's value is never put back into the page; a
stored secret left blank keeps its value, a value typed there replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.hosts.schemas import VariableRead

BLANK_ROWS = 3
MAX_ROWS = 200
TAG_SEPARATORS = re.compile(r"[\s,]+")


def form_tags(text: str) -> list[str]:
    """Tags typed as words separated by commas or spaces."""
    return [tag for tag in TAG_SEPARATORS.split(text) if tag]


def form_variables(values: Mapping[str, str]) -> list[dict[str, Any]]:
    """The variable rows of a submitted form as API items (rows without a name are skipped)."""
    items: list[dict[str, Any]] = []
    for index in range(MAX_ROWS):
        if f"var_name_{index}" not in values:
            break
        name = values[f"var_name_{index}"].strip()
        if not name:
            continue
        secret = values.get(f"var_secret_{index}") == "1"
        value = values.get(f"var_value_{index}", "")
        item: dict[str, Any] = {"name": name, "secret": secret}
        # A blank secret keeps the stored value: the page never holds it to send it back.
        if value or not secret:
            item["value"] = value
        items.append(item)
    return items


def variable_rows(
    stored: Sequence[VariableRead], values: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The rows to show: a submitted form's again (secret values left out), or the stored ones."""
    stored_secrets = {variable.name for variable in stored if variable.secret}
    rows: list[dict[str, Any]] = []
    if values is not None and "var_name_0" in values:
        for item in form_variables(values):
            rows.append(
                {
                    "name": item["name"],
                    "value": "" if item["secret"] else item.get("value", ""),
                    "secret": item["secret"],
                    "stored_secret": item["name"] in stored_secrets,
                }
            )
    else:
        rows = [
            {
                "name": variable.name,
                "value": variable.value or "",
                "secret": variable.secret,
                "stored_secret": variable.secret,
            }
            for variable in stored
        ]
    blank = {"name": "", "value": "", "secret": False, "stored_secret": False}
    return rows + [dict(blank) for _ in range(BLANK_ROWS)]


def variable_errors(errors: Mapping[str, str]) -> list[str]:
    """Messages about variables (pydantic or service), for one list above the rows."""
    return [message for field, message in errors.items() if field.startswith("variables")]
