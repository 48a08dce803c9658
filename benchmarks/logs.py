"""Log write throughput: chatty scripts through a real worker, against raw binary COPY.

Run with ``.venv/bin/python -m benchmarks.logs`` (as root: it starts sshd with the test accounts
of ``tests/support/sshd.py``, an embedded PostgreSQL and real ``shipyard worker`` processes,
through the stack of ``benchmarks.deploy``). It measures, in one run:

- one host printing 500,000 lines of 100 bytes (target: 100,000 lines/s stored);
- 50 hosts printing 20,000 lines each at once (target: 150,000 lines/s in total);
- for both, raw binary ``COPY`` of the same rows into the same table in the writer's batch
  size (5,000 rows, ``synchronous_commit = off``), one connection like the writer: the raw
  limit, and Shipyard's rate as a ratio to it (goal 0.6 or more);
- the worker's peak RSS (VmHWM) for one host printing 50,000, 500,000 and 5,000,000 lines.

The table is printed; ``--write`` puts it into ``docs/benchmarks.md`` under "### Log throughput".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.deploy import (
    Stack,
    Worker,
    build_stack,
    create_hosts,
    seconds_between,
    wait_final,
)
from benchmarks.fanout import DOC, machine_note

SECTION = "### Log throughput"
HOW = """\
How: `.venv/bin/python -m benchmarks.logs [--write]` starts the stack of `benchmarks.deploy`
(embedded PostgreSQL, the API in-process, a git server, sshd on loopback) and runs each case as
one deployment in a fresh `shipyard worker` (peak RSS from VmHWM, CPU from `/proc/<pid>/stat`
between the worker's start-up and the run's end). Rates are lines stored over the deployment's
started_at to completed_at. The raw arm reads the rows Shipyard stored back as binary COPY
data in 5,000-row batches (untimed, ids changed from version 7 to 8 so they stay unique and
ordered), then times writing them into the same table in one transaction per batch with
`synchronous_commit = off`, on one connection, as the writer does."""
BATCH_ROWS = 5000
# With their line numbers (0016): a row without one would be numbered by the trigger.
COPY_IN_TEXT = (
    "COPY deployment_logs (id, deployment_id, tenant_id, level, message, timestamp, host_id, "
    "deployment_script_id, stream, line_no) FROM STDIN"
)
COPY_IN_BINARY = COPY_IN_TEXT + " (FORMAT BINARY)"
# The rows Shipyard stored, with a new id each: the version digit 7 becomes 8 (unique, ordered).
COPY_OUT_TEXT = (
    "COPY (SELECT overlay(id::text placing '8' from 15 for 1)::uuid, deployment_id, tenant_id, "
    "level, message, timestamp, host_id, deployment_script_id, stream, line_no FROM deployment_logs "
    "WHERE deployment_id = %s AND stream IS NOT NULL AND seq BETWEEN %s AND %s ORDER BY seq) "
    "TO STDOUT"
)
COPY_OUT_BINARY = COPY_OUT_TEXT + " (FORMAT BINARY)"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


class LoggedWorker(Worker):
    """``benchmarks.deploy.Worker`` with its stderr kept in a file (shown if a run fails)."""

    def __init__(self, stack: Stack, concurrency: int) -> None:
        self.log = stack.root / f"worker-{time.monotonic_ns()}.log"
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shipyard", "worker", "--concurrency", str(concurrency)],
                env={**stack.env, "SHIPYARD_WORKER_POLL_INTERVAL_SECONDS": "0.2"},
                stdout=subprocess.DEVNULL,
                stderr=handle,
            )
        time.sleep(3.0)  # interpreter start-up and imports, outside every measurement
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited: {self.log.read_text()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(stack: Stack) -> Any:
    import psycopg

    from shipyard.db import to_libpq_url

    return psycopg.connect(to_libpq_url(stack.database_url))


async def run_lines(stack: Stack, host_ids: list[str], lines: int) -> dict[str, Any]:
    """One deployment: ``lines`` lines on each of ``host_ids`` at once, in a fresh worker."""
    load_before = load()
    worker = LoggedWorker(stack, concurrency=4)
    cpu_before = cpu_seconds(worker.process.pid)
    try:
        created = (
            await stack.client.post(
                "/api/v1/deployments",
                headers=stack.headers,
                json={
                    "name": f"logs-{len(host_ids)}x{lines}",
                    "repository_id": stack.repository_id,
                    "host_ids": host_ids,
                    "scripts": [
                        {"script_id": stack.scripts["lines.sh"], "arguments": [str(lines)]}
                    ],
                    "options": {"parallelism": len(host_ids)},
                },
            )
        ).json()
        try:
            done = await wait_final(
                stack, created["id"], timeout=max(60, lines * len(host_ids) / 5000)
            )
        except TimeoutError:
            raise RuntimeError(f"no end; worker log: {worker.log.read_text()[-3000:]}") from None
        rss = worker.peak_rss_mib()
        cpu = cpu_seconds(worker.process.pid) - cpu_before
    finally:
        worker.stop()
    assert done["status"] == "success", done
    with connect(stack) as conn:
        row = conn.execute(
            "SELECT count(*), min(s.started_at), max(s.completed_at) FROM deployment_logs l, "
            "(SELECT min(started_at) AS started_at, max(completed_at) AS completed_at "
            " FROM deployment_scripts WHERE deployment_id = %s) s "
            "WHERE l.deployment_id = %s AND l.stream = 'stdout' AND l.level = 'INFO' "
            "AND length(l.message) >= 100",
            (created["id"], created["id"]),
        ).fetchone()
    assert row is not None
    stored, scripts_started, scripts_completed = row
    seconds = seconds_between(done["started_at"], done["completed_at"])
    script_seconds = (scripts_completed - scripts_started).total_seconds()
    return {
        "deployment_id": created["id"],
        "hosts": len(host_ids),
        "lines": len(host_ids) * lines,
        "stored": int(stored),
        "seconds": seconds,
        "rate": stored / seconds,
        "script_seconds": script_seconds,
        "script_rate": stored / script_seconds,
        "rss": rss,
        "cpu_us_per_line": cpu / max(stored, 1) * 1e6,
        "load": load_before,
    }


def raw_copy(stack: Stack, deployment_id: str, binary: bool = True) -> dict[str, Any]:
    """Raw binary COPY of the rows Shipyard stored for ``deployment_id``, timed alone.

    The rows are read back as binary COPY data in the writer's batch size (untimed), with
    their ids' version digit changed (7 to 8) so they stay unique and time-ordered; then each
    batch is written in a transaction of its own, like the writer's. The copies are deleted
    afterwards.
    """
    with connect(stack) as conn:
        seqs = [
            seq
            for (seq,) in conn.execute(
                "SELECT seq FROM deployment_logs WHERE deployment_id = %s AND stream IS NOT NULL "
                "ORDER BY seq",
                (deployment_id,),
            )
        ]
        ranges = [
            (seqs[start], seqs[min(start + BATCH_ROWS, len(seqs)) - 1])
            for start in range(0, len(seqs), BATCH_ROWS)
        ]
        batches: list[bytes] = []
        out_query = COPY_OUT_BINARY if binary else COPY_OUT_TEXT
        in_query = COPY_IN_BINARY if binary else COPY_IN_TEXT
        with conn.cursor() as cursor:
            for low, high in ranges:
                buffer = bytearray()
                with cursor.copy(out_query, (deployment_id, low, high)) as copy:
                    for data in copy:
                        buffer += data
                batches.append(bytes(buffer))
        conn.commit()
        load_before = load()
        started = time.perf_counter()
        for data in batches:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
                with cursor.copy(in_query) as copy:
                    copy.write(data)
        seconds = time.perf_counter() - started
        conn.execute(
            "DELETE FROM deployment_logs WHERE deployment_id = %s "
            "AND substr(id::text, 15, 1) = '8'",
            (deployment_id,),
        )
        conn.commit()
    return {"rows": len(seqs), "seconds": seconds, "rate": len(seqs) / seconds, "load": load_before}


def render(
    single: dict[str, Any],
    single_raw: dict[str, Any],
    single_text: dict[str, Any],
    fleet: dict[str, Any],
    fleet_raw: dict[str, Any],
    memory: list[dict[str, Any]],
) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    single_ratio = single["rate"] / single_raw["rate"]
    fleet_ratio = fleet["rate"] / fleet_raw["rate"]
    lines = [
        f"{SECTION}: chatty scripts, stdout and stderr streams (issue 17)",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_note()}.",
        "",
        "| case | lines stored | seconds (started_at to completed_at) | lines/s stored "
        "| script window s | lines/s in it | worker CPU us/line | raw binary COPY lines/s "
        "| ratio to raw | load average before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, item, raw, ratio in (
        ("1 host x 500,000 lines of 100 bytes", single, single_raw, single_ratio),
        (f"{fleet['hosts']} hosts x 20,000 lines at once", fleet, fleet_raw, fleet_ratio),
    ):
        lines.append(
            f"| {name} | {item['stored']:,} of {item['lines']:,} | {item['seconds']:.2f} "
            f"| {item['rate']:,.0f} | {item['script_seconds']:.2f} | {item['script_rate']:,.0f} "
            f"| {item['cpu_us_per_line']:.1f} | {raw['rate']:,.0f} | {ratio:.2f} "
            f"| {item['load']} (raw: {raw['load']}) |"
        )
    lines += [
        "",
        f"The same {single_text['rows']:,} rows as raw text COPY (the format the writer rejected): "
        f"{single_text['rate']:,.0f} lines/s (binary: {single_raw['rate']:,.0f}).",
        "",
        "| lines (one host) | stored | lines/s | worker CPU us/line | worker peak RSS MiB "
        "| load average before |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for item in memory:
        lines.append(
            f"| {item['lines']:,} | {item['stored']:,} | {item['rate']:,.0f} "
            f"| {item['cpu_us_per_line']:.1f} | {item['rss']:.0f} | {item['load']} |"
        )
    flat = max(item["rss"] for item in memory) - min(item["rss"] for item in memory)
    lines += [
        "",
        "Targets: one host at least 100,000 lines/s: "
        f"{verdict(single['rate'] >= 100_000)} ({single['rate']:,.0f}); "
        f"{fleet['hosts']} hosts at least 150,000 lines/s in total: "
        f"{verdict(fleet['rate'] >= 150_000)} ({fleet['rate']:,.0f}); ratio to raw binary "
        f"COPY at least 0.6: {verdict(min(single_ratio, fleet_ratio) >= 0.6)} "
        f"({single_ratio:.2f} and {fleet_ratio:.2f}); memory flat from 50,000 to 5,000,000 "
        f"lines: peak RSS within {flat:.0f} MiB.",
        "",
        HOW,
        "",
    ]
    return "\n".join(lines) + "\n"


def write_subsection(body: str) -> None:
    """Replace the "### Log throughput" text up to the shared "How (fan-out" paragraph."""
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.index("How (fan-out", start)
    DOC.write_text(text[:start] + body + "\n" + text[end:])


async def main_async(options: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="sy-logs-", dir="/tmp"))
    os.chmod(root, 0o755)
    stack = await build_stack(root, options.hosts)
    try:
        host_ids = await create_hosts(stack, options.hosts)
        memory = []
        for count in options.memory:
            memory.append(await run_lines(stack, host_ids[:1], count))
            print("memory", memory[-1], flush=True)
        single = next((m for m in memory if m["lines"] == options.lines), None)
        if single is None:
            single = await run_lines(stack, host_ids[:1], options.lines)
        print("single", single, flush=True)
        single_raw = raw_copy(stack, single["deployment_id"])
        print("single raw", single_raw, flush=True)
        # The same rows as COPY text: the server's side of choosing binary in the writer.
        single_text = raw_copy(stack, single["deployment_id"], binary=False)
        print("single raw text", single_text, flush=True)
        fleet = await run_lines(stack, host_ids, options.per_host)
        print("fleet", fleet, flush=True)
        fleet_raw = raw_copy(stack, fleet["deployment_id"])
        print("fleet raw", fleet_raw, flush=True)
        body = render(single, single_raw, single_text, fleet, fleet_raw, memory)
        print(body)
        if options.write:
            write_subsection(body)
    finally:
        await stack.client.aclose()
        stack.fleet.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--per-host", type=int, default=20_000)
    parser.add_argument("--memory", type=int, nargs="*", default=[50_000, 500_000, 5_000_000])
    parser.add_argument("--write", action="store_true", help="Update docs/benchmarks.md.")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
