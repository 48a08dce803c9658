"""Launch parameters: definitions, value checks and ``{{ name }}`` in arguments (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shipyard.errors import ValidationFailed
from shipyard.templates.parameters import (
    Parameter,
    check_arguments,
    check_definitions,
    check_launch,
    render,
)


def defined(**fields: Any) -> Parameter:
    return Parameter.model_validate(fields)


def test_values_are_converted_to_their_type_and_reach_scripts_as_text() -> None:
    parameters = [
        defined(name="count", type="integer", default=1),
        defined(name="flag", type="boolean"),
        defined(name="zones", type="multi_choice", choices=["a", "b"]),
        defined(name="notes", type="text"),
        defined(name="key", type="secret"),
        defined(name="unset"),
    ]
    values = check_launch(
        parameters,
        {"count": "3", "flag": "yes", "zones": ["a", "b"], "notes": "two\nlines", "key": "k-1234"},
    )
    assert values.shown == {
        "count": 3,
        "flag": True,
        "zones": ["a", "b"],
        "notes": "two\nlines",
        "key": "***",
    }
    assert values.plain == {"count": "3", "flag": "true", "zones": "a,b", "notes": "two\nlines"}
    assert values.secret == {"key": "k-1234"}
    assert render(["--n={{ count }}", "{{zones}}/{{ unset }}", "{{ x"], values.plain) == [
        "--n=3",
        "a,b/",
        "{{ x",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "s", "type": "secret", "default": "abcdefgh"}, "cannot have a default"),
        ({"name": "c", "type": "choice"}, "needs choices"),
        ({"name": "s", "choices": ["a"]}, "only for choice"),
        ({"name": "b", "type": "boolean", "min": 1}, "do not apply"),
        ({"name": "i", "type": "integer", "pattern": "x"}, "only for string"),
        ({"name": "i", "type": "integer", "min": 3, "max": 1}, "greater than max"),
        ({"name": "i", "type": "integer", "default": "x"}, "default: must be a whole number"),
        ({"name": "BASH_ENV"}, "not allowed"),
        ({"name": "1abc"}, "not a valid name"),
    ],
)
def test_bad_definitions_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        defined(**fields)


def test_string_is_one_line_and_secret_errors_never_repeat_the_value() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_launch([defined(name="s")], {"s": "a\nb"})
    assert caught.value.field == "parameters.s"
    with pytest.raises(ValidationFailed) as caught:
        check_launch([defined(name="k", type="secret", pattern="[0-9]+")], {"k": "letters-only"})
    assert "letters-only" not in caught.value.message


def test_definitions_and_arguments_are_checked_at_save() -> None:
    parameters = [defined(name="version"), defined(name="token", type="secret")]
    with pytest.raises(ValidationFailed) as caught:
        check_definitions([defined(name="Path_x"), defined(name="PATH_X")], environment_names=[])
    assert caught.value.field == "parameters.1.name"
    with pytest.raises(ValidationFailed) as caught:
        check_arguments([["ok"], ["--t={{ token }}"]], parameters)
    assert caught.value.field == "scripts.1.arguments"
    check_arguments([["--v={{ version }}", "{ literal }"]], parameters)
