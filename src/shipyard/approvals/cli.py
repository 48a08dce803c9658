"""``shipyard approvals``: approvals of runs waiting in pending_approval.

``list`` shows the runs you may decide on; ``approve ID`` and ``reject ID --comment WHY`` decide.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.client.commands import ApiTyper, api_client
from shipyard.client.output import emit
from shipyard.deployments.cli_follow import styled

app = ApiTyper(help="Approvals of runs waiting in pending_approval.", no_args_is_help=True)

CommentOption = Annotated[
    str | None, typer.Option("--comment", "-m", help="Why (shown on the run).")
]


def _requester(item: dict[str, Any]) -> str:
    by = item.get("requested_by") or {}
    return str(by.get("name") or by.get("kind") or "")


@app.command("list")
def list_approvals(
    all_pending: Annotated[
        bool, typer.Option("--all", help="Every waiting run, not only those you may decide on.")
    ] = False,
) -> None:
    """Runs waiting for approval that you may approve or reject, oldest first."""
    with api_client() as api:
        items: list[dict[str, Any]] = api.get("/approvals", all="true" if all_pending else None)
    emit(items, table=lambda: approvals_view(items, all_pending=all_pending))


def approvals_view(items: list[dict[str, Any]], *, all_pending: bool) -> Table | str:
    if not items:
        return "nothing waits for your approval"
    table = Table()
    for column in ("deployment", "name", "template", "requested by", "approvals", "expires"):
        table.add_column(column)
    if all_pending:
        table.add_column("you")
    for item in items:
        approved = sum(1 for row in item["approvals"] if row["decision"] == "approved")
        row = [
            item["deployment_id"],
            item["name"],
            (item.get("template") or {}).get("name") or "",
            _requester(item),
            f"{approved}/{item['approvals_needed']}",
            item["approval_expires_at"] or "",
        ]
        if all_pending:
            row.append("may decide" if item["can_decide"] else (item["reason"] or ""))
        table.add_row(*row)
    return table


PAST = {"approve": "approved", "reject": "rejected"}


def _decide(deployment_id: str, action: str, comment: str | None) -> None:
    with api_client() as api:
        deployment = api.post(f"/deployments/{deployment_id}/{action}", json={"comment": comment})
    approved = sum(1 for row in deployment["approvals"] if row["decision"] == "approved")
    emit(
        deployment,
        table=lambda: (
            f"deployment {deployment['id']}: {PAST[action]} ({approved}/"
            f"{deployment['approvals_needed']} approvals, now {styled(deployment['status'])})"
        ),
    )


@app.command("approve")
def approve(
    deployment_id: Annotated[str, typer.Argument(help="The waiting run's id.")],
    comment: CommentOption = None,
) -> None:
    """Approve a waiting run; the last approval it needs starts it."""
    _decide(deployment_id, "approve", comment)


@app.command("reject")
def reject(
    deployment_id: Annotated[str, typer.Argument(help="The waiting run's id.")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (required).")],
) -> None:
    """Reject a waiting run with a reason: it ends cancelled."""
    _decide(deployment_id, "reject", comment)
