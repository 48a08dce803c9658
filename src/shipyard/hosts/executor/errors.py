"""Errors the executor raises: one ``HostError`` code per cause a user can act on."""

from __future__ import annotations

from typing import Any

from shipyard.errors import HostError

# Refused, timed out, unreachable, or something that is not an SSH server: one code and one
# message, so a host test never tells which ports of an address are open.
CONNECTION_FAILED = "connection_failed"
# The outbound policy refuses the address (SHIPYARD_OUTBOUND_ALLOW_PRIVATE, link-local...).
OUTBOUND_REFUSED = "outbound_refused"
DNS_FAILURE = "dns_failure"
WRONG_PASSWORD = "wrong_password"
WRONG_KEY = "wrong_key"
WRONG_KEY_PASSPHRASE = "wrong_key_passphrase"
INVALID_PRIVATE_KEY = "invalid_private_key"
NO_CREDENTIALS = "no_credentials"
HOST_KEY_MISMATCH = "host_key_mismatch"
SHELL_NOT_FOUND = "shell_not_found"
CONNECTION_LOST = "connection_lost"
SSH_ERROR = "ssh_error"
FILE_TRANSFER_FAILED = "file_transfer_failed"
LOCAL_HOSTS_DISABLED = "local_hosts_disabled"

# Codes meaning the credentials (not the network) are wrong: hosts.status "auth_failed".
AUTH_CODES = frozenset(
    {WRONG_PASSWORD, WRONG_KEY, WRONG_KEY_PASSPHRASE, INVALID_PRIVATE_KEY, NO_CREDENTIALS}
)


def host_error(code: str, message: str, *, host: str, **details: Any) -> HostError:
    """A ``HostError`` whose one-line message starts with the host it is about."""
    return HostError(f"{host}: {message}", code=code, details={"host": host, **details})


class HostKeyMismatch(HostError):
    """The host presented a key other than the trusted one; nothing was sent to it."""

    code = HOST_KEY_MISMATCH

    def __init__(self, *, host: str, expected: str, presented: str) -> None:
        super().__init__(
            f"{host}: host key mismatch: expected {expected}, host presented {presented}; "
            "if the host was reinstalled, accept the new key explicitly",
            details={"host": host, "expected": expected, "presented": presented},
        )
        self.expected = expected
        self.presented = presented
