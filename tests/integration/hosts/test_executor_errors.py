"""Every failure a user can hit gets its own error code and a one-line message."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from shipyard.errors import HostError
from shipyard.hosts.executor import Executor, HostKeyMismatch, HostTarget
from tests.support.sshd import PrivateEndpoint, SSHEndpoint, SSHUsers, free_port, silent_ports

# glibc refuses a name longer than 253 characters before sending any DNS query, so this
# fails name resolution for real without traffic leaving the machine.
UNRESOLVABLE = ".".join(["unresolvable" + "x" * 51] * 4)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts TCP connections and never sends an SSH banner."""
    async with silent_ports(1) as ports:
        yield ports[0]


async def failure(executor: Executor, target: HostTarget) -> HostError:
    with pytest.raises(HostError) as raised:
        async with executor.connect(target) as conn:
            await conn.run("true")
    error = raised.value
    assert "\n" not in error.message
    assert error.message.startswith(target.label + ": ")
    return error


async def test_refused_port(executor: Executor, ssh_endpoint: SSHEndpoint) -> None:
    error = await failure(executor, ssh_endpoint.target(port=free_port()))
    # The same words as a timeout (below): a host test must not tell open ports from closed.
    assert error.code == "connection_failed"
    assert error.message.endswith("the connection failed or timed out")


async def test_dns_failure(executor: Executor, ssh_endpoint: SSHEndpoint) -> None:
    error = await failure(executor, ssh_endpoint.target(address=UNRESOLVABLE))
    assert error.code == "dns_failure"
    assert "cannot resolve" in error.message


async def test_connect_timeout(ssh_endpoint: SSHEndpoint, silent_port: int) -> None:
    executor = Executor(connect_timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    error = await failure(executor, ssh_endpoint.target(port=silent_port))
    assert error.code == "connection_failed"
    assert error.message.endswith("the connection failed or timed out")
    assert 0.4 < loop.time() - started < 3


async def test_wrong_password(executor: Executor, ssh_endpoint: SSHEndpoint) -> None:
    error = await failure(executor, ssh_endpoint.target(password="not-the-password"))
    assert error.code == "wrong_password"
    assert ssh_endpoint.user in error.message


async def test_wrong_key(
    executor: Executor, ssh_endpoint: SSHEndpoint, ssh_users: SSHUsers
) -> None:
    target = ssh_endpoint.key_target(private_key=ssh_users.unauthorized.private_key)
    error = await failure(executor, target)
    assert error.code == "wrong_key"
    assert "refused the private key" in error.message


async def test_wrong_and_missing_key_passphrase(
    executor: Executor, ssh_endpoint: SSHEndpoint, ssh_users: SSHUsers
) -> None:
    wrong = ssh_endpoint.key_target(
        private_key=ssh_users.encrypted.private_key, passphrase="wrong passphrase"
    )
    error = await failure(executor, wrong)
    assert error.code == "wrong_key_passphrase"
    assert "passphrase is wrong" in error.message
    missing = ssh_endpoint.key_target(private_key=ssh_users.encrypted.private_key)
    error = await failure(executor, missing)
    assert error.code == "wrong_key_passphrase"
    assert "no passphrase" in error.message


async def test_unreadable_key_and_missing_credentials(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    garbage = ssh_endpoint.key_target(private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n")
    assert (await failure(executor, garbage)).code == "invalid_private_key"
    nothing = ssh_endpoint.target(password=None)
    assert (await failure(executor, nothing)).code == "no_credentials"


async def test_expected_fingerprint_mismatch_sends_no_credentials(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    expected = "SHA256:" + "A" * 43
    error = await failure(executor, ssh_endpoint.target(expected_fingerprint=expected))
    assert isinstance(error, HostKeyMismatch)
    assert error.code == "host_key_mismatch"
    assert error.expected == expected
    assert error.presented == ssh_endpoint.host_key_fingerprint
    assert expected in error.message and ssh_endpoint.host_key_fingerprint in error.message


async def test_matching_fingerprint_connects_and_is_reported(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    target = ssh_endpoint.target(expected_fingerprint=ssh_endpoint.host_key_fingerprint)
    async with executor.connect(target) as conn:
        assert conn.host_key_fingerprint == ssh_endpoint.host_key_fingerprint
        assert (await conn.run("true")).ok


async def test_changed_host_key_is_refused(
    executor: Executor, private_sshd: PrivateEndpoint
) -> None:
    endpoint = private_sshd.endpoint
    # Trust on first use: the first connection reports the key to record.
    async with executor.connect(endpoint.target()) as conn:
        first_seen = conn.host_key_fingerprint
    assert first_seen == endpoint.host_key_fingerprint
    reinstalled = private_sshd.restart(new_host_key=True)
    assert reinstalled.host_key_fingerprint != first_seen
    error = await failure(executor, reinstalled.target(expected_fingerprint=first_seen))
    assert isinstance(error, HostKeyMismatch)
    assert error.presented == reinstalled.host_key_fingerprint
    assert first_seen in error.message and reinstalled.host_key_fingerprint in error.message


async def test_login_shell_that_runs_nothing(
    executor: Executor, ssh_endpoint: SSHEndpoint, ssh_users: SSHUsers
) -> None:
    error = await failure(executor, ssh_endpoint.target(user=ssh_users.nologin_user))
    assert error.code == "shell_not_found"
    assert "This account is currently not available" in error.message


async def test_windows_host_without_powershell(
    executor: Executor, ssh_endpoint: SSHEndpoint
) -> None:
    error = await failure(executor, ssh_endpoint.target(is_windows=True))
    assert error.code == "shell_not_found"
    assert "PowerShell" in error.message and "not found" in error.message


async def test_probe_maps_errors_to_host_statuses(
    executor: Executor, ssh_endpoint: SSHEndpoint, ssh_users: SSHUsers
) -> None:
    online = await executor.probe(ssh_endpoint.target())
    assert online.status == "online"
    assert online.os_info is not None and online.os_info.startswith("Linux")
    assert online.round_trip_ms is not None and online.round_trip_ms >= 0
    assert online.fingerprint == ssh_endpoint.host_key_fingerprint
    cases = {
        "offline": ssh_endpoint.target(port=free_port()),
        "auth_failed": ssh_endpoint.target(password="nope"),
        "host_key_mismatch": ssh_endpoint.target(expected_fingerprint="SHA256:" + "B" * 43),
        "unknown": ssh_endpoint.target(user=ssh_users.nologin_user),
    }
    for status, target in cases.items():
        result = await executor.probe(target)
        assert result.status == status, result
        assert result.error_code is not None and "\n" not in result.message


async def test_local_hosts_need_the_setting(ssh_endpoint: SSHEndpoint) -> None:
    target = HostTarget(address="localhost", port=0, type="local")
    error = await failure(Executor(allow_local=False), target)
    assert error.code == "local_hosts_disabled"


def test_unresolvable_name_is_refused_locally() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(UNRESOLVABLE, 22)
