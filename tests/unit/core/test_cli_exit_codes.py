"""The exit code of a followed run, read from the API's answer for the finished deployment."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.client import exits

WAITED: dict[str, Any] = {
    "status": "cancelled",
    "approvals_needed": 1,
    "approval_expires_at": "2026-12-02T10:00:00+00:00",
    "started_at": None,
    "approvals": [],
}


@pytest.mark.parametrize(
    ("deployment", "code"),
    [
        ({"status": "success"}, 0),
        ({"status": "failed"}, 1),
        ({"status": "partial"}, 3),
        ({"status": "interrupted"}, 4),
        # Cancelled by hand while it waited, before its window closed: cancelled, not refused.
        ({**WAITED, "completed_at": "2026-12-02T09:00:00+00:00"}, 4),
        # Rejected by an approver.
        (
            {
                **WAITED,
                "completed_at": "2026-12-02T09:00:00+00:00",
                "approvals": [{"decision": "rejected"}],
            },
            5,
        ),
        # Nobody decided before the window closed.
        ({**WAITED, "completed_at": "2026-12-02T10:00:01+00:00"}, 5),
        # A run without approvals cancelled late is only cancelled.
        ({"status": "cancelled", "approvals_needed": None, "started_at": "x"}, 4),
        ({"status": "something new"}, 1),
    ],
)
def test_exit_code_for_a_finished_run(deployment: dict[str, Any], code: int) -> None:
    assert exits.for_outcome(deployment) == code
