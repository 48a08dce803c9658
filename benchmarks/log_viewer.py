"""The log viewer on a finished 1,000,000-line run, in headless Chromium (issue 17).

Run with ``.venv/bin/python -m benchmarks.log_viewer`` (``--lines 100000`` for a quick look). It
starts an embedded PostgreSQL and a Shipyard server on a loopback port (as the browser tests do),
loads a finished run of N lines on two hosts with binary ``COPY``, numbered as the log writer
numbers them (``line_no``, ``deployments.log_lines``; about 100 bytes a line, one
line in ten coloured, one in fifty on stderr, a string that occurs exactly 3 times), then:

- times the read API itself, before and after ``VACUUM``: ranges of the whole log at offsets 0,
  N/2, 0.9 N and the tail (read by line number, 0016), the same of one host's view (a filtered
  view is counted and offset), and a search over the whole log;
- opens the deployment page in headless Chromium (the binary and flags of
  ``tests/support/browser.py``; the server has rendered it once before, in another browser
  context) and measures the time to the first lines with an empty browser cache and again in a
  second tab (with where that time goes: the HTML, the scripts, the log request), a jump to line
  0.9 N by permalink, a search for the string that occurs 3 times (until "1 of 3" shows and the
  hit is on screen), the DOM size, and the page's JS heap (CDP ``Runtime.getHeapUsage``) after
  load and after 20 jumps all over the log (the page cache is bounded: it must not grow).

The table is printed; ``--write`` puts it into ``docs/benchmarks.md`` under "## Log viewer".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from benchmarks.fanout import DOC, machine_note

SECTION = "## Log viewer"
NEEDLE = "needle-7f3a"
COPY_LOGS = (
    "COPY deployment_logs (id, deployment_id, tenant_id, level, message, timestamp, host_id, "
    "deployment_script_id, stream, line_no) FROM STDIN (FORMAT BINARY)"
)
COPY_TYPES = [
    "uuid",
    "uuid",
    "uuid",
    "text",
    "text",
    "timestamptz",
    "uuid",
    "uuid",
    "text",
    "int8",
]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def needle_lines(total: int) -> list[int]:
    return [max(1, total // 8), total // 2 + 7, total - total // 20]


def message(number: int) -> str:
    if number % 10 == 0:
        return (
            f"\x1b[32mok\x1b[0m step {number:07d} \x1b[1;38;5;208mcompiled\x1b[0m module "
            f"{number % 977:03d} in {number % 91} ms " + "." * 40
        )
    return f"step {number:07d} building component {number % 977:03d} of the release " + "x" * 44


async def seed(url: str, settings: Any, admin: Any, lines: int) -> UUID:
    """A finished run on two hosts (the second one failed) with ``lines`` lines, by COPY."""
    import psycopg
    from tests.integration.deployments.test_log_reads import seed_log

    from shipyard.crypto import load_keyring
    from shipyard.db import Database, to_libpq_url
    from shipyard.deployments.logs import Uuid7Sequence

    db = Database(url, keyring=load_keyring(settings), pool_size=2)
    try:
        run = await seed_log(db, admin, [], status="failed", name="A million lines")
    finally:
        await db.dispose()
    needles = set(needle_lines(lines))
    ids = Uuid7Sequence()
    start = datetime.now(UTC) - timedelta(hours=1)
    tenant = UUID(admin.tenant_id)
    with psycopg.connect(to_libpq_url(url)) as conn:
        with conn.cursor() as cursor, cursor.copy(COPY_LOGS) as copy:
            copy.set_types(COPY_TYPES)
            for number in range(1, lines + 1):
                host = 0 if number <= lines // 2 else 1
                when = start + timedelta(microseconds=number * 3000)
                text = message(number)
                if number in needles:
                    text = f"step {number:07d} found {NEEDLE} here"
                level = "ERROR" if number == lines - 3 else "INFO"
                stream = "stderr" if number % 50 == 0 else "stdout"
                copy.write_row(
                    (
                        ids.next(when),
                        run.deployment_id,
                        tenant,
                        level,
                        text,
                        when,
                        run.hosts[host],
                        run.scripts[host],
                        stream,
                        number,
                    )
                )
        conn.execute(
            "UPDATE deployments SET log_lines = %s WHERE id = %s", (lines, run.deployment_id)
        )
        conn.commit()
        conn.execute("ANALYZE deployment_logs")
    return run.deployment_id


async def api_timings(
    base_url: str, headers: dict[str, str], deployment_id: UUID, lines: int, host: str
) -> dict[str, float]:
    import httpx

    async def timed(path: str, params: dict[str, Any]) -> float:
        samples = []
        for _ in range(3):
            began = time.perf_counter()
            response = await http.get(path, params=params)
            samples.append(time.perf_counter() - began)
            assert response.status_code == 200, response.text
        return statistics.median(samples) * 1000

    base = f"/api/v1/deployments/{deployment_id}/logs"
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as http:
        return {
            "offset 0": await timed(base, {"offset": 0, "limit": 500}),
            "offset N/2": await timed(base, {"offset": lines // 2, "limit": 500}),
            "offset 0.9 N": await timed(base, {"offset": lines * 9 // 10, "limit": 500}),
            "offset N-500": await timed(base, {"offset": lines - 500, "limit": 500}),
            "tail=true (the page's first request)": await timed(
                base, {"tail": "true", "limit": 500}
            ),
            "search": await timed(f"{base}/search", {"q": NEEDLE}),
            "one host's view (counted), offset 0": await timed(
                base, {"offset": 0, "limit": 500, "host_id": host}
            ),
            "one host's view (counted), offset 0.9 of it": await timed(
                base, {"offset": lines // 2 * 9 // 10, "limit": 500, "host_id": host}
            ),
            "one host's view (counted), tail": await timed(
                base, {"tail": "true", "limit": 500, "host_id": host}
            ),
        }


async def first_host(url: str, deployment_id: UUID) -> str:
    """The run's first host (its lines are the first half of the log)."""
    import psycopg

    from shipyard.db import to_libpq_url

    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT host_ids[1] FROM deployments WHERE id = %s", (deployment_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def vacuum(url: str) -> None:
    """VACUUM (the visibility map, for index-only scans) and ANALYZE."""
    import psycopg

    from shipyard.db import to_libpq_url

    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) deployment_logs")


