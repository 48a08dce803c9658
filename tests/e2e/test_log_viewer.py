"""The log viewer in Chromium: colours, hostile text, CR collapse, search, permalinks, follow-tail,
and the grid's filter contract (issue 17)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, Dialog, Page, expect

from shipyard.crypto import load_keyring
from shipyard.db import Database
from tests.integration.deployments.test_log_reads import Line, prune_for_tests, seed_log
from tests.support.browser import LiveServer, api_signup, use_session
from tests.support.browser_seed import append_log, finish


@pytest.fixture
async def server_db(live_server: LiveServer) -> AsyncIterator[Database]:
    database = Database(
        live_server.database_url, keyring=load_keyring(live_server.settings), pool_size=2
    )
    yield database
    await database.dispose()


STAMP = re.compile(r"^\d\d:\d\d:\d\d$")


def _row(line: int) -> str:
    return f"#log .line[data-line='{line}']"


# Whether line n is inside the log's scroll box (the box itself may be below the page's fold).
IN_LOG_VIEW = """n => {
  const log = document.getElementById("log");
  const row = log.querySelector(`.line[data-line='${n}']`);
  if (!row) { return false; }
  const a = row.getBoundingClientRect(), b = log.getBoundingClientRect();
  return a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
}"""


async def _shown(page: Page, line: int) -> None:
    """Wait until line ``line`` is on screen in the log."""
    await page.wait_for_function(IN_LOG_VIEW, arg=line)


async def _is_shown(page: Page, line: int) -> bool:
    shown: bool = await page.evaluate(IN_LOG_VIEW, line)
    return shown


async def test_colours_hostile_text_and_progress_bars(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Colours")
    lines = [
        Line("[web-1] running deploy.sh", stream=None),
        Line(
            "\x1b[31mred\x1b[0m plain \x1b[1;38;5;208mbold orange\x1b[0m "
            "\x1b[38;2;10;20;30mtruecolour\x1b[0m \x1b[2Kcleared\x1b]0;title\x07"
        ),
        Line("<script>alert('script')</script>"),
        Line("<img src=x onerror=alert('img')>"),
        Line("\x1b[32m<b onmouseover=alert(1)>bold?</b>\x1b[0m"),
        Line("progress  10%\rprogress  50%\rprogress 100%"),
        Line("npm WARN deprecated", stream="stderr"),
        Line("[web-1] deploy.sh exited with 3", level="ERROR", stream=None),
    ]
    run = await seed_log(server_db, admin, lines, status="success")
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    await expect(page.locator("#log .line")).to_have_count(8)
    await expect(page.locator("#log-state")).to_have_text("Finished: success.")

    # The host name once per line: Shipyard's "[web-1] " prefix is not repeated.
    await expect(page.locator(_row(1))).to_contain_text("web-1: running deploy.sh")
    await expect(page.locator(_row(1))).not_to_contain_text("[web-1]")

    colours = page.locator(_row(2))
    red = colours.locator("span.ansi-fg-1")
    await expect(red).to_have_text("red")
    assert await red.evaluate("e => getComputedStyle(e).color") == "rgb(198, 40, 40)"
    orange = colours.locator("span.ansi-bold")
    await expect(orange).to_have_text("bold orange")
    assert await orange.evaluate("e => getComputedStyle(e).color") == "rgb(255, 135, 0)"
    assert await orange.evaluate("e => getComputedStyle(e).fontWeight") == "700"
    true_colour = colours.get_by_text("truecolour")
    assert await true_colour.evaluate("e => getComputedStyle(e).color") == "rgb(10, 20, 30)"
    # Other escapes are stripped, not shown.
    await expect(colours.locator(".msg")).to_have_text("red plain bold orange truecolour cleared")

    # Hostile text is text: no element, no script ran, even inside a coloured span.
    await expect(page.locator(_row(3))).to_contain_text("<script>alert('script')</script>")
    await expect(page.locator(_row(4))).to_contain_text("<img src=x onerror=alert('img')>")
    await expect(page.locator(_row(5)).locator("span.ansi-fg-2")).to_have_text(
        "<b onmouseover=alert(1)>bold?</b>"
    )
    assert await page.locator("#log script, #log img, #log b").count() == 0

    # A carriage-return progress bar shows its last state only.
    await expect(page.locator(_row(6)).locator(".msg")).to_have_text("progress 100%")

    # stderr is coloured by its stream (a subdued amber), not as an error; Shipyard's own
    # ERROR event keeps its level's red.
    stderr = page.locator(_row(7))
    await expect(stderr).to_have_class(re.compile(r"\bstream-stderr\b"))
    await expect(stderr).not_to_have_class(re.compile(r"\blvl-"))
    await expect(stderr.locator(".lvl")).to_have_count(0)
    stderr_colour = await stderr.locator(".msg").evaluate("e => getComputedStyle(e).color")
    plain_colour = (
        await page.locator(_row(3)).locator(".msg").evaluate("e => getComputedStyle(e).color")
    )
    assert stderr_colour not in ("rgb(198, 40, 40)", plain_colour), stderr_colour
    event = page.locator(_row(8))
    await expect(event.locator(".lvl")).to_have_text("ERROR")
    assert await event.locator(".msg").evaluate("e => getComputedStyle(e).color") == (
        "rgb(198, 40, 40)"
    )

    # Timestamps toggle.
    stamp = page.locator(_row(1)).locator(".ts")
    await expect(stamp).to_have_text(STAMP)
    await page.locator("#log-times").click()
    await expect(stamp).to_be_hidden()
    await page.locator("#log-times").click()
    await expect(stamp).to_be_visible()
    assert dialogs == []


async def test_search_next_previous_and_permalinks_on_a_long_log(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Search")
    needles = {120: 0, 1700: 1, 2950: 0}
    lines = [
        Line(
            f"step {n} needle found" if n in needles else f"step {n} nothing here",
            host=needles.get(n, n % 2),
        )
        for n in range(1, 3001)
    ]
    run = await seed_log(server_db, admin, lines, status="failed")
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    await expect(page.locator("#log-state")).to_have_text("Finished: failed.")
    # Only what is on screen (and a margin) is in the page.
    await expect(page.locator("#log .line").last).to_contain_text("step 3000")
    assert await page.locator("#log .line").count() < 200

    await page.get_by_label("Search", exact=True).fill("NEEDLE")
    await page.get_by_role("button", name="Find").click()
    hits = page.locator("#log-hits")
    await expect(hits).to_have_text("1 of 3")
    current = page.locator("#log .line.hit-current")
    await expect(current).to_have_attribute("data-line", "120")
    await expect(current.locator("mark")).to_have_text("needle")
    await _shown(page, 120)
    await page.get_by_role("button", name="Next").click()
    await expect(hits).to_have_text("2 of 3")
    await expect(current).to_have_attribute("data-line", "1700")
    await _shown(page, 1700)
    await page.get_by_role("button", name="Next").click()
    await expect(current).to_have_attribute("data-line", "2950")
    await page.get_by_role("button", name="Next").click()
    await expect(hits).to_have_text("1 of 3")
    await page.get_by_role("button", name="Previous").click()
    await expect(hits).to_have_text("3 of 3")
    await expect(current).to_have_attribute("data-line", "2950")

    # Regular expressions: a bad one is refused by the server with its reason.
    await page.get_by_label("Regular expression").check()
    await page.get_by_label("Search", exact=True).fill("step (17|29)00 ")
    await page.get_by_role("button", name="Find").click()
    await expect(hits).to_have_text("1 of 2")
    await page.get_by_label("Search", exact=True).fill("step (")
    await page.get_by_role("button", name="Find").click()
    await expect(hits).to_contain_text("regular expression")

    # A permalink scrolls to its line and highlights it, on load and on a click.
    await page.goto(f"/deployments/{run.deployment_id}#L2500")
    target = page.locator("#log .line.target")
    await expect(target).to_have_attribute("data-line", "2500")
    await _shown(page, 2500)
    await expect(page.locator("#log-follow")).to_have_attribute("aria-pressed", "false")
    await page.locator(_row(2503)).locator("a.ln").click()
    assert page.url.endswith("#L2503")
    await expect(target).to_have_attribute("data-line", "2503")

    # Landmarks: the failed script's first line (web-2's first line is line 1).
    await page.get_by_role("button", name="First failed script").click()
    await expect(target).to_have_attribute("data-line", "1")
    await _shown(page, 1)


async def test_a_pruned_run_keeps_its_line_numbers_and_permalinks(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Pruned")
    lines = [Line(f"step {n}", host=n % 2) for n in range(1, 1201)]
    run = await seed_log(server_db, admin, lines, status="success")
    # Retention keeps the last 1,000 lines: they keep their numbers 201-1200.
    await prune_for_tests(server_db, admin, lines=1000, days=None)
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}#L640", wait_until="domcontentloaded")
    target = page.locator("#log .line.target")
    await expect(target).to_have_attribute("data-line", "640")
    await expect(target.locator(".msg")).to_have_text("step 640")
    await _shown(page, 640)
    await expect(target.locator("a.ln")).to_have_attribute("href", "#L640")
    # A pruned line's permalink shows the first line kept.
    await page.goto(f"/deployments/{run.deployment_id}#L12", wait_until="domcontentloaded")
    await _shown(page, 201)
    await expect(page.locator(_row(201)).locator(".msg")).to_have_text("step 201")
    await page.get_by_label("Search", exact=True).fill("step 1199")
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#log-hits")).to_have_text("1 of 1")
    await expect(page.locator("#log .line.hit-current")).to_have_attribute("data-line", "1199")


async def test_follow_tail_stops_on_scroll_up_and_resumes_with_one_click(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Tail")
    lines = [Line(f"output {n}", host=n % 2) for n in range(1, 301)]
    run = await seed_log(server_db, admin, lines, status="in_progress")
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    await expect(page.locator("#log-state")).to_have_text("Live.")
    follow = page.locator("#log-follow")
    await expect(follow).to_have_attribute("aria-pressed", "true")
    await _shown(page, 300)

    await append_log(server_db, admin, run.deployment_id, message="live line one")
    await _shown(page, 301)
    await expect(page.locator(_row(301))).to_contain_text("live line one")

    await page.locator("#log").scroll_into_view_if_needed()
    await page.locator("#log").hover()
    await page.mouse.wheel(0, -2000)
    await expect(follow).to_have_attribute("aria-pressed", "false")
    await expect(follow).to_have_text("Resume auto-scroll")
    await append_log(server_db, admin, run.deployment_id, message="live line two")
    await page.wait_for_timeout(700)
    assert not await _is_shown(page, 302)
    await follow.click()
    await expect(follow).to_have_attribute("aria-pressed", "true")
    await _shown(page, 302)
    await expect(page.locator(_row(302))).to_contain_text("live line two")

    await finish(server_db, admin, run.deployment_id, "success")
    await expect(page.locator("#log-state")).to_have_text("Finished: success.")


async def test_the_grid_contract_filters_the_log(
    page: Page, context: BrowserContext, live_server: LiveServer, server_db: Database
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Grid contract")
    lines = [Line(f"web-1 says {n}") for n in range(3)] + [
        Line(f"web-2 says {n}", host=1) for n in range(2)
    ]
    run = await seed_log(server_db, admin, lines, status="failed")
    await use_session(context, live_server.url, admin)
    await page.goto(f"/deployments/{run.deployment_id}")
    await expect(page.locator("#log .line")).to_have_count(5)

    script = str(run.scripts[0])
    await page.evaluate(
        "s => document.dispatchEvent(new CustomEvent('shipyard:log-filter', "
        "{detail: {host: null, script: s, failedOnly: false}}))",
        script,
    )
    await expect(page.locator("#log .line")).to_have_count(3)
    await expect(page.locator("#log-filter-note")).to_be_visible()
    await page.evaluate("() => window.shipyardLog.filter({failedOnly: true})")
    await expect(page.locator("#log .line")).to_have_count(2)
    await expect(page.locator("#log")).to_contain_text("web-2 says 1")
    await page.get_by_role("button", name="Show all lines").click()
    await expect(page.locator("#log .line")).to_have_count(5)
    await expect(page.locator("#log-filter-note")).to_be_hidden()
    host = str(run.hosts[0])
    await page.evaluate("h => window.shipyardLog.filter({host: h})", host)
    await expect(page.locator("#log .line")).to_have_count(3)
    await expect(page.get_by_label("Host", exact=True)).to_have_value(host)
