"""Every ORM model, imported in one place so the metadata is complete (Alembic, tests)."""

from __future__ import annotations

from sqlalchemy.orm import configure_mappers

from shipyard.accounts.models import ApiToken, AuditEvent, LoginFailure, Profile, Tenant, User
from shipyard.approvals.models import DeploymentApproval
from shipyard.audit.models import AuditStream
from shipyard.cicd.models import CicdJob, CicdProvider, DeploymentCicdMapping
from shipyard.deployments.models import (
    Deployment,
    DeploymentHeartbeat,
    DeploymentLog,
    DeploymentScript,
)
from shipyard.freeze.models import FreezeWindow
from shipyard.git.models import GitProvider, ProfileRepositoryPin, Repository
from shipyard.hosts.models import Host, HostGroup, HostGroupMember, HostTag, InventoryVariable
from shipyard.notifications.models import (
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
    NotificationRuleState,
)
from shipyard.orm import Base
from shipyard.schedules.models import Schedule, ScheduleFire
from shipyard.sso.models import SsoIdentity, SsoLoginState, SsoProvider, SsoRoleRule
from shipyard.templates.models import Template
from shipyard.webhooks.models import Webhook, WebhookDelivery

metadata = Base.metadata


def configure() -> None:
    """Resolve foreign keys between every model; any process that flushes rows needs it first."""
    configure_mappers()


# Tables whose rows belong to one tenant; each gets the same RLS policy on tenant_id.
TENANT_TABLES = (
    "api_tokens",
    "audit_events",
    "git_providers",
    "repositories",
    "profile_repository_pins",
    "hosts",
    "deployments",
    "deployment_logs",
    "deployment_scripts",
    "cicd_providers",
    "cicd_jobs",
    "deployment_cicd_mappings",
    "host_groups",
    "host_group_members",
    "host_tags",
    "inventory_variables",
    "templates",
    "schedules",
    "schedule_fires",
    "webhooks",
    "webhook_deliveries",
    "notification_channels",
    "notification_rules",
    "notification_deliveries",
    "notification_attempts",
    "notification_rule_states",
    "deployment_approvals",
    "freeze_windows",
    "audit_streams",
    "sso_providers",
    "sso_role_rules",
    "sso_identities",
    "sso_login_states",
)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuditStream",
    "Base",
    "CicdJob",
    "CicdProvider",
    "Deployment",
    "DeploymentApproval",
    "DeploymentCicdMapping",
    "DeploymentHeartbeat",
    "DeploymentLog",
    "DeploymentScript",
    "FreezeWindow",
    "GitProvider",
    "Host",
    "HostGroup",
    "HostGroupMember",
    "HostTag",
    "InventoryVariable",
    "LoginFailure",
    "NotificationAttempt",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationRule",
    "NotificationRuleState",
    "Profile",
    "ProfileRepositoryPin",
    "Repository",
    "Schedule",
    "ScheduleFire",
    "SsoIdentity",
    "SsoLoginState",
    "SsoProvider",
    "SsoRoleRule",
    "Template",
    "Tenant",
    "User",
    "Webhook",
    "WebhookDelivery",
    "configure",
    "metadata",
]
