"""Driving the web UI over plain HTTP (no browser): cookies, CSRF tokens and forms."""

from __future__ import annotations

import re

import httpx

from shipyard.web.csrf import CSRF_COOKIE
from shipyard.web.session import SESSION_COOKIE
from tests.support.api import Account

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser_client(client: httpx.AsyncClient, account: Account | None) -> httpx.AsyncClient:
    """A client sharing ``client``'s app but with its own cookie jar, logged in as ``account``."""
    http = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    if account is not None:
        http.cookies.set(SESSION_COOKIE, account.token)
    return http


async def csrf_token(http: httpx.AsyncClient, page: str = "/settings") -> str:
    """Load ``page`` like a browser would and return the CSRF token it carries."""
    response = await http.get(page)
    assert response.status_code == 200, response.text
    match = CSRF_INPUT.search(response.text)
    assert match, "the page carries no CSRF token"
    assert http.cookies.get(CSRF_COOKIE) == match.group(1)
    return match.group(1)
