"""Launch parameters of a template: their definitions, the check of a launch's values, and
``{{ name }}`` in script arguments.

A parameter reaches each script as an environment variable of the same name (so names follow
the environment-name rules and deny-list of :mod:`shipyard.hosts.environment`) and, except a
secret one, inside arguments as ``{{ name }}``. A secret parameter is refused inside arguments:
arguments are a command line, which other users of the host can read (``ps``) and which is
stored and shown with the run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.deployments.redaction import MIN_SECRET_LENGTH
from shipyard.errors import ValidationFailed
from shipyard.hosts.environment import refusal_message

ParameterType = Literal["string", "text", "integer", "boolean", "choice", "multi_choice", "secret"]
ParameterValue = str | int | bool | list[str]

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
MAX_VALUE_LENGTH = 65536
MAX_PATTERN_LENGTH = 500
TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})
# multi_choice values reach a script as one variable: the chosen values joined by commas.
MULTI_SEPARATOR = ","
_STRING_TYPES = frozenset({"string", "text", "secret"})


class Parameter(BaseModel):
    """One launch parameter: typed, required or with a default, optionally constrained.

    ``min``/``max`` bound an integer's value, the length of a string, text or secret, and the
    number of values chosen of a multi_choice; ``pattern`` (a Python regular expression that
    must match the whole value) applies to string, text and secret; ``choices`` to choice and
    multi_choice.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: ParameterType = "string"
    required: bool = False
    default: ParameterValue | None = None
    choices: list[str] = Field(default_factory=list, max_length=500)
    pattern: str | None = Field(default=None, max_length=MAX_PATTERN_LENGTH)
    min: int | None = None
    max: int | None = None
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("name")
    @classmethod
    def _env_name(cls, value: str) -> str:
        refused = refusal_message(value)
        if refused is not None:
            raise ValueError(refused)
        return value

    @field_validator("choices")
    @classmethod
    def _choices(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a choice is listed twice")
        if any(not choice or len(choice) > 1000 for choice in value):
            raise ValueError("every choice must be 1 to 1000 characters")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type in ("choice", "multi_choice") and not self.choices:
            raise ValueError(f"a {self.type} parameter needs choices")
        if self.choices and self.type not in ("choice", "multi_choice"):
            raise ValueError("choices are only for choice and multi_choice parameters")
        if self.pattern is not None and self.type not in _STRING_TYPES:
            raise ValueError("pattern is only for string, text and secret parameters")
        if self.type in ("boolean", "choice") and (self.min is not None or self.max is not None):
            raise ValueError(f"min and max do not apply to a {self.type} parameter")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        if self.type == "secret" and self.default is not None:
            # The template's definition is plain JSON that every member can read (viewers
            # too), and it is not encrypted: a secret default would be neither.
            raise ValueError(
                "a secret parameter cannot have a default: the template's parameters are "
                "readable by every member and stored unencrypted; put a standing secret in the "
                "template's environment (secret: true) instead"
            )
        if self.default is not None:
            try:
                self.default = check_value(self, self.default)
            except ValueError as exc:
                raise ValueError(f"default: {exc}") from exc
        return self


def _as_text(parameter: Parameter, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be text")
    text = str(value)
    if "\x00" in text:
        raise ValueError("holds a NUL character")
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError(f"is longer than {MAX_VALUE_LENGTH} characters")
    return text


def _check_length(parameter: Parameter, size: int, what: str) -> None:
    if parameter.min is not None and size < parameter.min:
        raise ValueError(f"must have at least {parameter.min} {what}")
    if parameter.max is not None and size > parameter.max:
        raise ValueError(f"must have at most {parameter.max} {what}")


def _check_integer(parameter: Parameter, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,18}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError("must be a whole number")
    if parameter.min is not None and value < parameter.min:
        raise ValueError(f"must be at least {parameter.min}")
    if parameter.max is not None and value > parameter.max:
        raise ValueError(f"must be at most {parameter.max}")
    return value


def _check_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError("must be true or false")


def _check_multi(parameter: Parameter, value: Any) -> list[str]:
    # One string is one choice (the CLI sends a lone ``--param name=value`` as a string).
    chosen = [value] if isinstance(value, str) else value
    if not isinstance(chosen, list) or not all(isinstance(item, str) for item in chosen):
        raise ValueError("must be a list of choices")
    for item in chosen:
        if item not in parameter.choices:
            raise ValueError(f"{item!r} is not one of {', '.join(parameter.choices)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError("a choice is given twice")
    _check_length(parameter, len(chosen), "choices")
    return list(chosen)


def check_value(parameter: Parameter, value: Any) -> ParameterValue:
    """``value`` converted to the parameter's type and checked against its rules.

    Raises ``ValueError`` with a sentence that does not repeat a secret value.
    """
    kind = parameter.type
    if kind == "integer":
        return _check_integer(parameter, value)
    if kind == "boolean":
        return _check_boolean(value)
    if kind == "multi_choice":
        return _check_multi(parameter, value)
    text = _as_text(parameter, value)
    if kind == "choice":
        if text not in parameter.choices:
            raise ValueError(f"must be one of {', '.join(parameter.choices)}")
        return text
    if kind == "string" and ("\n" in text or "\r" in text):
        raise ValueError("must be one line (use a text parameter for several)")
    _check_length(parameter, len(text), "characters")
    if kind == "secret" and len(text.strip()) < MIN_SECRET_LENGTH:
        # Output is masked only for secrets of at least this length.
        raise ValueError(
            f"is shorter than {MIN_SECRET_LENGTH} characters, too short to be masked in logs"
        )
    if parameter.pattern is not None and re.fullmatch(parameter.pattern, text) is None:
        raise ValueError(f"does not match the pattern {parameter.pattern}")
    return text


def as_string(value: ParameterValue) -> str:
    """How a value reaches a script: in its environment variable and in ``{{ name }}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return MULTI_SEPARATOR.join(value)
    return str(value)


def check_definitions(parameters: Sequence[Parameter], *, environment_names: Sequence[str]) -> None:
    """Parameter names are unique and do not repeat an environment variable of the template."""
    seen: set[str] = set()
    for index, parameter in enumerate(parameters):
        # Compared without case, as the environment deny-list is (Windows treats Path as PATH).
        key = parameter.name.upper()
        if key in seen:
            raise ValidationFailed(
                f"parameter {parameter.name} is defined twice", field=f"parameters.{index}.name"
            )
        seen.add(key)
        if key in {name.upper() for name in environment_names}:
            raise ValidationFailed(
                f"parameter {parameter.name} has the name of an environment variable of the "
                "template: both would set the same variable",
                field=f"parameters.{index}.name",
            )


def check_arguments(
    arguments_by_script: Sequence[Sequence[str]], parameters: Sequence[Parameter]
) -> None:
    """Every ``{{ name }}`` in the scripts' arguments names a parameter that is not a secret."""
    by_name = {parameter.name: parameter for parameter in parameters}
    for index, arguments in enumerate(arguments_by_script):
        for argument in arguments:
            for match in PLACEHOLDER.finditer(argument):
                name = match.group(1)
                parameter = by_name.get(name)
                if parameter is None:
                    raise ValidationFailed(
                        f"argument {argument!r} uses {{{{ {name} }}}}, which is not a parameter "
                        "of the template",
                        field=f"scripts.{index}.arguments",
                    )
                if parameter.type == "secret":
                    raise ValidationFailed(
                        f"secret parameter {name} cannot be used in arguments: a command line "
                        "is visible to other users of the host and is stored with the run; "
                        f"the script reads it from the environment variable {name}",
                        field=f"scripts.{index}.arguments",
                    )


def render(arguments: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Arguments with each ``{{ name }}`` replaced by the value (an unset one by nothing)."""
    return [
        PLACEHOLDER.sub(lambda match: values.get(match.group(1), ""), argument)
        for argument in arguments
    ]


@dataclass
class LaunchValues:
    """A launch's checked values: as the run shows them, and as scripts receive them."""

    # name -> value as given its type; a secret as "***" (what the run records and shows).
    shown: dict[str, Any] = field(default_factory=dict)
    # name -> text, for the environment and ``{{ name }}`` (secrets excluded).
    plain: dict[str, str] = field(default_factory=dict)
    # name -> text of the secret ones: only ever in the encrypted secret environment.
    secret: dict[str, str] = field(default_factory=dict)


def check_launch(
    parameters: Sequence[Parameter], values: Mapping[str, Any], *, masked: str = "***"
) -> LaunchValues:
    """A launch's ``values`` checked against ``parameters``; a 422 names ``parameters.<name>``.

    A value not given takes the default; a required one without either is refused; a value
    for no parameter is refused (a misspelt name would otherwise be dropped silently).
    """
    known = {parameter.name for parameter in parameters}
    for name in values:
        if name not in known:
            raise ValidationFailed(
                f"the template has no parameter {name}", field=f"parameters.{name}"
            )
    result = LaunchValues()
    for parameter in parameters:
        name = parameter.name
        given = values.get(name)
        if given is None or (given == "" and parameter.type != "text"):
            if parameter.default is not None:
                given = parameter.default
            elif parameter.required:
                raise ValidationFailed(
                    f"parameter {name} is required", field=f"parameters.{name}", code="required"
                )
            else:
                continue
        try:
            value = check_value(parameter, given)
        except ValueError as exc:
            raise ValidationFailed(f"parameter {name} {exc}", field=f"parameters.{name}") from exc
        if parameter.type == "secret":
            result.shown[name] = masked
            result.secret[name] = as_string(value)
        else:
            result.shown[name] = value
            result.plain[name] = as_string(value)
    return result
