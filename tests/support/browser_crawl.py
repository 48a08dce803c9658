"""A crawler that follows every same-site link from the navigation and records each status."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Page

SKIP_PREFIXES = ("/static/", "/api/", "/docs", "/redoc", "/openapi.json")


@dataclass
class CrawlResult:
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def server_errors(self) -> dict[str, int]:
        return {url: status for url, status in self.statuses.items() if status >= 500}


def _local_path(base_url: str, href: str, current: str) -> str | None:
    absolute = urljoin(current, href)
    parts = urlsplit(absolute)
    base = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or parts.netloc != base.netloc:
        return None
    if parts.path.startswith(SKIP_PREFIXES):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def crawl(
    page: Page, base_url: str, *, start: str = "/", max_pages: int = 300
) -> CrawlResult:
    """Visit ``start`` and everything linked from it (breadth first, at most ``max_pages``)."""
    result = CrawlResult()
    queue = [start]
    seen = {start}
    while queue and len(result.statuses) < max_pages:
        path = queue.pop(0)
        response = await page.goto(path)
        status = response.status if response is not None else 0
        result.statuses[path] = status
        text = await page.locator("body").inner_text()
        if "Traceback" in text or "Internal Server Error" in text:
            result.errors[path] = text[:500]
        hrefs = await page.eval_on_selector_all(
            "a[href]", "elements => elements.map(e => e.getAttribute('href'))"
        )
        for href in hrefs:
            if not href or href.startswith("#"):
                continue
            target = _local_path(base_url, href, page.url)
            if target is not None and target not in seen:
                seen.add(target)
                queue.append(target)
    return result
