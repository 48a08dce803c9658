"""Rolling batches, redaction and output tails: the pure parts of a deployment run."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import ValidationError

from shipyard.deployments.batches import plan_batches
from shipyard.deployments.logs import OutputTail
from shipyard.deployments.redaction import Redactor
from shipyard.deployments.schemas import DeploymentCreate, ExecutionOptions


def test_one_batch_when_no_batching_is_asked() -> None:
    hosts = [uuid4() for _ in range(7)]
    assert plan_batches(hosts, ExecutionOptions()) == [hosts]


def test_batches_by_size_keep_order_and_cover_every_host() -> None:
    hosts = [uuid4() for _ in range(7)]
    batches = plan_batches(hosts, ExecutionOptions(batch_size=3))
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert [host for batch in batches for host in batch] == hosts


def test_batches_by_percentage_round_up() -> None:
    hosts = [uuid4() for _ in range(10)]
    assert [len(b) for b in plan_batches(hosts, ExecutionOptions(batch_percent=25))] == [3, 3, 3, 1]
    assert [len(b) for b in plan_batches(hosts[:1], ExecutionOptions(batch_percent=1))] == [1]


def test_batch_size_and_percent_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="batch_size or batch_percent"):
        ExecutionOptions(batch_size=2, batch_percent=50)


def test_redactor_masks_every_secret_and_each_line_of_a_multiline_one() -> None:
    key = "-----BEGIN KEY-----\nAAAAsecretline1\nBBBBsecretline2\n-----END KEY-----"
    redact = Redactor(["hunter22", key, None, ""])
    assert redact("password is hunter22!") == "password is ***!"
    assert redact("got BBBBsecretline2 in output") == "got *** in output"
    assert redact("nothing here") == "nothing here"


def test_redactor_prefers_the_longest_match() -> None:
    redact = Redactor(["abcd", "abcdefgh"])
    assert redact("xabcdefghx") == "x***x"


def test_output_tail_keeps_the_end_and_says_it_was_cut() -> None:
    tail = OutputTail(limit=100)
    for number in range(1000):
        tail.add(f"line {number}")
    text = tail.text()
    assert text.startswith("[earlier output omitted")
    assert text.endswith("line 999")
    assert "line 10\n" not in text
    assert len(text) < 200


def test_schedule_later_needs_an_aware_time() -> None:
    with pytest.raises(ValidationError, match="scheduled_time is required"):
        DeploymentCreate(name="x", schedule="later")
    with pytest.raises(ValidationError, match="timezone"):
        DeploymentCreate.model_validate(
            {"name": "x", "schedule": "later", "scheduled_time": "2099-01-01T00:00:00"}
        )


def test_environment_names_must_be_valid_and_unique() -> None:
    with pytest.raises(ValidationError, match="letters, digits"):
        DeploymentCreate.model_validate(
            {"name": "x", "environment": [{"name": "1BAD", "value": "v"}]}
        )
    with pytest.raises(ValidationError, match="unique"):
        DeploymentCreate.model_validate(
            {"name": "x", "environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}
        )
