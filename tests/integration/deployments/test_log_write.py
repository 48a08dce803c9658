"""The log write path on a real sshd: stdout and stderr as streams at level INFO, output handed
over a read at a time (order, escapes, caps and masking kept), and every line of a long run."""

from __future__ import annotations

import time
import uuid

import psycopg

from shipyard.db import to_libpq_url
from tests.builders.deployments import DeployBuilder
from tests.support import canary
from tests.support.git_server import GitFile

STREAMS = GitFile(
    "#!/bin/sh\n"
    'echo "out one"\n'
    'echo "err one" >&2\n'
    "printf 'tab\\there back\\\\slash cr\\rend\\n'\n"
    "printf 'nul\\000byte\\n'\n"
    'echo "out two"\n'
    'echo "err two" >&2\n'
)
# A secret printed in two writes with a pause between them, so the SSH channel delivers the
# halves in two reads; then many lines holding it, read in bulk, on both streams.
SPLIT_SECRET = GitFile(
    "#!/usr/bin/env python3\n"
    "import os, sys, time\n"
    't = os.environ["SPLIT_TOKEN"]\n'
    'sys.stdout.write("before " + t[: len(t) // 2]); sys.stdout.flush(); time.sleep(0.5)\n'
    'sys.stdout.write(t[len(t) // 2 :] + " after\\n"); sys.stdout.flush()\n'
    'sys.stdout.write("".join(f"bulk {i} {t} {t}\\n" for i in range(2000))); sys.stdout.flush()\n'
    'sys.stderr.write("on stderr " + t + "\\n")\n'
)
# Numbered lines on both streams, many reads each, for the order check.
INTERLEAVED = GitFile(
    "#!/usr/bin/env python3\n"
    "import sys\n"
    "for i in range(20000):\n"
    "    stream = sys.stderr if i % 7 == 0 else sys.stdout\n"
    '    stream.write(f"n {i:06d}\\n")\n'
    "    if i % 1000 == 0: stream.flush()\n"
)
COUNT = GitFile(
    "#!/bin/sh\n"
    'awk -v n="$1" \'BEGIN { for (i = 0; i < n; i++) printf "%07d %s\\n", i, '
    '"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }\'\n'
)
LONG = GitFile(
    '#!/bin/sh\npython3 -c \'import sys; sys.stdout.write("y" * 20000 + "\\n")\'\necho short\n'
)


async def test_stdout_and_stderr_are_streams_at_level_info(deploy: DeployBuilder) -> None:
    repo = await deploy.repo({"streams.sh": STREAMS, "long.sh": LONG})
    hosts = await deploy.hosts(1)
    done = await deploy.run(repo, hosts, ("streams.sh", []), ("long.sh", []))
    assert done["status"] == "success", done
    logs = await deploy.logs(done["id"])
    # stdout and stderr are separate channels: each stream's own order is what is certain.
    by_stream = {
        stream: [(line["level"], line["message"]) for line in logs if line["stream"] == stream]
        for stream in ("stdout", "stderr")
    }
    assert by_stream["stdout"][:4] == [
        ("INFO", "out one"),
        ("INFO", "tab\there back\\slash cr\rend"),
        ("INFO", "nul\ufffdbyte"),
        ("INFO", "out two"),
    ]
    assert by_stream["stderr"] == [("INFO", "err one"), ("INFO", "err two")]
    output = [line["message"] for line in logs if line["stream"] is not None]
    long_line = next(message for message in output if message.startswith("yyy"))
    assert long_line == "y" * 16384 + " [line truncated]"
    # Shipyard's own events keep their levels and name no stream.
    events = [line for line in logs if line["stream"] is None]
    assert any("running streams.sh" in line["message"] for line in events)
    assert all(line["level"] in {"INFO", "WARNING", "ERROR"} for line in events)
    scripts = await deploy.scripts(done["id"])
    assert "err one" in scripts[0]["output"] and "out two" in scripts[0]["output"]


async def test_a_secret_across_reads_and_in_bulk_lines_is_masked(
    deploy: DeployBuilder, database_url: str
) -> None:
    secret = canary.remember("split-secret-" + uuid.uuid4().hex, "deployment secret variable")
    repo = await deploy.repo({"split.py": SPLIT_SECRET})
    hosts = await deploy.hosts(1)
    done = await deploy.run(
        repo,
        hosts,
        ("split.py", []),
        environment=[{"name": "SPLIT_TOKEN", "value": secret, "secret": True}],
    )
    assert done["status"] == "success", done
    logs = await deploy.logs(done["id"])
    stdout = [line["message"] for line in logs if line["stream"] == "stdout"]
    assert stdout[0] == "before *** after"
    assert stdout[1:] == [f"bulk {i} *** ***" for i in range(2000)]
    assert [line["message"] for line in logs if line["stream"] == "stderr"] == ["on stderr ***"]
    half = secret[len(secret) // 2 :]
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        stored = conn.execute(
            "SELECT string_agg(message, '\n') FROM deployment_logs UNION ALL "
            "SELECT string_agg(output, '\n') FROM deployment_scripts"
        ).fetchall()
    assert secret not in str(stored) and half not in str(stored)


async def test_order_is_kept_per_stream_under_batching(deploy: DeployBuilder) -> None:
    repo = await deploy.repo({"interleaved.py": INTERLEAVED})
    hosts = await deploy.hosts(1)
    done = await deploy.run(repo, hosts, ("interleaved.py", []))
    assert done["status"] == "success", done
    logs = await deploy.logs(done["id"])
    assert [line["seq"] for line in logs] == sorted(line["seq"] for line in logs)
    for stream, expected in (
        ("stdout", [i for i in range(20000) if i % 7]),
        ("stderr", [i for i in range(20000) if i % 7 == 0]),
    ):
        numbers = [int(line["message"][2:]) for line in logs if line["stream"] == stream]
        assert numbers == expected, stream
    messages = [line["message"] for line in logs]
    running = next(i for i, m in enumerate(messages) if "running interleaved.py" in m)
    succeeded = next(i for i, m in enumerate(messages) if "interleaved.py succeeded" in m)
    first_output = next(i for i, line in enumerate(logs) if line["stream"] is not None)
    last_output = max(i for i, line in enumerate(logs) if line["stream"] is not None)
    assert running < first_output and last_output < succeeded


async def test_a_100000_line_run_stores_every_line(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo({"count.sh": COUNT})
    hosts = await deploy.hosts(1)
    started = time.monotonic()
    done = await deploy.run(repo, hosts, ("count.sh", ["100000"]), timeout=60)
    elapsed = time.monotonic() - started
    assert done["status"] == "success", done
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT message), min(message), max(message), "
            "bool_and(level = 'INFO') FROM deployment_logs "
            "WHERE deployment_id = %s AND stream = 'stdout'",
            (done["id"],),
        ).fetchone()
    assert row is not None
    count, distinct, first, last, all_info = row
    assert (count, distinct, all_info) == (100000, 100000, True)
    assert first.startswith("0000000 ") and last.startswith("0099999 ")
    assert elapsed < 30, elapsed
