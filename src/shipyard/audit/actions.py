"""The audit action of a route: the name its success entry uses, so failures use it too.

A route's action is derived from its method and path template (``POST /api/v1/hosts`` →
``host.create``, ``PATCH /api/v1/hosts/{host_id}`` → ``host.update``,
``POST /api/v1/hosts/{host_id}/test`` → ``host.test``), except where the service names it
otherwise (the tables below). Web forms follow the same rules after their own spellings
(``/hosts/new`` → create, ``/hosts/{id}/edit`` → update, ``/hosts/{id}/delete`` → delete).
"""

from __future__ import annotations

import re

API_PREFIX = "/api/v1"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PARAM = re.compile(r"^\{\w+\}$")

# Where the action function names its entry otherwise than the rules would.
API_ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/auth/signup"): "signup",
    ("POST", "/auth/accept-invitation"): "invitation.accept",
    ("POST", "/auth/login"): "login",
    ("POST", "/auth/logout"): "logout",
    ("POST", "/auth/tokens"): "token.create",
    ("DELETE", "/auth/tokens/{token_id}"): "token.revoke",
    ("PATCH", "/me"): "me.update",
    ("PATCH", "/tenant"): "tenant.update",
    ("POST", "/tenant/members"): "member.add",
    ("PATCH", "/tenant/members/{member_id}"): "member.role",
    ("DELETE", "/tenant/members/{member_id}"): "member.remove",
    ("DELETE", "/tenant/members/{member_id}/tokens"): "member.tokens.revoke",
    ("DELETE", "/tenant/members/{member_id}/tokens/{token_id}"): "member.token.revoke",
    ("POST", "/tenant/invitations"): "invitation.create",
    ("DELETE", "/tenant/invitations/{invitation_id}"): "invitation.revoke",
    ("PUT", "/repositories/{repository_id}/pin"): "repository.pin",
    ("DELETE", "/repositories/{repository_id}/pin"): "repository.unpin",
    ("POST", "/templates/{template_id}/schedules"): "schedule.create",
    ("POST", "/templates/{template_id}/webhooks"): "webhook.create",
    ("DELETE", "/webhooks/{webhook_id}/register"): "webhook.unregister",
    ("POST", "/audit/streams"): "audit_stream.create",
    ("PATCH", "/audit/streams/{stream_id}"): "audit_stream.update",
    ("DELETE", "/audit/streams/{stream_id}"): "audit_stream.delete",
    ("PUT", "/audit/settings"): "audit_settings.update",
    ("PUT", "/logs/retention"): "log_retention.update",
    ("POST", "/sso/providers"): "sso.provider.create",
    ("PATCH", "/sso/providers/{provider_id}"): "sso.provider.update",
    ("DELETE", "/sso/providers/{provider_id}"): "sso.provider.delete",
    ("POST", "/sso/providers/{provider_id}/test"): "sso.provider.test",
    ("POST", "/sso/rules"): "sso.rule.create",
    ("PUT", "/sso/rules/order"): "sso.rule.order",
    ("PATCH", "/sso/rules/{rule_id}"): "sso.rule.update",
    ("DELETE", "/sso/rules/{rule_id}"): "sso.rule.delete",
    ("PATCH", "/sso/settings"): "sso.settings.update",
}

