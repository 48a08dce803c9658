"""Inventory request bodies and their form counterparts: names, secrets, tags."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipyard.hosts.schemas import HostUpdate, Target, Variable, VariableRead
from shipyard.web.inventory_form import form_tags, form_variables, variable_rows


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "path", "SHIPYARD_HOST", "1X", "A-B"])
def test_refused_variable_names_name_the_variable(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Variable(name=name, value="x")


def test_short_secrets_are_refused_and_plain_short_values_are_fine() -> None:
    with pytest.raises(ValidationError, match="TOKEN"):
        Variable(name="TOKEN", value=" ab ", secret=True)
    assert Variable(name="N", value="1").value == "1"
    assert Variable(name="TOKEN", secret=True).value is None


def test_tags_are_stripped_deduplicated_and_checked() -> None:
    assert HostUpdate(tags=[" web", "web", "eu:west-1"]).tags == ["web", "eu:west-1"]
    with pytest.raises(ValidationError):
        HostUpdate(tags=["two words"])
    with pytest.raises(ValidationError, match="more than once"):
        HostUpdate(variables=[Variable(name="A", value="1"), Variable(name="A", value="2")])
    assert Target(tags=["web", "web"]).tags == ["web"]


def test_form_rows_become_api_items_and_secrets_never_come_back() -> None:
    values = {
        "var_name_0": "REGION",
        "var_value_0": "eu",
        "var_name_1": "TOKEN",
        "var_value_1": "",
        "var_secret_1": "1",
        "var_name_2": "",
        "var_value_2": "ignored",
    }
    assert form_variables(values) == [
        {"name": "REGION", "secret": False, "value": "eu"},
        {"name": "TOKEN", "secret": True},
    ]
    rows = variable_rows([VariableRead(name="TOKEN", secret=True, value=None)], values)
    assert rows[1] == {"name": "TOKEN", "value": "", "secret": True, "stored_secret": True}
    assert form_tags("web, eu  db,,") == ["web", "eu", "db"]