# Where the time to the first lines goes (ms since navigation start): the HTML, the deferred
# scripts (DOMContentLoaded), the log request (the tail, 500 lines) sent and answered.
PHASES = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const logs = performance.getEntriesByType("resource").filter(e => e.name.includes("/logs?"));
  const tail = logs[0];
  return {
    log_requests: logs.length,
    html_requested: nav ? nav.requestStart : null,
    html: nav ? nav.responseEnd : null,
    dom_ready: nav ? nav.domContentLoadedEventEnd : null,
    log_request_sent: tail ? tail.startTime : null,
    log_answered: tail ? tail.responseEnd : null,
  };
}"""


async def browser_timings(
    base_url: str, admin: Any, deployment_id: UUID, lines: int
) -> dict[str, Any]:
    from playwright.async_api import async_playwright
    from tests.support.browser import launch_chromium, use_session

    target = lines * 9 // 10
    page_url = f"{base_url}/deployments/{deployment_id}"
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        # The server renders the page once first (Jinja compiles its templates on first use, a
        # one-off second or more under load); the measured browser context starts empty.
        warm_up = await browser.new_context(viewport={"width": 1280, "height": 860})
        await use_session(warm_up, base_url, admin)
        first = await warm_up.new_page()
        await first.goto(page_url)
        await first.wait_for_selector("#log .line", timeout=60_000)
        await warm_up.close()
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        await use_session(context, base_url, admin)
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Runtime.enable")

        await page.goto(page_url, wait_until="commit")
        await page.wait_for_selector("#log .line", timeout=60_000)
        first_lines_ms = await page.evaluate("performance.now()")
        cold = await page.evaluate(PHASES)

        # The same page again in a new tab of the same browser (static files cached): what a
        # user who has opened Shipyard before waits for.
        again = await context.new_page()
        await again.goto(page_url, wait_until="commit")
        await again.wait_for_selector("#log .line", timeout=60_000)
        warm_first_lines_ms = await again.evaluate("performance.now()")
        warm = await again.evaluate(PHASES)
        await again.close()

        async def heap_mib() -> float:
            await cdp.send("HeapProfiler.enable")
            await cdp.send("HeapProfiler.collectGarbage")
            usage = await cdp.send("Runtime.getHeapUsage")
            return float(usage["usedSize"]) / 2**20

        heap_loaded = await heap_mib()

        began = time.perf_counter()
        await page.evaluate(f"location.hash = '#L{target}'")
        await page.wait_for_selector(f"#log .line.target[data-line='{target}']", timeout=60_000)
        jump_ms = (time.perf_counter() - began) * 1000

        # A permalink opened in a fresh tab: the page loads, then scrolls to the line.
        fresh = await context.new_page()
        await fresh.goto(f"{page_url}#L{target}", wait_until="commit")
        await fresh.wait_for_selector(f"#log .line.target[data-line='{target}']", timeout=60_000)
        permalink_load_ms = await fresh.evaluate("performance.now()")
        await fresh.close()

        began = time.perf_counter()
        await page.fill("#log-q", NEEDLE)
        await page.click("#log-search button[type=submit]")
        await page.wait_for_function(
            "() => document.getElementById('log-hits').textContent === '1 of 3'", timeout=120_000
        )
        first_hit = needle_lines(lines)[0]
        await page.wait_for_selector(f"#log .line.hit-current[data-line='{first_hit}']")
        search_ms = (time.perf_counter() - began) * 1000

        rng = random.Random(17)  # noqa: S311 - reproducible positions, not a secret
        for _ in range(20):
            line = rng.randint(1, lines)
            await page.evaluate(f"location.hash = '#L{line}'")
            await page.wait_for_selector(f"#log .line.target[data-line='{line}']", timeout=60_000)
        heap_after = await heap_mib()
        dom_nodes = await page.evaluate("document.getElementsByTagName('*').length")
        rows = await page.evaluate("document.querySelectorAll('#log .line').length")
        await browser.close()
    return {
        "first_lines_ms": first_lines_ms,
        "warm_first_lines_ms": warm_first_lines_ms,
        "cold_phases": cold,
        "warm_phases": warm,
        "jump_ms": jump_ms,
        "permalink_load_ms": permalink_load_ms,
        "search_ms": search_ms,
        "heap_loaded_mib": heap_loaded,
        "heap_after_mib": heap_after,
        "dom_nodes": dom_nodes,
        "rows": rows,
    }


def render(
    lines: int,
    seed_seconds: float,
    cold: dict[str, float],
    warm: dict[str, float],
    browser: dict[str, Any],
    loads: tuple[str, str],
) -> str:
    def ok(value: float, limit: float) -> str:
        return "met" if value < limit else "missed"

    def phase(name: str) -> str:
        values = [browser["cold_phases"].get(name), browser["warm_phases"].get(name)]
        return " / ".join("?" if value is None else f"{value:.0f}" for value in values)

    api_rows = "\n".join(f"| {name} | {cold[name]:.0f} | {warm[name]:.0f} |" for name in cold)
    return f"""{SECTION}

