"""The wizard's state: carried between steps, turned into a deployment request."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from starlette.datastructures import ImmutableMultiDict

from shipyard.deployments.schemas import DeploymentCreate
from shipyard.web.wizard import WizardState


def _state(pairs: list[tuple[str, str]]) -> WizardState:
    return WizardState.parse(ImmutableMultiDict(pairs))


def test_state_survives_a_round_trip_through_hidden_fields() -> None:
    script, host_a, host_b = uuid4(), uuid4(), uuid4()
    state = _state(
        [
            ("name", " Release "),
            ("repository_id", str(uuid4())),
            ("script_id", str(script)),
            ("script_id", str(script)),
            ("script_id", "not-a-uuid"),
            (f"args_{script}", "v1 'two words'"),
            ("host_id", str(host_a)),
            ("host_id", str(host_b)),
            ("unknown", "ignored"),
        ]
    )
    assert state.get("name") == "Release"
    assert state.script_ids == [script]
    assert state.host_ids == [host_a, host_b]
    again = _state(state.hidden())
    assert again == state
    assert "unknown" not in state.query()
    # A step that edits hosts leaves them out, so its own checkboxes decide.
    assert ("host_id", str(host_a)) not in state.hidden(skip=("hosts",))


def test_arguments_are_split_like_a_shell() -> None:
    script = uuid4()
    state = _state([("script_id", str(script)), (f"args_{script}", "--tag 'a b' \"c d\" e\\ f")])
    assert state.split_arguments(script) == ["--tag", "a b", "c d", "e f"]


def test_local_time_with_the_browsers_offset_becomes_utc() -> None:
    # getTimezoneOffset() is -120 in UTC+2: 14:30 there is 12:30 UTC.
    state = _state(
        [("schedule", "later"), ("scheduled_local", "2031-05-01T14:30"), ("tz_offset", "-120")]
    )
    assert state.scheduled_time() == datetime(2031, 5, 1, 12, 30, tzinfo=UTC)
    west = _state([("scheduled_local", "2031-05-01T14:30"), ("tz_offset", "300")])
    assert west.scheduled_time() == datetime(2031, 5, 1, 19, 30, tzinfo=UTC)
    assert _state([]).scheduled_time() is None


def test_body_is_a_valid_request_with_options_and_ci_steps() -> None:
    script, host, job = uuid4(), uuid4(), uuid4()
    state = _state(
        [
            ("name", "Ship"),
            ("repository_id", str(uuid4())),
            ("ref", "v2"),
            ("script_id", str(script)),
            (f"args_{script}", "fast"),
            ("host_id", str(host)),
            ("parallelism", "3"),
            ("batch_size", "2"),
            ("stop_on_failure", "1"),
            ("cicd_after", str(job)),
            ("cicd_after_params", "environment = production\n\nversion=1.2=rc"),
        ]
    )
    data = DeploymentCreate.model_validate(state.body())
    assert data.scripts[0].arguments == ["fast"]
    assert data.options.parallelism == 3 and data.options.batch_size == 2
    assert data.options.stop_on_failure is True
    assert data.cicd_steps[0].stage == "after"
    assert data.cicd_steps[0].parameters == {"environment": "production", "version": "1.2=rc"}
    assert data.schedule == "now" and data.scheduled_time is None


def test_bad_parameters_and_missing_time_are_refused() -> None:
    job = uuid4()
    with pytest.raises(ValueError, match="'oops' is not key=value"):
        _state([("cicd_before", str(job)), ("cicd_before_params", "oops")]).body()
    with pytest.raises(ValueError, match="scheduled_time is required"):
        DeploymentCreate.model_validate(_state([("name", "x"), ("schedule", "later")]).body())
