"""Request and response bodies of the hosts API. Credentials are write-only."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.hosts.executor.base import HostStatus

HostType = Literal["ssh", "local"]
AuthMethod = Literal["password", "key"]

FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Unix names, Windows "DOMAIN\user" and "user@domain": no whitespace or control characters.
USER_NAME = re.compile(r"^[^\s\x00-\x1f\x7f:]{1,256}$")


def check_address(value: str) -> str:
    """An IPv4/IPv6 address or a DNS host name."""
    value = value.strip()
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(value.strip("[]")))
    name = value.rstrip(".")
    if not name or len(name) > 253 or not all(HOSTNAME_LABEL.match(p) for p in name.split(".")):
        raise ValueError("must be an IP address or a host name (letters, digits, '-' and '.')")
    return name


def check_fingerprint(value: str) -> str:
    value = value.strip()
    if not FINGERPRINT.match(value):
        raise ValueError("must be an OpenSSH SHA256 fingerprint like 'SHA256:' + 43 base64 chars")
    return value.rstrip("=")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HostFields(StrictModel):
    """Fields shared by create and update; credentials are accepted, never returned."""

    description: str | None = Field(default=None, max_length=2000)
    is_windows: bool | None = None
    ip: str | None = Field(default=None, max_length=253, description="IP address or host name.")
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, max_length=256)
    auth_method: AuthMethod | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    private_key: str | None = Field(
        default=None, max_length=16384, description="OpenSSH/PEM private key (ed25519, RSA, ECDSA)."
    )
    private_key_passphrase: str | None = Field(default=None, max_length=1024)
    host_key_fingerprint: str | None = Field(
        default=None,
        max_length=60,
        description="Expected host key, 'SHA256:...'; unset means trust on first use.",
    )

    @field_validator("ip")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not USER_NAME.match(value):
            raise ValueError("must not contain spaces, colons or control characters")
        return value

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else check_fingerprint(value)


class HostCreate(HostFields):
    name: str = Field(min_length=1, max_length=100)
    type: HostType = "ssh"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class HostUpdate(HostFields):
    """Only the fields sent change; sending ``null`` clears a credential or the trusted key."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    type: HostType | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None


class AcceptHostKey(StrictModel):
    fingerprint: str | None = Field(
        default=None,
        max_length=60,
        description="The pending fingerprint you checked; omitted means the pending one.",
    )

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else check_fingerprint(value)


class HostRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    description: str | None
    type: HostType
    is_windows: bool
    ip: str | None
    port: int | None
    user: str | None
    auth_method: AuthMethod | None
    has_password: bool
    has_private_key: bool
    has_private_key_passphrase: bool
    public_key: str | None
    host_key_fingerprint: str | None
    pending_host_key_fingerprint: str | None
    status: HostStatus
    status_message: str | None
    last_checked_at: datetime | None
    round_trip_ms: int | None
    os_info: str | None
    created_at: datetime
    updated_at: datetime


class HostTestRead(BaseModel):
    """The outcome of one connection test, and the host as it is now stored."""

    status: HostStatus
    message: str
    error_code: str | None
    round_trip_ms: int | None
    os_info: str | None
    presented_fingerprint: str | None
    checked_at: datetime
    host: HostRead


class HostTestsQueued(BaseModel):
    job_id: int
    hosts: int
