"""Approvals: runs of templates that require them wait in ``pending_approval`` for their approvers."""
