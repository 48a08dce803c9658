"""Routes: a team's log-in page (GET /auth/teams/{slug}) and LDAP log-in (POST /auth/ldap) for
API clients."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import Field

from shipyard.accounts.schemas import SessionRead, StrictModel
from shipyard.deps import RequestContextDep, RuntimeDep
from shipyard.sso import ldap_flows
from shipyard.sso.schemas import TeamLoginProvider, TeamLoginRead

login_router = APIRouter(tags=["auth"])


class LdapLoginRequest(StrictModel):
    provider_id: UUID
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


@login_router.post("/auth/ldap", response_model=SessionRead)
async def ldap_login(
    data: LdapLoginRequest, runtime: RuntimeDep, context: RequestContextDep
) -> SessionRead:
    """Log in with a user name and password checked by the team's LDAP directory; returns a
    session as ``/auth/login`` does. 401: wrong user name or password (or a directory that
    cannot be used); 403: the directory knows you but Shipyard refuses you (the reason says
    why); 429: too many failures."""
    opened = await ldap_flows.ldap_login(
        runtime=runtime,
        provider_id=data.provider_id,
        username=data.username,
        password=data.password,
        context=context,
    )
    return SessionRead(access_token=opened.token, expires_at=opened.expires_at, user=opened.me)


@login_router.get("/auth/teams/{slug}", response_model=TeamLoginRead)
async def team_login(slug: str, runtime: RuntimeDep) -> TeamLoginRead:
    """The team's log-in page by its slug (set under SSO settings): its name and the providers
    it signs in with, as the web page ``/login/t/{slug}`` shows them. Needs no token: it is what
    a client shows before anyone signs in (``shipyard login --team SLUG --ldap NAME``). 404 when
    no team has the slug."""
    page = await ldap_flows.team_login(runtime=runtime, slug=slug)
    return TeamLoginRead(
        name=page.name,
        sso_required=page.sso_required,
        providers=[
            TeamLoginProvider(id=button.id, kind=button.kind, name=button.name)
            for button in [*page.oidc, *page.ldap]
        ],
    )
