"""What bounds raw binary COPY into ``deployment_logs`` (issue 17's write target, explained).

Run with ``.venv/bin/python -m benchmarks.log_copy`` (``--rows 200000`` for a quick look). On an
embedded PostgreSQL with Shipyard's schema it writes the same N rows of 100 bytes, in the log
writer's batches (5,000 rows, one transaction each, ``synchronous_commit = off``, one
connection), into:

1. ``deployment_logs`` itself (its primary key, the ``(deployment_id, seq)`` and partial
   ``(deployment_id, line_no)`` indexes, the ``seq`` identity, the foreign key to the run and the
   numbering trigger);
2. a table like it without the trigger;
3. ... and without the foreign key;
4. ... and without the line-number index;
5. a bare table of the same columns (no index, no key): the machine's raw limit.

Each step removes one cost, so the table says what each one takes. Printed; ``--write`` puts it
into ``docs/benchmarks.md`` under "### Raw COPY into deployment_logs".
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.fanout import DOC, machine_note

SECTION = "### Raw COPY into deployment_logs: what each part of the table costs (issue 17)"
BATCH = 5000
COLUMNS = (
    "id, deployment_id, tenant_id, level, message, timestamp, host_id, deployment_script_id, "
    "stream, line_no"
)
TYPES = ["uuid", "uuid", "uuid", "text", "text", "timestamptz", "uuid", "uuid", "text", "int8"]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def seed(conn: Any) -> tuple[str, str, str, str]:
    """A tenant, a host, a deployment and its script row, as the owner."""
    tenant, host, deployment, script = (str(uuid.uuid4()) for _ in range(4))
    conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'copy bench')", (tenant,))
    conn.execute(
        "INSERT INTO hosts (id, name, type, ip, tenant_id) VALUES (%s, 'h', 'ssh', '127.0.0.1', %s)",
        (host, tenant),
    )
    conn.execute(
        "INSERT INTO deployments (id, name, status, tenant_id, log_lines) "
        "VALUES (%s, 'copy bench', 'in_progress', %s, 0)",
        (deployment, tenant),
    )
    conn.execute(
        "INSERT INTO deployment_scripts (id, deployment_id, tenant_id, host_id, name, path) "
        "VALUES (%s, %s, %s, %s, 'run.sh', 'run.sh')",
        (script, deployment, tenant, host),
    )
    return tenant, host, deployment, script


def variants(conn: Any) -> list[tuple[str, str]]:
    """(label, table) from the full table down to the bare one."""
    conn.execute("CREATE TABLE logs_no_trigger (LIKE deployment_logs INCLUDING ALL)")
    # The journal's one foreign key (migration 0005 dropped the others for bulk writes).
    conn.execute(
        "ALTER TABLE logs_no_trigger ADD CONSTRAINT fk_logs_no_trigger_deployment "
        "FOREIGN KEY (deployment_id) REFERENCES deployments (id) ON DELETE CASCADE"
    )
    conn.execute("CREATE TABLE logs_no_keys (LIKE deployment_logs INCLUDING ALL)")
    conn.execute("CREATE TABLE logs_no_line_index (LIKE deployment_logs INCLUDING ALL)")
    for index in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'logs_no_line_index' "
        "AND indexdef LIKE '%%line_no%%'"
    ).fetchall():
        conn.execute(f'DROP INDEX "{index[0]}"')
    conn.execute(
        "CREATE TABLE logs_bare (LIKE deployment_logs INCLUDING DEFAULTS INCLUDING IDENTITY)"
    )
    return [
        ("deployment_logs as it is (key, indexes, identity, trigger)", "deployment_logs"),
        ("without the numbering trigger", "logs_no_trigger"),
        ("... and without the foreign key to deployments", "logs_no_keys"),
        ("... and without the line-number index", "logs_no_line_index"),
        ("a bare table (no index, no key, only the identity)", "logs_bare"),
    ]


def rows(ids: tuple[str, str, str, str], count: int, first_line: int) -> list[tuple[Any, ...]]:
    tenant, host, deployment, script = ids
    start = datetime.now(UTC)
    text = "step {:07d} building component of the release " + "x" * 44
    return [
        (
            uuid.uuid4(),
            uuid.UUID(deployment),
            uuid.UUID(tenant),
            "INFO",
            text.format(number),
            start + timedelta(microseconds=number),
            uuid.UUID(host),
            uuid.UUID(script),
            "stdout",
            first_line + number,
        )
        for number in range(count)
    ]


def timed_copy(conn: Any, table: str, ids: tuple[str, str, str, str], total: int) -> float:
    """Seconds to COPY ``total`` rows in the writer's batches (rows built beforehand)."""
    batches = [rows(ids, BATCH, n) for n in range(0, total, BATCH)]
    began = time.perf_counter()
    for batch in batches:
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            with conn.cursor().copy(f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(TYPES)
                for row in batch:
                    copy.write_row(row)
    return time.perf_counter() - began


def render(results: list[tuple[str, float]], total: int, loads: tuple[str, str]) -> str:
    full = results[0][1]
    lines = [
        SECTION,
        "",
        machine_note(),
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python -m benchmarks.log_copy "
        f"--rows {total}`: {total:,} rows of about 100 bytes, binary COPY in 5,000-row "
        f"transactions, one connection, `synchronous_commit = off`, as the log writer does. "
        f"Load average before {loads[0]}, after {loads[1]}.",
        "",
        "| into | rows/s | relative to deployment_logs |",
        "|---|---:|---:|",
    ]
    for label, rate in results:
        lines.append(f"| {label} | {rate:,.0f} | {rate / full:.2f}x |")
    return "\n".join(lines) + "\n"


def write_section(body: str) -> None:
    text = DOC.read_text()
    start = text.find(SECTION + "\n")
    if start == -1:
        anchor = text.find("### Scheduling: runs due in the same second")
        DOC.write_text(text[:anchor] + body + "\n" + text[anchor:])
        return
    end = text.find("\n### ", start + len(SECTION))
    DOC.write_text(text[:start] + body + (text[end + 1 :] if end != -1 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    options = parser.parse_args()
    import psycopg
    from tests.support.postgres import PostgresForTests

    from shipyard.db import to_libpq_url

    postgres = PostgresForTests(Path(tempfile.mkdtemp(prefix="sy-logcopy-", dir="/tmp")))
    try:
        url = postgres.create_database()
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            ids = seed(conn)
            tables = variants(conn)
            before = load()
            results = []
            for label, table in tables:
                seconds = timed_copy(conn, table, ids, options.rows)
                results.append((label, options.rows / seconds))
                print(f"{label}: {options.rows / seconds:,.0f} rows/s", flush=True)
                conn.execute(
                    f"TRUNCATE {table} CASCADE"
                    if table != "deployment_logs"
                    else "DELETE FROM deployment_logs"
                )
        body = render(results, options.rows, (before, load()))
    finally:
        postgres.stop()
    print(body)
    if options.write:
        write_section(body)


if __name__ == "__main__":
    main()
