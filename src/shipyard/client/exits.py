"""The exit codes of every ``shipyard`` command that talks to the API (shown by ``--help``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

SUCCESS = 0
ERROR = 1  # the API refused, could not be reached, or a deployment failed
USAGE = 2  # bad arguments, an ambiguous name (Click's own usage errors use 2 as well)
PARTIAL = 3  # a deployment ended with some hosts failed
CANCELLED = 4  # a deployment was cancelled or interrupted
APPROVAL = 5  # an approval was rejected, or the wait for it timed out

# A finished deployment's status -> the exit code of `deploy watch`, `deploy create --wait` and
# `run --wait`.
BY_STATUS = {
    "success": SUCCESS,
    "failed": ERROR,
    "partial": PARTIAL,
    "cancelled": CANCELLED,
    "interrupted": CANCELLED,
}
HELP = (
    "Exit codes: 0 success; 1 error (the API refused, or a deployment failed); 2 usage "
    "(bad arguments, an ambiguous name); 3 partial (some hosts failed); 4 cancelled or "
    "interrupted; 5 approval rejected or timed out."
)


def approval_refused(deployment: Mapping[str, Any]) -> bool:
    """A run that waited for approval and was refused: a rejection among its decisions, or
    cancelled, never started, when its approval window closed (the API's own fields)."""
    if deployment.get("status") != "cancelled" or not deployment.get("approvals_needed"):
        return False
    if any(item.get("decision") == "rejected" for item in deployment.get("approvals") or []):
        return True
    expires, ended = deployment.get("approval_expires_at"), deployment.get("completed_at")
    return (
        deployment.get("started_at") is None
        and expires is not None
        and ended is not None
        and datetime.fromisoformat(ended) >= datetime.fromisoformat(expires)
    )


def for_outcome(deployment: Mapping[str, Any]) -> int:
    """The exit code for a finished deployment (the API's single-deployment answer)."""
    if approval_refused(deployment):
        return APPROVAL
    return BY_STATUS.get(str(deployment.get("status")), ERROR)
