"""Parameter definitions in one shape, and values checked against them."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.cicd.parameters import parameter, validate_values
from shipyard.cicd.providers.circleci import pipeline_parameters
from shipyard.cicd.providers.github_actions import dispatch_inputs, normalise_inputs
from shipyard.cicd.providers.jenkins import job_url_path, normalise_parameters
from shipyard.crypto import Keyring, generate_key, seal
from shipyard.errors import ValidationFailed

DEFINITIONS = [
    parameter("NAME", "string", default="web"),
    parameter("COUNT", "integer", required=True),
    parameter("RATIO", "number", default=0.5),
    parameter("FLAG", "boolean", default=False),
    parameter("ENV", "choice", choices=["dev", "prod"]),
    parameter("PASSWORD", "password", default="never-kept"),
]


def test_password_defaults_are_dropped_and_choices_default_to_the_first() -> None:
    assert DEFINITIONS[5]["default"] is None
    assert DEFINITIONS[4]["default"] == "dev"
    assert parameter("X", "file")["type"] == "string"


def test_values_are_normalised_and_defaults_filled_in_except_passwords() -> None:
    result = validate_values(
        DEFINITIONS,
        {"COUNT": "3", "FLAG": "TRUE", "RATIO": "1e-3", "PASSWORD": "pw"},
        field_prefix="p",
    )
    assert result == {
        "COUNT": 3,
        "FLAG": True,
        "RATIO": 0.001,
        "PASSWORD": "pw",
        "NAME": "web",
        "ENV": "dev",
    }
    assert "PASSWORD" not in validate_values(DEFINITIONS, {"COUNT": 1}, field_prefix="p")


def test_a_stored_encrypted_password_is_accepted_again() -> None:
    sealed = seal("pw", Keyring([generate_key()]))
    assert (
        validate_values(DEFINITIONS, {"COUNT": 1, "PASSWORD": sealed}, field_prefix="p")["PASSWORD"]
        == sealed
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({}, "p.COUNT", "parameter 'COUNT' is required"),
        ({"COUNT": None}, "p.COUNT", "parameter 'COUNT' is required"),
        ({"COUNT": True}, "p.COUNT", "parameter 'COUNT' must be an integer"),
        ({"COUNT": "1.5"}, "p.COUNT", "parameter 'COUNT' must be an integer"),
        ({"COUNT": 1, "RATIO": "half"}, "p.RATIO", "parameter 'RATIO' must be a number"),
        ({"COUNT": 1, "FLAG": 1}, "p.FLAG", "parameter 'FLAG' must be a boolean (true or false)"),
        ({"COUNT": 1, "ENV": "qa"}, "p.ENV", "parameter 'ENV' must be one of 'dev', 'prod'"),
        ({"COUNT": 1, "NAME": ["a"]}, "p.NAME", "parameter 'NAME' must be a string"),
        (
            {"COUNT": 1, "NAME": "x" * 70000},
            "p.NAME",
            "parameter 'NAME' must be at most 65536 characters",
        ),
        (
            {"COUNT": 1, "PASSWORD": {"$other": "x"}},
            "p.PASSWORD",
            "parameter 'PASSWORD' must be a string",
        ),
        ({"COUNT": 1, "EXTRA": "x"}, "p.EXTRA", "unknown parameter 'EXTRA'"),
    ],
)
def test_invalid_values_name_the_parameter(
    values: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_values(DEFINITIONS, values, field_prefix="p")
    assert caught.value.field == field
    assert caught.value.message.startswith(message)


def test_jenkins_definitions_are_normalised() -> None:
    job = {
        "property": [
            {"_class": "hudson.model.JobProperty"},
            {
                "parameterDefinitions": [
                    {
                        "type": "BooleanParameterDefinition",
                        "name": "B",
                        "defaultParameterValue": {"value": "true"},
                    },
                    {
                        "type": "PasswordParameterDefinition",
                        "name": "P",
                        "defaultParameterValue": {"value": "x"},
                    },
                    {"type": "RunParameterDefinition", "name": "R", "description": "a run"},
                ]
            },
        ]
    }
    assert [(p["name"], p["type"], p["default"]) for p in normalise_parameters(job)] == [
        ("B", "boolean", True),
        ("P", "password", None),
        ("R", "string", None),
    ]
    assert job_url_path("team/my app/deploy") == "job/team/job/my%20app/job/deploy/"


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        ("on: workflow_dispatch\n", {}),
        ("on: [push, workflow_dispatch]\n", {}),
        ("on: push\n", None),
        ("on:\n  workflow_dispatch:\n", {}),
        (
            "'on':\n  workflow_dispatch:\n    inputs:\n      a: {type: string}\n",
            {"a": {"type": "string"}},
        ),
        ("name: no triggers\n", None),
        ("- a list\n", None),
    ],
)
def test_github_dispatch_inputs_are_read_from_the_workflow(
    workflow: str, expected: dict[str, Any] | None
) -> None:
    assert dispatch_inputs(workflow) == expected


def test_github_inputs_are_normalised() -> None:
    inputs = {
        "env": {"type": "environment", "required": True},
        "count": {"type": "number", "default": 2},
        "go": {"type": "boolean", "default": "true"},
        "tier": {"type": "choice", "options": ["a", "b"], "default": "b"},
    }
    assert [
        (p["name"], p["type"], p["default"], p["required"]) for p in normalise_inputs(inputs)
    ] == [
        ("env", "string", None, True),
        ("count", "number", 2, False),
        ("go", "boolean", True, False),
        ("tier", "choice", "b", False),
    ]


def test_circleci_parameters_without_default_are_required() -> None:
    config = "parameters:\n  tag:\n    type: string\n  n:\n    type: integer\n    default: 1\n"
    assert [(p["name"], p["type"], p["required"]) for p in pipeline_parameters(config)] == [
        ("tag", "string", True),
        ("n", "integer", False),
    ]
    assert pipeline_parameters("version: 2.1\n") == []
