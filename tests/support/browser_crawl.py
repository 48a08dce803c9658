"""A crawler that follows every same-site link from the navigation and records each status."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from playwright.async_api import APIRequestContext

SKIP_PREFIXES = ("/static/", "/api/", "/docs", "/redoc", "/openapi.json")
HREF = re.compile(r'<a\b[^>]*\bhref="([^"]*)"', re.IGNORECASE)


@dataclass
class CrawlResult:
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def server_errors(self) -> dict[str, int]:
        return {url: status for url, status in self.statuses.items() if status >= 500}


def _local_path(base_url: str, href: str, current: str) -> str | None:
    absolute = urljoin(current, html.unescape(href))
    parts = urlsplit(absolute)
    base = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or parts.netloc != base.netloc:
        return None
    if parts.path.startswith(SKIP_PREFIXES):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def crawl(
    request: APIRequestContext, base_url: str, *, start: str = "/", max_pages: int = 400
) -> CrawlResult:
    """GET ``start`` and everything linked from it (breadth first, at most ``max_pages``).

    Uses the browser context's request client, so it carries the session cookie; downloads
    (log files) are fetched like pages, and only HTML is searched for further links.
    """
    result = CrawlResult()
    queue = [start]
    seen = {start}
    while queue and len(result.statuses) < max_pages:
        path = queue.pop(0)
        response = await request.get(base_url + path, max_redirects=0)
        result.statuses[path] = response.status
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        body = await response.text()
        if "Traceback" in body or "Internal Server Error" in body:
            result.errors[path] = body[:500]
        for href in HREF.findall(body):
            if not href or href.startswith("#"):
                continue
            target = _local_path(base_url, href, base_url + path)
            if target is not None and target not in seen:
                seen.add(target)
                queue.append(target)
    return result
