"""Single sign-on pages: ldap. The LDAP form of a tenant's log-in page posts here."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from shipyard.deps import RequestContextDep, RuntimeDep
from shipyard.errors import RateLimited, ShipyardError, Unauthorized
from shipyard.sso import ldap_flows
from shipyard.web.deps import safe_next
from shipyard.web.errors import sentence
from shipyard.web.routes import web_router
from shipyard.web.session import set_session_cookie
from shipyard.web.templating import render

router = web_router()

FormText = Annotated[str, Form()]


@router.post("/login/ldap/{provider_id}")
async def ldap_login(
    request: Request,
    provider_id: UUID,
    runtime: RuntimeDep,
    request_context: RequestContextDep,
    username: FormText = "",
    password: FormText = "",
    next: FormText = "/",
) -> Response:
    """Sign in with the directory's user name and password: a session cookie and on to
    ``next``. Else the reason: the team's log-in page again for a wrong user name or password,
    an unusable directory (401) or too many failures (429); the refusal page when the directory
    vouched for the person but Shipyard will not sign them in (403); 404 for no such provider."""
    target = safe_next(next)
    try:
        opened = await ldap_flows.ldap_login(
            runtime=runtime,
            provider_id=provider_id,
            username=username,
            password=password,
            context=request_context,
        )
    except ShipyardError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if isinstance(exc, Unauthorized | RateLimited):
            page = await ldap_flows.login_page(runtime=runtime, provider_id=provider_id)
            if page is not None:
                return render(
                    request,
                    "sso/login.html",
                    {
                        "page": page,
                        "next": target,
                        "values": {"username": username},
                        "errors": {},
                        "message": sentence(exc.message),
                    },
                    status_code=exc.status_code,
                    headers=headers,
                )
        return render(
            request,
            "sso/refused.html",
            {"reason": sentence(exc.message)},
            status_code=exc.status_code,
            headers=headers,
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, opened.token, opened.expires_at)
    return response