### A finished {lines:,}-line run in headless Chromium (issue 17)

Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_note()}. Load average (1, 5, 15 min)
before the run: {loads[0]}; after: {loads[1]}. The {lines:,} lines (two hosts, about 100 bytes
each, one in ten with ANSI colours, numbered as the writer numbers them) were loaded with
binary `COPY` in {seed_seconds:.1f} s.

| Browser (Chromium, 1280x860) | value | target |
|---|---:|---|
| time to first lines (navigation start to the first rows in the DOM), empty browser cache | {browser["first_lines_ms"]:.0f} ms | under 1 s: {ok(browser["first_lines_ms"], 1000)} |
| the same in a second tab (static files cached) | {browser["warm_first_lines_ms"]:.0f} ms | under 1 s: {ok(browser["warm_first_lines_ms"], 1000)} |
| where it goes, empty cache / cached, ms from navigation start: HTML requested | {phase("html_requested")} | |
| ... HTML received | {phase("html")} | |
| ... scripts run (DOMContentLoaded) | {phase("dom_ready")} | |
| ... log request sent (`tail=true`, 500 lines) | {phase("log_request_sent")} | |
| ... log request answered | {phase("log_answered")} | |
| ... log requests made while loading (the preload is reused: 1) | {phase("log_requests")} | |
| jump to line {lines * 9 // 10:,} by permalink (`#L…`, page open) | {browser["jump_ms"]:.0f} ms | |
| open a permalink to line {lines * 9 // 10:,} in a new tab (to the line highlighted) | {browser["permalink_load_ms"]:.0f} ms | |
| search for a string that occurs 3 times ("1 of 3" shown, first hit on screen) | {browser["search_ms"]:.0f} ms | |
| JS heap after load (CDP `Runtime.getHeapUsage`, after a GC) | {browser["heap_loaded_mib"]:.1f} MiB | |
| JS heap after 20 jumps all over the log | {browser["heap_after_mib"]:.1f} MiB | bounded: the page cache holds 40 pages of 500 lines |
| DOM elements on the page / log rows in the DOM | {browser["dom_nodes"]} / {browser["rows"]} | only rows on screen plus a margin |

| Read API, 500 lines, median of 3 (ms) | just loaded | after `VACUUM` |
|---|---:|---:|
{api_rows}

Command: `.venv/bin/python -m benchmarks.log_viewer` (`--lines 100000` for a quick look,
`--write` to replace this section).
"""


def write_section(body: str) -> None:
    """Replace "## Log viewer" up to the next top-level section (or the end), or append it."""
    text = DOC.read_text()
    if SECTION + "\n" in text:
        start = text.index(SECTION + "\n")
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + (text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOC.write_text(text)


async def main_async(options: argparse.Namespace) -> None:
    from cryptography.fernet import Fernet

    root = Path(tempfile.mkdtemp(prefix="sy-logview-", dir="/tmp"))
    env = {
        "SHIPYARD_ENVIRONMENT": "test",
        "SHIPYARD_DATA_DIR": str(root / "data"),
        "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
        "SHIPYARD_LOG_LEVEL": "WARNING",
        "SHIPYARD_PASSWORD_HASH_MEMORY_KIB": "8192",
        "SHIPYARD_SIGNUP": "open",
    }
    (root / "data").mkdir(parents=True)
    os.environ.update(env)
    from tests.support.browser import LiveServer, api_signup
    from tests.support.postgres import PostgresForTests

    from shipyard.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    postgres = PostgresForTests(root)
    url = postgres.create_database()
    server = LiveServer(settings, url).start()
    try:
        load_before = load()
        admin = await api_signup(server.url, tenant_name="Viewer bench")
        began = time.perf_counter()
        deployment_id = await seed(url, settings, admin, options.lines)
        seed_seconds = time.perf_counter() - began
        host = await first_host(url, deployment_id)
        cold = await api_timings(server.url, admin.headers, deployment_id, options.lines, host)
        vacuum(url)
        warm = await api_timings(server.url, admin.headers, deployment_id, options.lines, host)
        browser = await browser_timings(server.url, admin, deployment_id, options.lines)
        body = render(options.lines, seed_seconds, cold, warm, browser, (load_before, load()))
    finally:
        server.stop()
        postgres.stop()
    print(body)
    if options.write:
        write_section(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
