"""The one table of what each role may do."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    READ = "read"
    PIN_REPOSITORIES = "pin_repositories"
    MANAGE_OWN_TOKENS = "manage_own_tokens"
    RUN_DEPLOYMENTS = "run_deployments"
    TEST_HOSTS = "test_hosts"
    MANAGE_GIT_PROVIDERS = "manage_git_providers"
    MANAGE_REPOSITORIES = "manage_repositories"
    MANAGE_HOSTS = "manage_hosts"
    MANAGE_CICD = "manage_cicd"
    MANAGE_MEMBERS = "manage_members"
    # Create, edit and delete templates (developers and admins; viewers only see them).
    MANAGE_TEMPLATES = "manage_templates"
    # Launch a template marked admin-only.
    LAUNCH_ADMIN_ONLY_TEMPLATES = "launch_admin_only_templates"
    # Notification channels and rules, and their deliveries (admins).
    MANAGE_NOTIFICATIONS = "manage_notifications"
    # Create, edit and delete freeze windows; start a run inside one with a written reason.
    MANAGE_FREEZE_WINDOWS = "manage_freeze_windows"
    OVERRIDE_FREEZE = "override_freeze"
    # Read and export the audit trail, manage its streams and retention (admins).
    MANAGE_AUDIT = "manage_audit"
    # Identity providers, group-to-role rules and the tenant's log-in policy (admins).
    MANAGE_SSO = "manage_sso"
    # The tenant's log retention policy, and the size of its log (admins).
    MANAGE_LOG_RETENTION = "manage_log_retention"


_VIEWER = frozenset({Permission.READ, Permission.PIN_REPOSITORIES, Permission.MANAGE_OWN_TOKENS})
_DEVELOPER = _VIEWER | {
    Permission.RUN_DEPLOYMENTS,
    Permission.TEST_HOSTS,
    Permission.MANAGE_TEMPLATES,
}
_ADMIN = frozenset(Permission)

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": _VIEWER,
    "developer": frozenset(_DEVELOPER),
    "admin": _ADMIN,
}


def role_allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
