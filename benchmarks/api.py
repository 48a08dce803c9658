"""The REST API at the size of a real installation (issue 18): 1,000,000 deployments.

Run with ``.venv/bin/python -m benchmarks.api`` (``--deployments 100000 --log-lines 1000000`` for
a quick look). It starts a PostgreSQL (the tests' embedded server, or ``--database-url``), loads
one tenant's history server-side with ``INSERT ... SELECT generate_series``:

- N deployments over a year (70 % success, 10 % failed, partial, cancelled, ...), two script rows
  each (one per host), 1 in 100,000 named with a rare word for the text search;
- M log lines: 100,000 on the newest finished deployment (the one whose log page is read) and
  the rest spread 100 a run over the newest runs;

then starts ``shipyard serve --no-worker --workers W`` on a loopback port and drives it with
``wrk`` (C, 2 threads, 50 connections, keep-alive; ``apt-get install wrk``), one endpoint at a time
and then all five mixed:

- the first page of ``GET /api/v1/deployments``;
- a page deep by cursor (the cursor of the row at N/2);
- a status filter (``status=failed``);
- a text search (``search=`` a word in 1 of 100,000 names);
- a log page of one deployment (``GET /api/v1/deployments/{id}/logs?limit=200``, after the
  middle of its log).

Target (issue 18): at least 500 req/s in total and p99 under 100 ms for each, the database and
the server on the same 2-core machine. ``EXPLAIN (ANALYZE, BUFFERS)`` of each query is printed;
``--write`` puts the tables into ``docs/benchmarks.md`` under "## REST API at scale" (up to the
end-of-run marker: the hand-written text after it is kept).

``--floor`` then measures the raw limit on the same data with the same ``wrk``:
``benchmarks/api_floor_app.py``, a bare ASGI callable doing one prepared statement a request.
``--floor-python`` runs it under another Python, for uvloop and httptools::

    .venv/bin/uv venv /tmp/floorvenv -p .venv/bin/python
    VIRTUAL_ENV=/tmp/floorvenv .venv/bin/uv pip install "uvicorn[standard]" "psycopg[binary]"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from benchmarks.fanout import DOC, machine_note

SECTION = "## REST API at scale"
RARE_WORD = "hotfix-quasar"
CONNECTIONS = 50
WRK_THREADS = 2


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- loading ------------------------------------------------------------------------------------

LOAD_HOSTS = """
INSERT INTO hosts (id, name, type, ip, port, "user", status, tenant_id)
VALUES (%(h1)s, 'web-1', 'ssh', '127.0.0.1', 22, 'deploy', 'online', %(tenant)s),
       (%(h2)s, 'web-2', 'ssh', '127.0.0.1', 22, 'deploy', 'online', %(tenant)s)
"""
LOAD_DEPLOYMENTS = """
INSERT INTO deployments (id, name, status, schedule, script_ids, host_ids, created_by,
                         started_at, completed_at, tenant_id, ref, commit_sha,
                         created_at, updated_at, trigger)
SELECT gen_random_uuid(),
       'release ' || (g %% 500) || ' of service-' || (g %% 97)
         || CASE WHEN g %% 100000 = 4242 THEN ' ' || %(rare)s ELSE '' END,
       (ARRAY['success','success','success','success','success','success','success',
              'failed','partial','cancelled'])[1 + g %% 10],
       'now', '{}'::uuid[], ARRAY[%(h1)s, %(h2)s]::uuid[], %(user)s,
       t, t + interval '40 seconds', %(tenant)s, 'main',
       md5(g::text) || substr(md5((g + 1)::text), 1, 8),
       t, t + interval '40 seconds', 'manual'
FROM (SELECT g, %(newest)s - g * interval '31 seconds' AS t
      FROM generate_series(1, %(n)s) AS g) AS s
"""
LOAD_SCRIPTS = """
INSERT INTO deployment_scripts (deployment_id, name, path, status, started_at, completed_at,
                                exit_code, tenant_id, host_id, position, created_at, updated_at)
SELECT d.id, 'deploy.sh', 'scripts/deploy.sh',
       CASE WHEN d.status = 'failed' AND h.n = 2 THEN 'failed'
            WHEN d.status = 'cancelled' THEN 'cancelled' ELSE 'success' END,
       d.started_at, d.completed_at,
       CASE WHEN d.status = 'failed' AND h.n = 2 THEN 1 ELSE 0 END,
       d.tenant_id, h.id, 0, d.created_at, d.updated_at
