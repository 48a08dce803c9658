"""Insert one of every tenant-owned resource directly, for sweeps over every endpoint."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.models import AuditEvent, Invitation, Tenant
from shipyard.audit.models import AuditStream
from shipyard.cicd.models import CicdJob, CicdProvider, DeploymentCicdMapping
from shipyard.crypto import seal
from shipyard.db import Database
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.freeze.models import FreezeWindow
from shipyard.git.models import GitOAuthApp, GitProvider, Repository
from shipyard.hosts.models import Host, HostGroup, HostGroupMember, HostTag, InventoryVariable
from shipyard.notifications.models import (
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
)
from shipyard.schedules.models import Schedule, ScheduleFire
from shipyard.sso.models import SsoProvider, SsoRoleRule
from shipyard.templates.models import Template
from shipyard.webhooks.models import Webhook, WebhookDelivery

PLAINTEXT = {
    "host_password": "host-password-plaintext-1",
    "host_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nkeymaterialplaintext2\n-----END OPENSSH PRIVATE KEY-----",
    "host_passphrase": "passphrase-plaintext-3",
    "git_access": "ghp_accesstokenplaintext4",
    "git_refresh": "refreshtokenplaintext5",
    "cicd_token": "jenkins-api-token-plaintext6",
    "deploy_secret": "deploy-secret-plaintext7",
    "oauth_client_secret": "oauth-client-secret-plaintext8",
    "inventory_secret": "inventory-secret-plaintext9",
    "template_secret": "template-secret-plaintext10",
    "webhook_secret": "webhook-secret-plaintext11",
    "schedule_secret": "schedule-secret-plaintext12",
    "audit_stream_secret": "audit-stream-secret-plaintext13",
    "notification_secret": "notification-secret-plaintext14",
    "sso_secret": "sso-client-secret-plaintext15",
}


@dataclass
class SeededTenant:
    tenant_id: UUID
    host_id: UUID
    git_provider_id: UUID
    repository_id: UUID
    deployment_id: UUID
    deployment_script_id: UUID
    cicd_provider_id: UUID
    cicd_job_id: UUID
    cicd_mapping_id: UUID
    git_oauth_app_id: UUID
    invitation_id: UUID
    host_group_id: UUID
    template_id: UUID
    webhook_id: UUID
    schedule_id: UUID
    # The audit trail (issue 15): one entry and one stream.
    audit_entry_id: UUID | None = None
    audit_stream_id: UUID | None = None
    # A freeze window (issue 15), disabled: it must not close the seeded tenant to runs.
    freeze_window_id: UUID | None = None
    # Notifications (issue 15): a channel (its URL encrypted) with a rule and a delivery.
    notification_channel_id: UUID | None = None
    notification_rule_id: UUID | None = None
    # Single sign-on (issue 16): an OIDC provider (its client secret encrypted; its issuer
    # refuses connections) and a role rule.
    sso_provider_id: UUID | None = None
    sso_rule_id: UUID | None = None
    # The team's own log-in page (/login/t/<slug>, GET /auth/teams/{slug}), which lists the
    # provider above: public, so it must show nothing of its secret.
    login_slug: str | None = None


async def seed_tenant(db: Database, *, tenant_id: str, profile_id: str) -> SeededTenant:
    tid, pid = UUID(tenant_id), UUID(profile_id)
    async with db.session(tenant_id=tid, user_id=pid) as session:
        host = Host(
            tenant_id=tid,
            name="web-1",
            type="ssh",
            ip="127.0.0.1",
            port=22,
            user="deploy",
            password=PLAINTEXT["host_password"],
            private_key=PLAINTEXT["host_key"],
            private_key_passphrase=PLAINTEXT["host_passphrase"],
            auth_method="password",
        )
        provider = GitProvider(
            tenant_id=tid,
            profile_id=pid,
            type="github",
            name="octo",
            display_name="Octo",
            access_token=PLAINTEXT["git_access"],
            refresh_token=PLAINTEXT["git_refresh"],
            is_configured=True,
        )
        oauth_app = GitOAuthApp(
            tenant_id=tid,
            type="github",
            server_url="https://github.com",
            client_id="client-1",
            client_secret=PLAINTEXT["oauth_client_secret"],
            profile_id=pid,
        )
        session.add_all([host, provider, oauth_app])
        await session.flush()
        repository = Repository(
            tenant_id=tid,
            provider_id=provider.id,
            provider_type="github",
            name="app",
            owner="octo",
            url="https://github.com/octo/app",
            external_id="1",
            default_branch="main",
        )
        cicd = CicdProvider(
            tenant_id=tid,
            profile_id=pid,
            type="jenkins",
            name="ci",
            url="http://127.0.0.1:9",
            config={"username": "bot", "api_token": seal(PLAINTEXT["cicd_token"], db.keyring)},
        )
        session.add_all([repository, cicd])
        await session.flush()
        job = CicdJob(
            tenant_id=tid, provider_id=cicd.id, external_id="deploy", name="deploy", path="deploy"
        )
        deployment = Deployment(
            tenant_id=tid,
            name="ship",
            repository_id=repository.id,
            status="success",
            schedule="now",
            host_ids=[host.id],
            created_by=pid,
            secret_environment=json.dumps({"TOKEN": PLAINTEXT["deploy_secret"]}),
        )
        template = Template(
            tenant_id=tid,
            name="release",
            repository_id=repository.id,
            ref="main",
            target={"host_ids": [str(host.id)], "group_ids": [], "tags": []},
            environment={"REGION": "eu"},
            secret_environment=json.dumps({"TOKEN": PLAINTEXT["template_secret"]}),
            parameters=[{"name": "version", "type": "string", "required": False}],
            created_by=pid,
        )
        session.add_all([job, template])
        await session.flush()
        deployment.template_id = template.id
        deployment.parameters = {"version": "1.0"}
        session.add(deployment)
        await session.flush()
        script = DeploymentScript(
            tenant_id=tid,
            deployment_id=deployment.id,
            host_id=host.id,
            name="a.sh",
            path="a.sh",
            status="success",
        )
        mapping = DeploymentCicdMapping(
            tenant_id=tid, deployment_id=deployment.id, cicd_job_id=job.id
        )
        session.add_all([script, mapping])
        await session.flush()
        session.add(
            DeploymentLog(tenant_id=tid, deployment_id=deployment.id, message="hello", level="INFO")
        )
        invitation = Invitation(
            tenant_id=tid,
            email=f"invited-{tid.hex[:8]}@example.com",
            role="developer",
            token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            invited_by=pid,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        session.add(invitation)
        group = HostGroup(tenant_id=tid, name="prod")
        session.add(group)
        await session.flush()
        session.add_all(
            [
                HostGroupMember(tenant_id=tid, group_id=group.id, host_id=host.id),
                HostTag(tenant_id=tid, host_id=host.id, tag="web"),
                InventoryVariable(
                    tenant_id=tid,
                    group_id=group.id,
                    name="DB_PASSWORD",
                    secret=True,
                    secret_value=PLAINTEXT["inventory_secret"],
                ),
                InventoryVariable(tenant_id=tid, host_id=host.id, name="REGION", value="eu"),
            ]
        )
        # A generic hook: registering it at a provider is refused before any network call.
        webhook = Webhook(
            tenant_id=tid,
            template_id=template.id,
            provider="generic",
            secret=PLAINTEXT["webhook_secret"],
            events=["push"],
            created_by=pid,
        )
        session.add(webhook)
        await session.flush()
        session.add(
            WebhookDelivery(
                tenant_id=tid,
                webhook_id=webhook.id,
                delivery_id="seeded-delivery",
                event="push",
                verdict="ran",
                reason="seeded",
                deployment_id=deployment.id,
                ref="refs/heads/main",
            )
        )
        # A schedule (its secret parameter value encrypted) with one fire on record.
        schedule = Schedule(
            tenant_id=tid,
            template_id=template.id,
            cron="0 3 * * *",
            timezone="Europe/Berlin",
            parameters={},
            secret_parameters=json.dumps({"TOKEN": PLAINTEXT["schedule_secret"]}),
            next_fire_at=datetime.now(UTC) + timedelta(days=1),
            created_by=pid,
        )
        session.add(schedule)
        await session.flush()
        session.add(
            ScheduleFire(
                tenant_id=tid,
                schedule_id=schedule.id,
                fire_time=datetime.now(UTC) - timedelta(days=1),
                verdict="ran",
                deployment_id=deployment.id,
            )
        )
        await session.flush()
        audit_entry_id, audit_stream_id = await _seed_audit(session, tid, pid)
        channel_id, rule_id = await _seed_notifications(session, tid, pid)
        freeze_window = FreezeWindow(
            tenant_id=tid,
            name="seeded freeze",
            kind="fixed",
            starts_at=datetime.now(UTC) - timedelta(days=1),
            ends_at=datetime.now(UTC) + timedelta(days=1),
            template_ids=[template.id],
            group_ids=[group.id],
            enabled=False,
            created_by=pid,
        )
        session.add(freeze_window)
        sso_provider = SsoProvider(
            tenant_id=tid,
            kind="oidc",
            name="seeded idp",
            config={"issuer": "http://127.0.0.1:9", "client_id": "shipyard"},
            secret=PLAINTEXT["sso_secret"],
            created_by=pid,
        )
        session.add(sso_provider)
        await session.flush()
        sso_rule = SsoRoleRule(
            tenant_id=tid, position=0, group="seeded", role="viewer", provider_id=sso_provider.id
        )
        session.add(sso_rule)
        tenant = await session.get(Tenant, tid)
        assert tenant is not None
        tenant.login_slug = f"seeded-{tid.hex[:12]}"
        await session.flush()
        return SeededTenant(
            tenant_id=tid,
            host_id=host.id,
            git_provider_id=provider.id,
            repository_id=repository.id,
            deployment_id=deployment.id,
            deployment_script_id=script.id,
            cicd_provider_id=cicd.id,
            cicd_job_id=job.id,
            cicd_mapping_id=mapping.id,
            git_oauth_app_id=oauth_app.id,
            invitation_id=invitation.id,
            host_group_id=group.id,
            template_id=template.id,
            webhook_id=webhook.id,
            schedule_id=schedule.id,
            audit_entry_id=audit_entry_id,
            audit_stream_id=audit_stream_id,
            freeze_window_id=freeze_window.id,
            notification_channel_id=channel_id,
            notification_rule_id=rule_id,
            sso_provider_id=sso_provider.id,
            sso_rule_id=sso_rule.id,
            login_slug=tenant.login_slug,
        )


async def _seed_notifications(session: AsyncSession, tid: UUID, pid: UUID) -> tuple[UUID, UUID]:
    """A Slack channel (its URL, the credential, encrypted), a rule, one delivery attempted."""
    secret_url = f"http://127.0.0.1:9/services/{PLAINTEXT['notification_secret']}"
    channel = NotificationChannel(
        tenant_id=tid,
        name="seeded-slack",
        type="slack",
        config={},
        secret_config=json.dumps({"url": secret_url}),
        enabled=False,
        created_by=pid,
    )
    session.add(channel)
    await session.flush()
    rule = NotificationRule(
        tenant_id=tid, channel_id=channel.id, events=["deployment.failed"], created_by=pid
    )
    delivery = NotificationDelivery(
        tenant_id=tid,
        channel_id=channel.id,
        event="deployment.failed",
        message={"event": "deployment.failed", "title": "seeded"},
        status="failed",
        attempts=1,
    )
    session.add_all([rule, delivery])
    await session.flush()
    session.add(
        NotificationAttempt(
            tenant_id=tid, delivery_id=delivery.id, attempt=1, error="seeded failure"
        )
    )
    await session.flush()
    return channel.id, rule.id


async def _seed_audit(session: AsyncSession, tid: UUID, pid: UUID) -> tuple[UUID, UUID]:
    """An audit entry and a webhook audit stream (its signing secret encrypted)."""
    entry = AuditEvent(
        tenant_id=tid,
        actor_profile_id=pid,
        actor_email="seed@example.com",
        action="host.update",
        resource_type="host",
        details={},
        changes={"name": {"before": "a", "after": "b"}},
    )
    stream = AuditStream(
        tenant_id=tid,
        name="seeded-stream",
        type="webhook",
        config={"url": "http://127.0.0.1:9/audit"},
        secret=PLAINTEXT["audit_stream_secret"],
        enabled=False,
        created_by=pid,
    )
    session.add_all([entry, stream])
    await session.flush()
    return entry.id, stream.id
