"""The template form's text fields into API bodies, and the launch form into typed values."""

from __future__ import annotations

from starlette.datastructures import FormData

from shipyard.templates.parameters import Parameter
from shipyard.web.template_form import (
    ParameterRow,
    TemplateForm,
    join_arguments,
    launch_values,
    parameter_item,
    split_arguments,
)


def test_arguments_split_like_a_shell_keeping_placeholders_whole() -> None:
    words = split_arguments("--version={{ version }} 'two words' {{ COUNT}}")
    assert words == ["--version={{ version }}", "two words", "{{ COUNT}}"]
    assert split_arguments(join_arguments(words)) == words


def test_scripts_run_in_the_order_typed_and_unticked_ones_are_left_out() -> None:
    form = TemplateForm.from_form(
        FormData(
            [
                ("name", " release "),
                ("script_id_0", "a"),
                ("script_run_0", "1"),
                ("script_order_0", "2"),
                ("script_id_1", "b"),
                ("script_run_1", "1"),
                ("script_order_1", "1"),
                ("script_args_1", "-x"),
                ("script_id_2", "c"),
                ("tags", "web, eu"),
                ("param_name_0", "v"),
                ("param_name_1", "gone"),
                ("param_remove_1", "1"),
                ("param_name_2", ""),
            ]
        )
    )
    body = form.payload()
    assert body["name"] == "release"
    assert body["scripts"] == [
        {"script_id": "b", "arguments": ["-x"]},
        {"script_id": "a", "arguments": []},
    ]
    assert body["target"]["tags"] == ["web", "eu"]
    assert [item["name"] for item in body["parameters"]] == ["v"]


def test_parameter_rows_become_typed_items() -> None:
    flag = parameter_item(ParameterRow(name="DRY", type="boolean", default="yes"))
    assert flag["default"] is True
    many = parameter_item(
        ParameterRow(name="p", type="multi_choice", choices="a\nb, c", default="a,c")
    )
    assert many["choices"] == ["a", "b", "c"] and many["default"] == ["a", "c"]
    secret = parameter_item(ParameterRow(name="S", type="secret", default="never stored"))
    assert "default" not in secret
    Parameter.model_validate(parameter_item(ParameterRow(name="n", type="integer", default="3")))


def test_launch_values_are_typed_and_blank_ones_left_to_their_default() -> None:
    kinds = [
        ("kind.n", "integer"),
        ("kind.flag", "boolean"),
        ("kind.parts", "multi_choice"),
        ("kind.note", "string"),
        ("kind.bad", "integer"),
    ]
    typed = [
        ("param.n", "4"),
        ("param.parts", "a"),
        ("param.parts", "b"),
        ("param.note", "  "),
        ("param.bad", "four"),
    ]
    assert launch_values(FormData([*kinds, *typed])) == {
        "n": 4,
        "flag": False,
        "parts": ["a", "b"],
        "bad": "four",
    }