FROM deployments AS d
CROSS JOIN (VALUES (1, %(h1)s::uuid), (2, %(h2)s::uuid)) AS h(n, id)
"""
# Lines of the big run, then 100 a run for the newest runs after it.
LOAD_BIG_LOG = """
INSERT INTO deployment_logs (deployment_id, level, message, timestamp, tenant_id, host_id,
                             stream, line_no)
SELECT %(deployment)s, 'INFO',
       'step ' || lpad(g::text, 7, '0') || ' building component ' || (g %% 977)
         || ' of the release ' || repeat('x', 44),
       %(start)s + g * interval '3 milliseconds', %(tenant)s, %(h1)s, 'stdout', g
FROM generate_series(1, %(lines)s) AS g
"""
LOAD_SMALL_LOGS = """
INSERT INTO deployment_logs (deployment_id, level, message, timestamp, tenant_id, host_id,
                             stream, line_no)
SELECT d.id, 'INFO',
       'step ' || lpad(g::text, 3, '0') || ' of ' || d.name || ' ' || repeat('y', 40),
       d.started_at + g * interval '100 milliseconds', d.tenant_id, %(h1)s, 'stdout', g
FROM (SELECT id, name, started_at, tenant_id FROM deployments
      WHERE id <> %(deployment)s ORDER BY created_at DESC LIMIT %(runs)s) AS d
CROSS JOIN generate_series(1, 100) AS g
"""
# The lines carry their numbers (as the log writer gives them); the runs their counts.
COUNT_LINES = """
UPDATE deployments AS d SET log_lines = counted.lines
FROM (SELECT deployment_id, count(*) AS lines FROM deployment_logs GROUP BY deployment_id)
  AS counted
