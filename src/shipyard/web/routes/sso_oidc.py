"""Signing in with OpenID Connect: leave for the identity provider, come back signed in.

GET only (the identity provider redirects the browser back with a GET), so the CSRF check does
not apply; what stands in for it is the ``state`` (single use) bound to this browser by the
``shipyard_oidc`` cookie.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from shipyard.deps import RequestContextDep, RuntimeDep
from shipyard.sso.identity import SsoFailed, SsoRefused
from shipyard.sso.oidc_flows import CALLBACK_PATH, oidc_callback, oidc_start
from shipyard.web.deps import safe_next
from shipyard.web.errors import sentence
from shipyard.web.routes import web_router
from shipyard.web.session import cookie_is_secure, set_session_cookie
from shipyard.web.templating import render

router = web_router()

# Binds a sign-in under way to the browser that started it (its hash is kept with the state).
BROWSER_COOKIE = "shipyard_oidc"
BROWSER_COOKIE_PATH = "/login/oidc"
BROWSER_COOKIE_MAX_AGE = 600


def _refused(request: Request, exc: SsoFailed | SsoRefused) -> Response:
    response = render(
        request,
        "sso/refused.html",
        {"reason": sentence(exc.message)},
        status_code=exc.status_code,
    )
    _forget_browser(response, request)
    return response


def _forget_browser(response: Response, request: Request) -> None:
    response.delete_cookie(
        BROWSER_COOKIE,
        path=BROWSER_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request.url.scheme, request.app.state.runtime.settings),
    )


# Before /login/oidc/{provider_id}: "callback" is not a provider id.
@router.get(CALLBACK_PATH)
async def oidc_return(
    request: Request,
    runtime: RuntimeDep,
    request_context: RequestContextDep,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    iss: str | None = None,
) -> Response:
    try:
        signed_in = await oidc_callback(
            runtime=runtime,
            state=state,
            code=code,
            error=error,
            browser_cookie=request.cookies.get(BROWSER_COOKIE),
            context=request_context,
            issuer=iss,
        )
    except (SsoFailed, SsoRefused) as exc:
        return _refused(request, exc)
    response = RedirectResponse(safe_next(signed_in.next_path), status_code=303)
    set_session_cookie(response, request, signed_in.opened.token, signed_in.opened.expires_at)
    _forget_browser(response, request)
    return response


@router.get("/login/oidc/{provider_id}")
async def oidc_begin(
    request: Request, runtime: RuntimeDep, provider_id: UUID, next: str = "/"
) -> Response:
    try:
        url, browser_secret = await oidc_start(
            runtime=runtime, provider_id=provider_id, next_path=safe_next(next)
        )
    except SsoFailed as exc:
        return _refused(request, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        BROWSER_COOKIE,
        browser_secret,
        max_age=BROWSER_COOKIE_MAX_AGE,
        path=BROWSER_COOKIE_PATH,
        httponly=True,
        # Lax: the cookie comes back on the identity provider's top-level redirect to us.
        samesite="lax",
        secure=cookie_is_secure(request.url.scheme, runtime.settings),
    )
    return response
