"""A fake Microsoft Graph, as far as Entra ID's group overage needs it: the signed-in person's
groups from ``GET /v1.0/me/transitiveMemberOf/microsoft.graph.group`` (public docs: "List a
user's transitive memberships"; paging by ``@odata.nextLink`` with ``$skiptoken``; ``$top`` up
to 999, and a page may hold fewer; errors as ``{"error": {"code", "message"}}``).

The bearer token is checked at the test identity provider's userinfo endpoint, so only the
access token the provider issued for that person is accepted, and the groups are looked up by
its ``sub``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.common_http import ThreadedApp

GROUPS_PATH = "/v1.0/me/transitiveMemberOf/microsoft.graph.group"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass
class FakeGraph:
    """The groups by person (``sub``) and what the fake was asked."""

    userinfo_url: str
    groups: dict[str, list[str]] = field(default_factory=dict)
    # Graph may answer fewer than $top a page: this many, so paging is exercised.
    page_size: int = 100
    # Answer 403 Authorization_RequestDenied (the app lacks GroupMember.Read.All).
    refuse: bool = False
    # Point the next page's link at another host (a link the client must not follow).
    next_link_base: str | None = None
    requests: list[str] = field(default_factory=list)
    server: ThreadedApp | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def _groups(self, request: Request) -> JSONResponse:
        self.requests.append(str(request.url))
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:]:
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        async with httpx.AsyncClient(timeout=10) as http:
            who = await http.get(self.userinfo_url, headers={"Authorization": header})
        if who.status_code != 200:
            return _error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if self.refuse:
            return _error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        if request.query_params.get("$select") not in (None, "id"):
            return _error(400, "Request_BadRequest", "This fake selects id only.")
        top = min(int(request.query_params.get("$top", "100")), 999)
        start = int(request.query_params.get("$skiptoken", "0"))
        mine = self.groups.get(str(who.json()["sub"]), [])
        end = start + min(top, self.page_size)
        body: dict[str, object] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#groups(id)",
            "value": [
                {"@odata.type": "#microsoft.graph.group", "id": group} for group in mine[start:end]
            ],
        }
        if end < len(mine):
            base = self.next_link_base or self.url
            query = urlencode({"$select": "id", "$top": top, "$skiptoken": end})
            body["@odata.nextLink"] = f"{base}{GROUPS_PATH}?{query}"
        return JSONResponse(body)

    def start(self) -> FakeGraph:
        app = Starlette(routes=[Route(GROUPS_PATH, self._groups)])
        self.server = ThreadedApp(app).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