WHERE d.id = counted.deployment_id
"""


@dataclass
class Loaded:
    deployments: int
    log_lines: int
    seconds: float
    big_run: str
    middle_seq: int
    deep_cursor: str
    sizes: dict[str, str]
    server: str


def load_history(url: str, tenant: str, user: str, deployments: int, log_lines: int) -> Loaded:
    import uuid

    import psycopg

    from shipyard.db import to_libpq_url

    began = time.perf_counter()
    h1, h2 = str(uuid.uuid4()), str(uuid.uuid4())
    newest = datetime.now(UTC)
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(LOAD_HOSTS, {"h1": h1, "h2": h2, "tenant": tenant})
        common = {"h1": h1, "h2": h2, "tenant": tenant, "user": user, "rare": RARE_WORD}
        conn.execute(LOAD_DEPLOYMENTS, {**common, "n": deployments, "newest": newest})
        print(f"  {deployments:,} deployments in {time.perf_counter() - began:.0f} s", flush=True)
        conn.execute(LOAD_SCRIPTS, common)
        print(f"  their script rows at {time.perf_counter() - began:.0f} s", flush=True)
        big = conn.execute(
            "SELECT id, started_at FROM deployments WHERE status = 'success' "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        assert big is not None
        big_run, start = str(big[0]), big[1]
        big_lines = min(100_000, log_lines)
        conn.execute(
            LOAD_BIG_LOG,
            {**common, "deployment": big_run, "start": start, "lines": big_lines},
        )
        runs = max(0, (log_lines - big_lines) // 100)
        conn.execute(LOAD_SMALL_LOGS, {**common, "deployment": big_run, "runs": runs})
        conn.execute(COUNT_LINES)
        print(f"  {big_lines + runs * 100:,} log lines at {time.perf_counter() - began:.0f} s")
        conn.execute("VACUUM (ANALYZE) deployments")
        conn.execute("VACUUM (ANALYZE) deployment_scripts")
        conn.execute("VACUUM (ANALYZE) deployment_logs")
        middle = conn.execute(
            "SELECT seq FROM deployment_logs WHERE deployment_id = %s ORDER BY seq "
            "OFFSET %s LIMIT 1",
            (big_run, big_lines // 2),
        ).fetchone()
        deep = conn.execute(
            "SELECT created_at, id FROM deployments WHERE tenant_id = %s "
            "ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            (tenant, deployments // 2),
        ).fetchone()
        assert middle is not None and deep is not None
        sizes = {
            table: str(
                conn.execute(
                    "SELECT pg_size_pretty(pg_total_relation_size(%s))", (table,)
                ).fetchone()[0]  # type: ignore[index]
            )
            for table in ("deployments", "deployment_scripts", "deployment_logs")
        }
        version = conn.execute("SHOW server_version").fetchone()
    raw = f"{deep[0].isoformat()}|{deep[1]}".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return Loaded(
        deployments=deployments,
        log_lines=big_lines + runs * 100,
        seconds=time.perf_counter() - began,
        big_run=big_run,
        middle_seq=int(middle[0]),
        deep_cursor=cursor,
        sizes=sizes,
        server=str(version[0]) if version else "?",
    )


# --- the queries' plans ---------------------------------------------------------------------------


def _as_json_page(inner: str, order: str) -> str:
    """A page as the API asks for it: rendered as one JSON array by PostgreSQL."""
    return f"SELECT json_agg(page ORDER BY {order})::text FROM ({inner}) AS page"  # noqa: S608 (constants)


_NEWEST = "page.created_at DESC, page.id DESC"
PLANS = {
    "first page": _as_json_page(
        "SELECT * FROM deployments WHERE tenant_id = %(tenant)s "
        "ORDER BY created_at DESC, id DESC LIMIT 51",
        _NEWEST,
    ),
    "deep page by cursor": _as_json_page(
        "SELECT * FROM deployments WHERE tenant_id = %(tenant)s "
        "AND (created_at, id) < (%(c_at)s, %(c_id)s) ORDER BY created_at DESC, id DESC LIMIT 51",
        _NEWEST,
    ),
    "status filter": _as_json_page(
        "SELECT * FROM deployments WHERE tenant_id = %(tenant)s AND status = 'failed' "
        "ORDER BY created_at DESC, id DESC LIMIT 51",
        _NEWEST,
    ),
    # The matching ids come from deployment_ids_named_like (migrations 0018, 0019), which runs
    # as the owner, returns one page of matches and can use the trigram index.
    "text search": _as_json_page(
        "SELECT * FROM deployments WHERE tenant_id = %(tenant)s "
        "AND id = any(array(SELECT deployment_ids_named_like(%(pattern)s::text, 51,"
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL))) "
        "ORDER BY created_at DESC, id DESC LIMIT 51",
        _NEWEST,
    ),
    "log page": _as_json_page(
        "SELECT * FROM deployment_logs WHERE deployment_id = %(run)s AND seq > %(seq)s "
        "ORDER BY seq LIMIT 201",
        "page.seq",
    ),
}


def explain(url: str, tenant: str, loaded: Loaded) -> dict[str, str]:
    import psycopg

    from shipyard.db import APP_ROLE, TENANT_SETTING, to_libpq_url

    padded = loaded.deep_cursor + "=" * (-len(loaded.deep_cursor) % 4)
    c_at, c_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
    params = {
        "tenant": tenant,
        "c_at": c_at,
        "c_id": c_id,
        "pattern": f"%{RARE_WORD}%",
        "run": loaded.big_run,
        "seq": loaded.middle_seq,
    }
    plans: dict[str, str] = {}
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        # As requests run: the application role, bound by row-level security, in the tenant.
        conn.execute(f"SET ROLE {APP_ROLE}")
        conn.execute("SELECT set_config(%s, %s, false)", (TENANT_SETTING, tenant))
        for name, sql in PLANS.items():
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params).fetchall()
            plans[name] = "\n".join(str(row[0]) for row in rows)
    return plans


# --- a Debian PostgreSQL (a server as installations run it) ----------------------------------

OWNER_PASSWORD = "bench-owner-password"
EXTERNAL_ROLES = f"""
CREATE ROLE shipyard_owner LOGIN PASSWORD '{OWNER_PASSWORD}'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE shipyard_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
GRANT shipyard_app TO shipyard_owner;
CREATE DATABASE shipyard OWNER shipyard_owner;
REVOKE ALL ON DATABASE shipyard FROM PUBLIC;
"""


class DebianPostgres:
    """The machine's Debian PostgreSQL in a throw-away cluster (as tests/integration/core/
    test_backup.py starts it), with 256 MB of shared buffers."""

    def __init__(self) -> None:
        import psycopg

        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not binaries:
            raise SystemExit("no Debian PostgreSQL: apt-get install postgresql")
        self.bin_dir = binaries[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="sy-apibench-pg-", dir="/tmp"))
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self._run(
            str(self.bin_dir / "initdb"),
            *("-D", str(self.root / "data"), "-U", "postgres"),
            *("--auth-local=trust", "--auth-host=scram-sha-256"),
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_buffers=256MB -c max_connections=200"
        )
        self.pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data")]
        self._run(*self.pg_ctl, "-w", "-l", str(self.root / "log"), "-o", options, "start")
        with psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres"
        ) as conn:
            conn.autocommit = True
            for statement in EXTERNAL_ROLES.split(";"):
                if statement.strip():
                    conn.execute(statement)
        self.url = f"postgresql://shipyard_owner:{OWNER_PASSWORD}@127.0.0.1:{self.port}/shipyard"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self._run(*self.pg_ctl, "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_idle(url: str, timeout: float = 180.0) -> None:
    """Until no other query runs (requests a client gave up on may still be running)."""
    import psycopg

    from shipyard.db import to_libpq_url

    deadline = time.monotonic() + timeout
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
            if busy is not None and busy[0] == 0:
                return
            time.sleep(0.5)


# --- the server -----------------------------------------------------------------------------------


class Server:
    """``shipyard serve --no-worker`` as a child process on a loopback port."""

    def __init__(self, env: dict[str, str], workers: int, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "serve.log"
        command = [sys.executable, "-m", "shipyard", "serve", "--no-worker"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"serve did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class FloorServer(Server):
    """``benchmarks/api_floor_app.py`` under uvicorn: the raw limit (no framework, no ORM);
    ready, like ``serve``, when ``/healthz`` answers 200."""

    def __init__(
        self, env: dict[str, str], workers: int, root: Path, database_url: str, python: str
    ) -> None:
        from shipyard.db import to_libpq_url

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "floor.log"
        # uvicorn picks uvloop and httptools by itself where the Python has them.
        command = [python, "-m", "uvicorn", "benchmarks.api_floor_app:app"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        command += ["--no-access-log", "--log-level", "warning"]
        floor_env = {**env, "FLOOR_DATABASE_URL": to_libpq_url(database_url)}
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                command,
                env=floor_env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
            )


# The floor app answers these four (the text search needs the tenant's scope: not in the floor).
FLOOR_ENDPOINTS = ("first page", "deep page by cursor", "status filter", "log page")


# --- driving it -----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: str


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(name: str, output: str) -> Result:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    distribution = output.split("Latency Distribution", 1)[-1]
    percent = dict(re.findall(r"\b(50|75|90|99)%\s+([\d.]+(?:us|ms|s|m))", distribution))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    problems = []
    if errors:
        problems.append(f"{errors.group(1)} non-2xx")
    if socket_errors:
        problems.append(socket_errors.group(1))
    if rate is None or set(percent) != {"50", "75", "90", "99"}:
        raise RuntimeError(f"wrk output not understood:\n{output}")
    return Result(
        name=name,
        requests_per_second=float(rate.group(1)),
        p50_ms=_ms(percent["50"]),
        p90_ms=_ms(percent["90"]),
        p99_ms=_ms(percent["99"]),
        errors=", ".join(problems) or "none",
    )


MIXED_LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def run_wrk(
    base_url: str,
    token: str,
    name: str,
    paths: list[str],
    duration: int,
    root: Path,
    *,
    connections: int = CONNECTIONS,
) -> Result:
    threads = min(WRK_THREADS, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    command += ["--latency", "--timeout", "10s", "-H", f"Authorization: Bearer {token}"]
    if len(paths) > 1:
        script = root / "mixed.lua"
        script.write_text(MIXED_LUA % ", ".join(f'"{path}"' for path in paths))
        command += ["-s", str(script)]
    command.append(base_url + paths[0])
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 60
    )
    return parse_wrk(name, done.stdout)


def endpoints(loaded: Loaded) -> dict[str, str]:
    return {
        "first page": "/api/v1/deployments",
        "deep page by cursor": f"/api/v1/deployments?cursor={quote(loaded.deep_cursor)}",
        "status filter": "/api/v1/deployments?status=failed",
        "log page": f"/api/v1/deployments/{loaded.big_run}/logs?limit=200&cursor={loaded.middle_seq}",
        # Last: where pg_trgm is missing the search reads the tenant's table (docs/decisions.md),
        # and requests wrk gave up on still run; the idle wait after each keeps them out of the
        # next run.
        "text search": f"/api/v1/deployments?search={RARE_WORD}",
    }


def check_answers(base_url: str, token: str, paths: dict[str, str]) -> dict[str, int]:
    """Each endpoint answers 200 with items (a wrong URL would make wrk measure 4xx)."""
    import httpx

    counts: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    for name, path in paths.items():
        answer = httpx.get(base_url + path, headers=headers, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        items = body["items"] if isinstance(body, dict) and "items" in body else body
        counts[name] = len(items)
        if not items:
            raise RuntimeError(f"{name}: {path} answered no items")
    return counts


# --- the report -----------------------------------------------------------------------------------


def render(
    loaded: Loaded,
    results: list[Result],
    single: Result | None,
    plans: dict[str, str],
    workers: int,
    loads: tuple[str, str],
    floor: list[Result] | None = None,
    floor_stack: str = "",
) -> str:
    def ok(result: Result) -> str:
        return "yes" if result.p99_ms < 100 else "no"

    lines = [
        SECTION,
        "",
        machine_note(),
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python -m benchmarks.api "
        f"{' '.join(sys.argv[1:])}`. One tenant's history was "
        f"loaded server-side in {loaded.seconds:.0f} s: {loaded.deployments:,} deployments with "
        f"two script rows each, {loaded.log_lines:,} log lines (100,000 on one run), then "
        f"`VACUUM (ANALYZE)`, into PostgreSQL {loaded.server}. Sizes: "
        + ", ".join(f"{table} {size}" for table, size in loaded.sizes.items())
        + ".",
        "",
        f"`shipyard serve --no-worker --workers {workers}` and PostgreSQL on the same machine; "
        f"`wrk` with {WRK_THREADS} threads and {CONNECTIONS} connections (keep-alive), one "
        f"endpoint at a time, then the five mixed. Load average before {loads[0]}, after "
        f"{loads[1]}.",
        "",
        "| endpoint | req/s | p50 ms | p90 ms | p99 ms | p99 < 100 ms | errors |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {result.requests_per_second:,.0f} | {result.p50_ms:.1f} | "
            f"{result.p90_ms:.1f} | {result.p99_ms:.1f} | {ok(result)} | {result.errors} |"
        )
    if single is not None:
        lines += [
            "",
            f"One client alone (first page, 1 connection): {single.requests_per_second:,.0f} "
            f"req/s, p50 {single.p50_ms:.1f} ms, p99 {single.p99_ms:.1f} ms.",
        ]
    if floor:
        by_name = {result.name: result for result in results}
        lines += [
            "",
            "The raw limit, in the same run: `benchmarks/api_floor_app.py` (a bare ASGI callable, "
            f"`uvicorn --workers {workers}` {floor_stack}, one prepared psycopg statement per "
            "request that checks the token's hash and renders the same page as JSON in "
            "PostgreSQL; no "
            "framework, ORM, row-level security, validation or middleware), the same `wrk`:",
            "",
            "| endpoint | req/s | p50 ms | p99 ms | p99 < 100 ms | shipyard's req/s as a share |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for result in floor:
            ours = by_name.get(result.name)
            share = (
                f"{ours.requests_per_second / result.requests_per_second:.0%}"
                if ours is not None and result.requests_per_second
                else "-"
            )
            lines.append(
                f"| {result.name} | {result.requests_per_second:,.0f} | {result.p50_ms:.1f} | "
                f"{result.p99_ms:.1f} | {ok(result)} | {share} |"
            )
    lines += [
        "",
        "Plans (`EXPLAIN (ANALYZE, BUFFERS)` of the equivalent SQL, as the application role in "
        "the tenant, under row-level security as requests run):",
        "",
    ]
    for name, plan in plans.items():
        lines += [f"- {name}:", "", "```", plan, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


# Ends the run's generated part: what follows it in the section (the earlier runs, the
# analysis) is written by hand and kept by --write.
END_OF_RUN = "<!-- benchmarks/api.py: end of the generated run -->"


def write_section(body: str) -> None:
    """Replace the section's generated part with ``body``; keep the hand-written rest."""
    text = DOC.read_text()
    body = body.rstrip("\n") + "\n\n" + END_OF_RUN + "\n"
    start = text.find(SECTION + "\n")
    if start == -1:
        DOC.write_text(text.rstrip() + "\n\n" + body)
        return
    next_section = text.find("\n## ", start + len(SECTION))
    marker = text.find(END_OF_RUN, start)
    if marker != -1 and (next_section == -1 or marker < next_section):
        rest = text[marker + len(END_OF_RUN) :].lstrip("\n")
        DOC.write_text(text[:start] + body + ("\n" + rest if rest else ""))
        return
    DOC.write_text(text[:start] + body + (text[next_section:] if next_section != -1 else ""))


