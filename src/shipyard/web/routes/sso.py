"""Single sign-on pages: the admins' settings (providers, role rules, policy) at /settings/sso,
and the public log-in pages: a team's own (``/login/t/<slug>``, ``/login/sso/<tenant id>``) and
the discovery by e-mail domain from ``/login``.

The OIDC round trip and the LDAP form POST are in ``sso_oidc.py`` and ``sso_ldap.py``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from shipyard.accounts import flows as accounts_flows
from shipyard.accounts import service as accounts
from shipyard.accounts.models import ROLES
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import NotFound, ShipyardError
from shipyard.sso import admin, directory_flows, flows, ldap_flows
from shipyard.sso.schemas import (
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RuleCreate,
    RuleUpdate,
    SsoSettingsUpdate,
)
from shipyard.web.deps import MaybeUser, safe_next
from shipyard.web.errors import error_page, form_failure, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()
Admin = Annotated[Actor, acting(Permission.MANAGE_SSO)]
FormText = Annotated[str, Form()]

OIDC_FIELDS = (
    "issuer",
    "client_id",
    "scopes",
    "groups_claim",
    "email_claim",
    "name_claim",
    "graph_url",
)
LDAP_FIELDS = (
    "url",
    "start_tls",
    "ca_certificate",
    "bind_dn",
    "user_base",
    "user_filter",
    "group_search",
    "group_base",
    "group_filter",
    "group_name_attribute",
    "nested_groups",
    "directory_check",
    "email_attribute",
    "name_attribute",
    "timeout_seconds",
)
OPTIONAL = {"ca_certificate", "group_base"}
CHECKBOXES = ("start_tls", "nested_groups", "directory_check")


# --- the form of a provider --------------------------------------------------------------------


def _values_of(provider: ProviderRead) -> dict[str, Any]:
    """A provider as its form shows it (never the secret)."""
    values: dict[str, Any] = {
        "kind": provider.kind,
        "name": provider.name,
        "enabled": provider.enabled,
    }
    for key, value in provider.config.items():
        if key == "scopes":
            values[key] = " ".join(value)
        elif value is None:
            values[key] = ""
        else:
            values[key] = value
    return values


def _config_of(form: FormData, kind: str) -> dict[str, Any]:
    """The ``config`` a provider form sends: blank fields are left to the defaults."""
    config: dict[str, Any] = {}
    fields = OIDC_FIELDS if kind == "oidc" else LDAP_FIELDS
    for key in fields:
        if key in CHECKBOXES:
            config[key] = form.get(key) == "on"
            continue
        raw = str(form.get(key) or "").strip()
        if not raw:
            if key in OPTIONAL and key in form:
                config[key] = None
            continue
        if key == "scopes":
            config[key] = raw.replace(",", " ").split()
        elif key == "timeout_seconds":
            try:
                config[key] = float(raw)
            except ValueError:
                config[key] = raw
        else:
            config[key] = raw
    return config


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: str(value) for key, value in form.items() if key not in ("secret", "csrf_token")
    }
    values["enabled"] = form.get("enabled") == "on"
    for key in CHECKBOXES:
        values[key] = form.get(key) == "on"
    return values


def _by_field(errors: dict[str, str]) -> dict[str, str]:
    """``config.issuer`` → ``issuer``: the form's fields have the config's names."""
    return {name.removeprefix("config."): text for name, text in errors.items()}


# --- the settings page -------------------------------------------------------------------------


async def _page(
    request: Request,
    runtime: RuntimeDep,
    actor: Actor,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        providers = await admin.list_providers(session=session)
        rules = await admin.list_rules(session=session, tenant_id=actor.tenant_id)
        policy = await admin.get_settings(
            session=session, principal=actor.principal, settings=runtime.settings
        )
        members = await accounts.list_members(session=session)
    context: dict[str, Any] = {
        "section": "settings",
        "providers": providers,
        "provider_names": {provider.id: provider.name for provider in providers},
        "rules": rules,
        "policy": policy,
        "provider_options": [("", "any provider")]
        + [(str(provider.id), provider.name) for provider in providers],
        "admin_options": [("", "none")]
        + [(str(member.id), member.email) for member in members if member.role == "admin"],
        "roles": ROLES,
        "new_kind": "oidc",
        "values": {},
        "errors": {},
        "rule_values": {},
        "rule_errors": {},
        "policy_errors": {},
        "editing": None,
        "editing_rule": None,
    }
    context.update(extra)
    return render(request, "sso/settings.html", context, status_code=status_code)


@router.get("/settings/sso")
async def settings_page(
    request: Request,
    actor: Admin,
    runtime: RuntimeDep,
    new: str = "oidc",
    edit_rule: UUID | None = None,
    notice: str | None = None,
) -> Response:
    return await _page(
        request,
        runtime,
        actor,
        new_kind="ldap" if new == "ldap" else "oidc",
        editing_rule=edit_rule,
        notice=notice,
    )


def _done(notice: str) -> Response:
    return RedirectResponse(f"/settings/sso?notice={quote(notice)}", status_code=303)


@router.post("/settings/sso/providers")
async def create_provider(request: Request, actor: Admin, runtime: RuntimeDep) -> Response:
    form = await request.form()
    kind = str(form.get("kind") or "oidc")
    secret = str(form.get("secret") or "")
    values = _form_values(form)
    try:
        data = ProviderCreate.model_validate(
            {
                "kind": kind,
                "name": str(form.get("name") or ""),
                "enabled": form.get("enabled") == "on",
                "config": _config_of(form, kind),
                "secret": secret or None,
            }
        )
        created = await flows.create_provider(runtime=runtime, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        errors, message, status_code = form_failure(exc, name_taken="name_taken")
        return await _page(
            request,
            runtime,
            actor,
            status_code=status_code,
            new_kind="ldap" if kind == "ldap" else "oidc",
            values=values,
            errors=_by_field(errors),
            message=message,
        )
    return _done(f"Identity provider {created.name} added.")


@router.get("/settings/sso/providers/{provider_id}")
async def edit_provider_page(
    request: Request, provider_id: UUID, actor: Admin, session: SessionDep, runtime: RuntimeDep
) -> Response:
    provider = await admin.get_provider(session=session, provider_id=provider_id)
    return render(
        request,
        "sso/provider.html",
        {
            "section": "settings",
            "provider": provider,
            "values": _values_of(provider),
            "errors": {},
            "redirect_uri": admin.redirect_uri(runtime.settings),
        },
    )


@router.post("/settings/sso/providers/{provider_id}")
async def edit_provider(
    request: Request, provider_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    values = _form_values(form)
    secret = str(form.get("secret") or "")
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        provider = await admin.get_provider(session=session, provider_id=provider_id)
    try:
        data = ProviderUpdate.model_validate(
            {
                "name": str(form.get("name") or ""),
                "enabled": form.get("enabled") == "on",
                "config": _config_of(form, provider.kind),
                "secret": secret or None,
                "clear_secret": form.get("clear_secret") == "on",
            }
        )
        updated = await flows.update_provider(
            runtime=runtime, actor=actor, provider_id=provider_id, data=data
        )
    except (ValidationError, ShipyardError) as exc:
        errors, message, status_code = form_failure(exc, name_taken="name_taken")
        return render(
            request,
            "sso/provider.html",
            {
                "section": "settings",
                "provider": provider,
                "values": {**values, "kind": provider.kind},
                "errors": _by_field(errors),
                "message": message,
                "redirect_uri": admin.redirect_uri(runtime.settings),
            },
            status_code=status_code,
        )
    return _done(f"Identity provider {updated.name} saved.")


@router.post("/settings/sso/providers/{provider_id}/delete")
async def delete_provider(
    request: Request, provider_id: UUID, actor: Admin, session: SessionDep
) -> Response:
    try:
        async with attempt(session):
            await admin.delete_provider(session=session, actor=actor, provider_id=provider_id)
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    return _done("Identity provider deleted.")


@router.post("/settings/sso/providers/{provider_id}/test")
async def test_provider(
    request: Request, provider_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    try:
        result = await flows.test_provider(runtime=runtime, actor=actor, provider_id=provider_id)
    except NotFound:
        raise
    except ShipyardError as exc:
        return await _row_result(request, runtime, actor, provider_id, failure=exc)
    return await _row_result(request, runtime, actor, provider_id, message=result.message)


async def _row_result(
    request: Request,
    runtime: RuntimeDep,
    actor: Actor,
    provider_id: UUID,
    *,
    message: str = "",
    failure: ShipyardError | None = None,
) -> Response:
    """The settings page with an action's result under the provider's row."""
    return await _page(
        request,
        runtime,
        actor,
        status_code=failure.status_code if failure else 200,
        tested=provider_id,
        test_ok=failure is None,
        test_message=sentence(failure.message if failure else message),
    )


@router.post("/settings/sso/providers/{provider_id}/directory-check")
async def check_directory(
    request: Request, provider_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    """The LDAP directory check, now: the result in the provider's row, as a test's."""
    try:
        result = await directory_flows.check_now(
            runtime=runtime, actor=actor, provider_id=provider_id
        )
    except NotFound:
        raise
    except ShipyardError as exc:
        return await _row_result(request, runtime, actor, provider_id, failure=exc)
    message = (
        f"Directory checked. Members looked up: {result.checked}; disabled: {result.disabled}; "
        f"enabled again: {result.enabled}; role changes: {result.role_changes}."
    )
    return await _row_result(request, runtime, actor, provider_id, message=message)


# --- rules -------------------------------------------------------------------------------------


@router.post("/settings/sso/rules")
async def create_rule(
    request: Request,
    actor: Admin,
    runtime: RuntimeDep,
    group: FormText = "",
    role: FormText = "developer",
    provider_id: FormText = "",
) -> Response:
    values = {"group": group, "role": role, "provider_id": provider_id}
    try:
        data = RuleCreate.model_validate(
            {"group": group, "role": role, "provider_id": provider_id or None}
        )
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            await admin.create_rule(session=session, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        errors, message, status_code = form_failure(exc)
        return await _page(
            request,
            runtime,
            actor,
            status_code=status_code,
            rule_values=values,
            rule_errors=errors,
            message=message,
        )
    return _done(f"Rule {group} → {role} added.")


@router.post("/settings/sso/rules/{rule_id}")
async def edit_rule(
    request: Request,
    rule_id: UUID,
    actor: Admin,
    runtime: RuntimeDep,
    group: FormText = "",
    role: FormText = "developer",
    provider_id: FormText = "",
) -> Response:
    try:
        data = RuleUpdate.model_validate(
            {"group": group, "role": role, "provider_id": provider_id or None}
        )
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            await admin.update_rule(session=session, actor=actor, rule_id=rule_id, data=data)
    except (ValidationError, ShipyardError) as exc:
        if isinstance(exc, NotFound):
            raise
        errors, message, status_code = form_failure(exc)
        return await _page(
            request,
            runtime,
            actor,
            status_code=status_code,
            editing_rule=rule_id,
            rule_edit_errors=errors,
            message=message,
        )
    return _done(f"Rule {group} → {role} saved.")


@router.post("/settings/sso/rules/{rule_id}/delete")
async def delete_rule(rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await admin.delete_rule(session=session, actor=actor, rule_id=rule_id)
    return _done("Rule deleted.")


@router.post("/settings/sso/rules/{rule_id}/up")
async def move_rule_up(rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await admin.move_rule(session=session, actor=actor, rule_id=rule_id, offset=-1)
    return RedirectResponse("/settings/sso#rules", status_code=303)


@router.post("/settings/sso/rules/{rule_id}/down")
async def move_rule_down(rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await admin.move_rule(session=session, actor=actor, rule_id=rule_id, offset=1)
    return RedirectResponse("/settings/sso#rules", status_code=303)


# --- policy ------------------------------------------------------------------------------------


@router.post("/settings/sso/policy")
async def update_policy(
    request: Request,
    actor: Admin,
    runtime: RuntimeDep,
    login_slug: FormText = "",
    default_role: FormText = "",
    break_glass_member_id: FormText = "",
    sso_required: FormText = "",
) -> Response:
    try:
        data = SsoSettingsUpdate.model_validate(
            {
                "login_slug": login_slug.strip() or None,
                "default_role": default_role or None,
                "break_glass_member_id": break_glass_member_id or None,
                "sso_required": sso_required == "on",
            }
        )
        await flows.update_settings(runtime=runtime, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        errors, message, status_code = form_failure(exc)
        for name in ("login_slug",):
            if isinstance(exc, ShipyardError) and exc.details.get("field") == name:
                errors[name] = sentence(exc.message)
        return await _page(
            request,
            runtime,
            actor,
            status_code=status_code,
            policy_errors=errors,
            message=message,
        )
    return _done("Log-in policy saved.")


# --- public log-in pages -----------------------------------------------------------------------


async def _login_page(
    request: Request, runtime: RuntimeDep, next: str, *, slug: str | None, tenant_id: UUID | None
) -> Response:
    try:
        page = await ldap_flows.team_login(runtime=runtime, slug=slug, tenant_id=tenant_id)
    except NotFound:
        return error_page(
            request, 404, "No team has this log-in page. Check the address with your admin."
        )
    return render(
        request,
        "sso/login.html",
        {"page": page, "next": safe_next(next), "values": {}, "errors": {}},
    )


@router.get("/login/t/{slug}")
async def team_login(
    request: Request, slug: str, user: MaybeUser, runtime: RuntimeDep, next: str = "/"
) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await _login_page(request, runtime, next, slug=slug, tenant_id=None)


@router.get("/login/sso/{tenant_id}")
async def team_login_by_id(
    request: Request, tenant_id: UUID, user: MaybeUser, runtime: RuntimeDep, next: str = "/"
) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await _login_page(request, runtime, next, slug=None, tenant_id=tenant_id)


@router.post("/login/sso")
async def discover(
    request: Request, runtime: RuntimeDep, email: FormText = "", next: FormText = "/"
) -> Response:
    """From an e-mail to its team's log-in page (one team with that domain and a provider)."""
    async with runtime.db.session(system=True) as session:
        path = await admin.discover_login(session=session, email=email)
    if path is None:
        mode = await accounts_flows.signup_mode(runtime=runtime)
        return render(
            request,
            "auth/login.html",
            {
                "next": safe_next(next),
                "values": {},
                "signup": mode,
                "sso_values": {"sso_email": email},
                "sso_message": "No single sign-on was found for this e-mail address. Use your "
                "team's own log-in URL (ask an admin of your team for it), or log in with a "
                "password.",
            },
            status_code=404,
        )
    target = safe_next(next)
    return RedirectResponse(
        path + (f"?next={quote(target, safe='')}" if target != "/" else ""), status_code=303
    )
