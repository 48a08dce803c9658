"""Running commands and scripts on a real sshd: output, arguments, files, reuse, caps."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

from shipyard.hosts.executor import Executor, OutputLine
from tests.support.sshd import SSHEndpoint, SSHFleet, SSHUsers


class Collector:
    def __init__(self) -> None:
        self.lines: list[OutputLine] = []
        self.arrived: list[float] = []

    async def __call__(self, line: OutputLine) -> None:
        self.lines.append(line)
        self.arrived.append(time.monotonic())

    def texts(self, stream: str) -> list[str]:
        return [line.text for line in self.lines if line.stream == stream]


async def test_command_output_exit_status_and_streams(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    out = Collector()
    async with executor.connect(ssh_endpoint.target()) as conn:
        result = await conn.run(
            "echo one; echo oops >&2; printf 'two\\r\\nthree'; exit 7", on_output=out
        )
    assert result.exit_status == 7 and not result.ok
    assert not result.timed_out and not result.cancelled
    assert out.texts("stdout") == ["one", "two", "three"]
    assert out.texts("stderr") == ["oops"]  # the PID marker line is never passed on
    assert result.stdout_lines == 3 and result.stderr_lines == 1
    assert "three" in result.tail
    for line in out.lines:
        assert result.started_at <= line.timestamp <= result.finished_at


async def test_lines_stream_as_they_arrive(executor: Executor, ssh_endpoint: SSHEndpoint) -> None:
    out = Collector()
    async with executor.connect(ssh_endpoint.target()) as conn:
        started = time.monotonic()
        result = await conn.run("echo first; sleep 1; echo second", on_output=out)
        finished = time.monotonic()
    assert result.ok
    assert out.texts("stdout") == ["first", "second"]
    # The first line was delivered while the command was still sleeping.
    assert out.arrived[0] - started < 0.8 < finished - started
    assert out.lines[1].timestamp - out.lines[0].timestamp >= timedelta(seconds=0.8)


async def test_arguments_and_environment_are_quoted(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    tricky = ["two words", "it's", '"dq"', "$HOME", "`id`", "a;b|c&", "line\nbreak", "ünï ✓", ""]
    out = Collector()
    async with executor.connect(ssh_endpoint.target()) as conn:
        result = await conn.run(
            "printf '[%s]\\n'",
            args=tricky,
            env={"GREETING": "hello $USER `id` 'q'", "EMPTY": ""},
            on_output=out,
        )
        env_result = await conn.run(
            'printf "%s|%s\\n" "$GREETING" "${EMPTY-unset}"',
            env={"GREETING": "hello $USER `id` 'q'", "EMPTY": ""},
            on_output=out,
        )
    assert result.ok and env_result.ok
    printed = "\n".join(out.texts("stdout"))
    expected = "\n".join(f"[{arg}]" for arg in tricky)
    assert printed.startswith(expected)
    assert out.texts("stdout")[-1] == "hello $USER `id` 'q'|"


async def test_upload_and_run_script_in_a_temp_dir_that_is_removed(
    executor: Executor, ssh_endpoint: SSHEndpoint, tmp_path: Path
) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text('#!/bin/sh\necho "args: $1 / $2"\necho "env: $APP_ENV"\npwd\ncat data.txt\n')
    out = Collector()
    async with executor.connect(ssh_endpoint.target()) as conn:
        workdir = await conn.make_temp_dir()
        remote = await conn.upload(script, workdir)
        await conn.upload(b"from bytes\n", workdir, "data.txt", mode=0o600)
        result = await conn.run_script(
            remote, args=["a b", "c"], env={"APP_ENV": "prod"}, cwd=workdir, on_output=out
        )
        # The sshd runs on this machine, so the remote files can be checked directly.
        assert Path(remote).stat().st_mode & 0o777 == 0o700
        assert Path(workdir, "data.txt").stat().st_mode & 0o777 == 0o600
        assert Path(workdir).owner() == ssh_endpoint.user
    assert result.ok, result.tail
    assert out.texts("stdout") == ["args: a b / c", "env: prod", workdir, "from bytes"]
    assert remote == f"{workdir}/deploy.sh"
    assert not Path(workdir).exists()


async def test_script_without_shebang_and_failing_cwd(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    out = Collector()
    async with executor.connect(ssh_endpoint.target()) as conn:
        workdir = await conn.make_temp_dir()
        path = await conn.upload(b"echo plain sh script\nexit 4\n", workdir, "plain")
        plain = await conn.run_script(path, on_output=out)
        missing = await conn.run("true", cwd="/no/such/dir", on_output=out)
    assert plain.exit_status == 4
    assert "plain sh script" in out.texts("stdout")
    assert missing.exit_status == 126
    assert any("/no/such/dir" in text for text in out.texts("stderr"))


async def test_one_connection_serves_every_command_of_a_run(
    executor: Executor, ssh_fleet: SSHFleet, ssh_endpoint: SSHEndpoint
) -> None:
    process = next(p for p in ssh_fleet.processes if ssh_endpoint.port in p.ports)
    before = process.log_path.read_text().count("Accepted password")
    async with executor.connect(ssh_endpoint.target()) as conn:
        workdir = await conn.make_temp_dir()
        for index in range(5):
            path = await conn.upload(f"echo {index}\n".encode(), workdir, f"s{index}.sh")
            assert (await conn.run_script(path)).ok
    await asyncio.sleep(0.2)  # sshd writes its log asynchronously
    assert process.log_path.read_text().count("Accepted password") - before == 1


async def test_ten_megabytes_of_output_stream_in_bounded_memory(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    count = 0
    size = 0

    async def on_output(line: OutputLine) -> None:
        nonlocal count, size
        count += 1
        size += len(line.text) + 1

    # 100,000 lines of 100 bytes, and then one 2 MB line without any newline.
    command = (
        "i=0; line=$(printf '%099d' 0); while [ $i -lt 100000 ]; do echo \"$line\"; "
        "i=$((i+1)); done; head -c 2000000 /dev/zero | tr '\\0' x"
    )
    tracemalloc.start()
    try:
        async with executor.connect(ssh_endpoint.target()) as conn:
            result = await conn.run(f"sh -c {_quote(command)} | cat", on_output=on_output)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert size == 100_000 * 100 + 2_000_000 + 31  # the long line arrives in 31 pieces
    assert count == 100_000 + 31
    assert len(result.tail) <= 16 * 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for 12 MB of output"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


async def test_bytes_that_are_not_utf8_are_replaced(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    out = Collector()
    async with executor.connect(ssh_endpoint.target()) as conn:
        result = await conn.run(
            "printf 'caf\\303\\251 \\377\\376 ok\\n'; printf 'bad \\300\\n' >&2; "
            "printf '\\342\\234\\223 done\\n'",
            on_output=out,
        )
    assert result.ok
    assert out.texts("stdout") == ["café \ufffd\ufffd ok", "✓ done"]
    assert out.texts("stderr") == ["bad \ufffd"]


async def test_per_host_cap_limits_concurrent_connections(ssh_endpoint: SSHEndpoint) -> None:
    executor = Executor(max_connections=50, max_connections_per_host=2, connect_timeout=5)
    active = 0
    highest = 0

    async def use() -> None:
        nonlocal active, highest
        async with executor.connect(ssh_endpoint.target()) as conn:
            active += 1
            highest = max(highest, active)
            await conn.run("sleep 0.3")
            active -= 1

    await asyncio.gather(*(use() for _ in range(6)))
    assert highest == 2


async def test_waiting_for_a_busy_host_does_not_block_other_hosts(
    ssh_fleet: SSHFleet,
) -> None:
    busy, other = ssh_fleet.ensure(2)
    executor = Executor(max_connections=2, max_connections_per_host=1, connect_timeout=5)
    finished: dict[str, float] = {}
    started = time.monotonic()

    async def use(name: str, endpoint: SSHEndpoint, seconds: float) -> None:
        async with executor.connect(endpoint.target()) as conn:
            await conn.run(f"sleep {seconds}")
        finished[name] = time.monotonic() - started

    first = asyncio.create_task(use("busy-1", busy, 1.5))
    await asyncio.sleep(0.3)
    queued = asyncio.create_task(use("busy-2", busy, 0.1))  # waits for busy's only slot
    await asyncio.sleep(0.1)
    await use("other", other, 0.1)
    await asyncio.gather(first, queued)
    assert finished["other"] < 1.2 < finished["busy-2"]
    assert executor.open_connections == 0


async def test_rsa_ecdsa_and_encrypted_keys_log_in(
    executor: Executor, ssh_endpoint: SSHEndpoint, ssh_users: SSHUsers
) -> None:
    for pair in (ssh_users.ed25519, ssh_users.rsa, ssh_users.ecdsa, ssh_users.encrypted):
        target = ssh_endpoint.key_target(private_key=pair.private_key, passphrase=pair.passphrase)
        async with executor.connect(target) as conn:
            result, os_info = await conn.probe_os(timeout=10)
        assert result.ok and os_info is not None and os_info.startswith("Linux")