async def main_async(options: argparse.Namespace) -> None:
    from cryptography.fernet import Fernet

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="sy-apibench-", dir="/tmp"))
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
    from tests.support.browser import api_signup
    from tests.support.postgres import PostgresForTests

    postgres: PostgresForTests | DebianPostgres
    if options.debian_postgres:
        postgres = DebianPostgres()
        url = postgres.url
    else:
        postgres = PostgresForTests(root)
        url = postgres.create_database()
    server = Server({**os.environ, "SHIPYARD_DATABASE_URL": url}, options.workers, root)
    try:
        server.wait_ready()
        admin = await api_signup(server.url, tenant_name="API bench")
        print(f"loading into {root} ...", flush=True)
        loaded = load_history(
            url, admin.tenant_id, admin.user_id, options.deployments, options.log_lines
        )
        paths = endpoints(loaded)
        print("answers:", check_answers(server.url, admin.token, paths), flush=True)
        plans = explain(url, admin.tenant_id, loaded)
        load_before = load()
        single = run_wrk(
            server.url, admin.token, "first page", [paths["first page"]], 5, root, connections=1
        )
        results = []
        for name, path in paths.items():
            wait_idle(url)
            result = run_wrk(server.url, admin.token, name, [path], options.duration, root)
            print(result, flush=True)
            results.append(result)
        wait_idle(url)
        mixed = run_wrk(
            server.url, admin.token, "all five mixed", list(paths.values()), options.duration, root
        )
        print(mixed, flush=True)
        results.append(mixed)
        floor: list[Result] = []
        if options.floor:
            server.stop()
            floor = run_floor(url, options, root, admin.token, paths)
        body = render(
            loaded,
            results,
            single,
            plans,
            options.workers,
            (load_before, load()),
            floor,
            floor_stack(options.floor_python) if options.floor else "",
        )
    finally:
        server.stop()
        postgres.stop()
    print(body)
    if options.write:
        write_section(body)


