"""Sign-up, log-in, log-out and invitation pages: each form calls its accounts action and renders."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts import flows, service
from shipyard.accounts.schemas import AcceptInvitationRequest, LoginRequest, SignupRequest
from shipyard.deps import ActorDep, RequestContextDep, RuntimeDep, SessionDep
from shipyard.errors import PermissionDenied, RateLimited, ShipyardError, Unauthorized
from shipyard.web.deps import MaybeUser, safe_next
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.session import clear_session_cookie, set_session_cookie
from shipyard.web.templating import render

router = web_router()

FormText = Annotated[str, Form()]
# A refused sign-up page shows why instead of the form.
MODE_OF_REFUSAL = {"signup_invite_only": "invite", "signup_closed": "closed"}


@router.get("/login")
async def login_page(
    request: Request, user: MaybeUser, runtime: RuntimeDep, next: str = "/"
) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    if await flows.opens_on_signup(runtime=runtime):
        # A fresh install: nobody can log in yet, so the first visitor creates the first account.
        return RedirectResponse("/signup", status_code=303)
    mode = await flows.signup_mode(runtime=runtime)
    return render(
        request, "auth/login.html", {"next": safe_next(next), "values": {}, "signup": mode}
    )


@router.post("/login")
async def login(
    request: Request,
    runtime: RuntimeDep,
    request_context: RequestContextDep,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "/",
) -> Response:
    values = {"email": email}
    context = {"next": safe_next(next), "values": values}
    try:
        data = LoginRequest(email=email.strip(), password=password)
    except ValidationError as exc:
        errors = field_errors(exc)
        return render(request, "auth/login.html", {**context, "errors": errors}, status_code=422)
    try:
        opened = await flows.login(
            runtime=runtime, email=data.email, password=data.password, context=request_context
        )
    except RateLimited as exc:
        return render(
            request,
            "auth/login.html",
            {**context, "message": sentence(exc.message)},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except (Unauthorized, PermissionDenied) as exc:
        # 403 sso_required: the team signs in through its identity provider (the message
        # names its log-in page).
        return render(
            request,
            "auth/login.html",
            {**context, "message": sentence(exc.message)},
            status_code=exc.status_code,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, opened.token, opened.expires_at)
    return response


@router.get("/signup")
async def signup_page(request: Request, user: MaybeUser, runtime: RuntimeDep) -> Response:
    if user is not None:
        return RedirectResponse("/", status_code=303)
    mode = await flows.signup_mode(runtime=runtime)
    return render(request, "auth/signup.html", {"values": {}, "signup": mode})


@router.post("/signup")
async def signup(
    request: Request,
    runtime: RuntimeDep,
    request_context: RequestContextDep,
    email: FormText = "",
    password: FormText = "",
    full_name: FormText = "",
    tenant_name: FormText = "",
) -> Response:
    values = {"email": email, "full_name": full_name, "tenant_name": tenant_name}
    try:
        data = SignupRequest(
            email=email.strip(),
            password=password,
            full_name=full_name.strip() or None,
            tenant_name=tenant_name.strip(),
        )
    except ValidationError as exc:
        return render(
            request,
            "auth/signup.html",
            # The form again, with its errors: whether sign-up is open is checked on submit.
            {"values": values, "errors": field_errors(exc), "signup": "open"},
            status_code=422,
        )
    try:
        opened = await flows.signup(runtime=runtime, data=data, context=request_context)
    except ShipyardError as exc:
        return render(
            request,
            "auth/signup.html",
            {
                "values": values,
                "message": sentence(exc.message),
                "signup": MODE_OF_REFUSAL.get(exc.code, "open"),
            },
            status_code=exc.status_code,
            headers=_retry_after(exc),
        )
    # An e-mail that already had an account got a token that opens nothing: the next page
    # asks for a log-in, which is the right thing for its owner to do.
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, opened.token, opened.expires_at)
    return response


def _retry_after(exc: ShipyardError) -> dict[str, str] | None:
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None


@router.get("/invite/{token}")
async def invitation_page(request: Request, token: str, runtime: RuntimeDep) -> Response:
    try:
        invitation = await flows.preview_invitation(runtime=runtime, token=token)
    except ShipyardError as exc:
        return render(
            request,
            "auth/invitation.html",
            {"token": token, "problem": sentence(exc.message), "values": {}},
            status_code=exc.status_code,
        )
    return render(
        request,
        "auth/invitation.html",
        {"token": token, "invitation": invitation, "values": {}},
    )


@router.post("/invite/{token}")
async def accept_invitation(
    request: Request,
    token: str,
    runtime: RuntimeDep,
    request_context: RequestContextDep,
    full_name: FormText = "",
    password: FormText = "",
) -> Response:
    values = {"full_name": full_name}
    try:
        data = AcceptInvitationRequest(
            token=token, password=password, full_name=full_name.strip() or None
        )
    except ValidationError as exc:
        invitation = None
        try:
            invitation = await flows.preview_invitation(runtime=runtime, token=token)
        except ShipyardError as problem:
            return render(
                request,
                "auth/invitation.html",
                {"token": token, "problem": sentence(problem.message), "values": values},
                status_code=problem.status_code,
            )
        return render(
            request,
            "auth/invitation.html",
            {
                "token": token,
                "invitation": invitation,
                "values": values,
                "errors": field_errors(exc),
            },
            status_code=422,
        )
    try:
        opened = await flows.accept_invitation(runtime=runtime, data=data, context=request_context)
    except ShipyardError as exc:
        return render(
            request,
            "auth/invitation.html",
            {"token": token, "problem": sentence(exc.message), "values": values},
            status_code=exc.status_code,
        )
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, opened.token, opened.expires_at)
    return response


@router.post("/logout")
async def logout(request: Request, actor: ActorDep, session: SessionDep) -> Response:
    await service.logout(session=session, actor=actor)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response
