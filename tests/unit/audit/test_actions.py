"""Route → audit action: the names the success entries use, derived for failure entries."""

from __future__ import annotations

import pytest

from shipyard.audit.actions import audit_action, singular


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("POST", "/api/v1/hosts", "host.create"),
        ("PATCH", "/api/v1/hosts/{host_id}", "host.update"),
        ("DELETE", "/api/v1/hosts/{host_id}", "host.delete"),
        ("POST", "/api/v1/hosts/{host_id}/accept-host-key", "host.accept_host_key"),
        ("POST", "/api/v1/hosts/test-all", "host.test_all"),
        ("POST", "/api/v1/host-groups", "host_group.create"),
        ("POST", "/api/v1/repositories", "repository.create"),
        ("POST", "/api/v1/deployments/{deployment_id}/rerun", "deployment.rerun"),
        ("POST", "/api/v1/templates/{template_id}/schedules", "schedule.create"),
        ("DELETE", "/api/v1/webhooks/{webhook_id}/register", "webhook.unregister"),
        ("PATCH", "/api/v1/tenant/members/{member_id}", "member.role"),
        ("POST", "/api/v1/freeze-windows", "freeze_window.create"),
        ("POST", "/api/v1/notification-channels/{channel_id}/test", "notification_channel.test"),
        ("POST", "/api/v1/audit/streams", "audit_stream.create"),
        ("PUT", "/api/v1/audit/settings", "audit_settings.update"),
        # Web forms: their own spellings, the same names.
        ("POST", "/hosts/new", "host.create"),
        ("POST", "/hosts/{host_id}/edit", "host.update"),
        ("POST", "/hosts/{host_id}/delete", "host.delete"),
        ("POST", "/hosts/{host_id}/accept-key", "host.accept_host_key"),
        ("POST", "/cicd/providers/{provider_id}/sync", "cicd_provider.sync"),
        ("POST", "/repositories/providers/{provider_id}/delete", "git_provider.delete"),
        ("POST", "/settings/members/{member_id}/role", "member.role"),
        ("POST", "/deployments/{deployment_id}/cancel", "deployment.cancel"),
        ("POST", "/notifications/channels", "notification_channel.create"),
        ("POST", "/notifications/channels/{channel_id}/edit", "notification_channel.update"),
        ("POST", "/notifications/rules/{rule_id}/delete", "notification_rule.delete"),
        ("POST", "/audit/streams/{stream_id}/disable", "audit_stream.update"),
    ],
)
def test_actions(method: str, path: str, action: str) -> None:
    assert audit_action(method, path) == action


def test_reads_and_previews_have_no_action() -> None:
    assert audit_action("GET", "/api/v1/hosts") is None
    assert audit_action("POST", "/api/v1/schedules/preview") is None
    assert audit_action("POST", "/templates/{template_id}/preview") is None


def test_singular() -> None:
    assert singular("repositories") == "repository"
    assert singular("git-oauth-apps") == "git_oauth_app"
    assert singular("inventory") == "inventory"
    assert singular("access") == "access"