WEB_ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/login"): "login",
    ("POST", "/logout"): "logout",
    ("POST", "/signup"): "signup",
    ("POST", "/invite/{token}"): "invitation.accept",
    ("POST", "/cicd"): "cicd_provider.create",
    ("POST", "/repositories"): "repository.create",
    ("POST", "/repositories/providers"): "git_provider.create",
    ("POST", "/hosts/{host_id}/accept-key"): "host.accept_host_key",
    ("POST", "/templates/from-wizard"): "template.create",
    ("POST", "/templates/{template_id}/rollback/{deployment_id}"): "template.rollback",
    ("POST", "/templates/{template_id}/schedules/new"): "schedule.create",
    ("POST", "/templates/{template_id}/webhooks/new"): "webhook.create",
    ("POST", "/webhooks/{webhook_id}/enable"): "webhook.update",
    ("POST", "/webhooks/{webhook_id}/disable"): "webhook.update",
    ("POST", "/settings/invitations"): "invitation.create",
    ("POST", "/settings/invitations/{invitation_id}/revoke"): "invitation.revoke",
    ("POST", "/settings/members"): "member.add",
    ("POST", "/settings/members/{member_id}/remove"): "member.remove",
    ("POST", "/settings/members/{member_id}/role"): "member.role",
    ("POST", "/settings/members/{member_id}/tokens/revoke-all"): "member.tokens.revoke",
    ("POST", "/settings/members/{member_id}/tokens/{token_id}/revoke"): "member.token.revoke",
    ("POST", "/settings/tokens"): "token.create",
    ("POST", "/settings/tokens/{token_id}/revoke"): "token.revoke",
    ("POST", "/audit/streams"): "audit_stream.create",
    ("POST", "/audit/streams/{stream_id}/delete"): "audit_stream.delete",
    ("POST", "/audit/settings"): "audit_settings.update",
    ("POST", "/settings/logs"): "log_retention.update",
    ("POST", "/audit/streams/{stream_id}/enable"): "audit_stream.update",
    ("POST", "/audit/streams/{stream_id}/disable"): "audit_stream.update",
    ("POST", "/settings/sso/providers"): "sso.provider.create",
    ("POST", "/settings/sso/providers/{provider_id}"): "sso.provider.update",
    ("POST", "/settings/sso/providers/{provider_id}/delete"): "sso.provider.delete",
    ("POST", "/settings/sso/providers/{provider_id}/test"): "sso.provider.test",
    ("POST", "/settings/sso/rules"): "sso.rule.create",
    ("POST", "/settings/sso/rules/{rule_id}"): "sso.rule.update",
    ("POST", "/settings/sso/rules/{rule_id}/delete"): "sso.rule.delete",
    ("POST", "/settings/sso/rules/{rule_id}/up"): "sso.rule.order",
    ("POST", "/settings/sso/rules/{rule_id}/down"): "sso.rule.order",
    ("POST", "/settings/sso/policy"): "sso.settings.update",
}

# Web paths whose first segments name another resource than themselves.
WEB_PREFIXES = (
    ("/repositories/providers", "/git-providers"),
    ("/cicd/providers", "/cicd-providers"),
    ("/notifications/channels", "/notification-channels"),
    ("/notifications/rules", "/notification-rules"),
)
# Writes that change nothing: previews of what an action would do.
READ_ONLY = re.compile(r"/preview$")
_WEB_VERBS = {"new": "create", "edit": "update", "delete": "delete", "remove": "delete"}


def singular(segment: str) -> str:
    """``host-groups`` → ``host_group``, ``repositories`` → ``repository``."""
    name = segment.replace("-", "_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _derive(method: str, path: str, *, web: bool) -> str | None:
    segments = [segment for segment in path.strip("/").split("/") if segment]
    if not segments:
        return None
    last = segments[-1]
    if web and last in _WEB_VERBS:
        segments, verb = segments[:-1], _WEB_VERBS[last]
        literals = [segment for segment in segments if not _PARAM.match(segment)]
        return f"{singular(literals[-1])}.{verb}" if literals else None
    literals = [segment for segment in segments if not _PARAM.match(segment)]
    if not literals:
        return None
    if _PARAM.match(last):
        verb = {"DELETE": "delete"}.get(method, "update")
        return f"{singular(literals[-1])}.{verb}"
    if len(literals) == 1:
        verb = {"POST": "create", "DELETE": "delete"}.get(method, "update")
        return f"{singular(last)}.{verb}"
    owner = literals[-2]
    return f"{singular(owner)}.{last.replace('-', '_')}"


def audit_action(method: str, path: str) -> str | None:
    """The action of the write ``method path`` (a route template: ``/api/v1/hosts/{host_id}``
    or a web path), or None when it changes nothing (a preview) or is no write."""
    method = method.upper()
    if method not in UNSAFE_METHODS or READ_ONLY.search(path):
        return None
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        local = path[len(API_PREFIX) :] or "/"
        return API_ACTIONS.get((method, local)) or _derive(method, local, web=False)
    if (method, path) in WEB_ACTIONS:
        return WEB_ACTIONS[(method, path)]
    for prefix, replacement in WEB_PREFIXES:
        if path.startswith(prefix):
            path = replacement + path[len(prefix) :]
            break
    return _derive(method, path, web=True)
