"""Insert one of every tenant-owned resource directly, for sweeps over every endpoint."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from shipyard.accounts.models import Invitation
from shipyard.cicd.models import CicdJob, CicdProvider, DeploymentCicdMapping
from shipyard.crypto import seal
from shipyard.db import Database
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.git.models import GitOAuthApp, GitProvider, Repository
from shipyard.hosts.models import Host, HostGroup, HostGroupMember, HostTag, InventoryVariable
from shipyard.schedules.models import Schedule, ScheduleFire
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
        )
