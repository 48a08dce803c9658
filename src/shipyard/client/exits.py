"""The exit codes of every ``shipyard`` command that talks to the API (shown by ``--help``)."""

from __future__ import annotations

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
# A run that waited for approval ends `cancelled` with one of these errors (approvals.service).
APPROVAL_ERRORS = ("rejected by ", "approval expired")

HELP = (
    "Exit codes: 0 success; 1 error (the API refused, or a deployment failed); 2 usage "
    "(bad arguments, an ambiguous name); 3 partial (some hosts failed); 4 cancelled or "
    "interrupted; 5 approval rejected or timed out."
)


def for_outcome(status: str, error: str | None = None) -> int:
    """The exit code for a deployment that ended with ``status`` (and ``error``, if any)."""
    if status == "cancelled" and (error or "").startswith(APPROVAL_ERRORS):
        return APPROVAL
    return BY_STATUS.get(status, ERROR)