def floor_stack(python: str) -> str:
    """Which event loop and HTTP parser uvicorn picks under ``python``."""
    probe = subprocess.run(
        [python, "-c", "import uvloop, httptools"], capture_output=True, check=False, timeout=60
    )
    if probe.returncode == 0:
        return "with uvloop and httptools"
    return "with asyncio and h11, as `shipyard serve` runs"


def run_floor(
    url: str, options: argparse.Namespace, root: Path, token: str, paths: dict[str, str]
) -> list[Result]:
    """The same wrk against the floor app, on the same database (the serve processes stopped)."""
    floor_server = FloorServer(dict(os.environ), options.workers, root, url, options.floor_python)
    results: list[Result] = []
    try:
        floor_server.wait_ready()
        # Same pages as shipyard's (a wrong query would let wrk measure empty answers).
        print(
            "floor answers:",
            check_answers(floor_server.url, token, {name: paths[name] for name in FLOOR_ENDPOINTS}),
            flush=True,
        )
        for name in FLOOR_ENDPOINTS:
            wait_idle(url)
            result = run_wrk(floor_server.url, token, name, [paths[name]], options.duration, root)
            print("floor:", result, flush=True)
            results.append(result)
    finally:
        floor_server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1_000_000)
    parser.add_argument("--log-lines", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=1, help="shipyard serve --workers")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument(
        "--debian-postgres",
        action="store_true",
        help="the machine's Debian PostgreSQL instead of the embedded server",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the raw limit (benchmarks/api_floor_app.py) on the same data",
    )
    parser.add_argument(
        "--floor-python",
        default=sys.executable,
        help="the Python that runs the floor app (one with uvicorn[standard] for uvloop and "
        "httptools)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
