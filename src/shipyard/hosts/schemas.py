"""Request and response bodies of the hosts API. Credentials are write-only."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from shipyard.hosts.environment import refusal_message
from shipyard.hosts.executor.base import HostStatus
from shipyard.outbound.masking import MIN_SECRET_LENGTH

HostType = Literal["ssh", "local"]
AuthMethod = Literal["password", "key"]

FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Unix names, Windows "DOMAIN\user" and "user@domain": no whitespace or control characters.
USER_NAME = re.compile(r"^[^\s\x00-\x1f\x7f:]{1,256}$")
# Tags: short words, safe in URLs, forms and CLI arguments.
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
MAX_TAGS = 50
MAX_VARIABLES = 200
# Worker pool names: a short lowercase slug, as typed in `shipyard worker --pool dc-east`.
POOL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")
POOL_RULE = "1-40 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit"


def check_address(value: str) -> str:
    """An IPv4/IPv6 address or a DNS host name."""
    value = value.strip()
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(value.strip("[]")))
    name = value.rstrip(".")
    if not name or len(name) > 253 or not all(HOSTNAME_LABEL.match(p) for p in name.split(".")):
        raise ValueError("must be an IP address or a host name (letters, digits, '-' and '.')")
    return name


def check_pool(value: str) -> str:
    """A worker pool name (stripped), or ValueError saying the rule."""
    value = value.strip()
    if not POOL_NAME.match(value):
        raise ValueError(f"pool {value!r} must be {POOL_RULE}")
    return value


def _pool_or_none(value: str | None) -> str | None:
    return None if value is None else check_pool(value)


# A worker pool field: null means none of its own.
PoolName = Annotated[str | None, Field(max_length=40), AfterValidator(_pool_or_none)]


def check_fingerprint(value: str) -> str:
    value = value.strip()
    if not FINGERPRINT.match(value):
        raise ValueError("must be an OpenSSH SHA256 fingerprint like 'SHA256:' + 43 base64 chars")
    return value.rstrip("=")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_tags(tags: list[str]) -> list[str]:
    """Tags stripped, checked and without repeats (first occurrence kept)."""
    seen: dict[str, None] = {}
    for raw in tags:
        tag = raw.strip()
        if not TAG.match(tag):
            raise ValueError(
                f"tag {raw!r} must be 1-63 letters, digits, '_', '.', ':' or '-', "
                "starting with a letter or digit"
            )
        seen.setdefault(tag, None)
    return list(seen)


class Variable(StrictModel):
    """A host or group variable. A secret's value is write-only: on update, a secret sent
    without ``value`` keeps the value stored under that name."""

    name: str = Field(min_length=1, max_length=200)
    # Before ``value``, so that the value's check knows whether it is a secret.
    secret: bool = False
    value: str | None = Field(default=None, max_length=65536)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        # The environment-name rules and deny-list of deployments (hosts.environment).
        refused = refusal_message(value)
        if refused is not None:
            raise ValueError(refused)
        return value

    @field_validator("value")
    @classmethod
    def _valid_value(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("name", "the variable")
        if value is None:
            return None
        if "\x00" in value:
            raise ValueError(f"the value of {name} holds a NUL character")
        if info.data.get("secret") and len(value.strip()) < MIN_SECRET_LENGTH:
            # Output is masked only for secrets of at least this length, as for deployments.
            raise ValueError(
                f"the secret value of {name} is shorter than {MIN_SECRET_LENGTH} characters, "
                "too short to be masked in logs: use a longer value or make it a plain variable"
            )
        return value


def check_variables(variables: list[Variable]) -> list[Variable]:
    names = [variable.name for variable in variables]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"variable {name} is given more than once")
    return variables


class VariableRead(BaseModel):
    """A variable as read back: a secret has ``value`` null, always."""

    name: str
    secret: bool
    value: str | None


class InventoryFields(StrictModel):
    """Tags and variables of a host; sending a list replaces the stored one."""

    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    variables: list[Variable] | None = Field(default=None, max_length=MAX_VARIABLES)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_tags(value)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: list[Variable] | None) -> list[Variable] | None:
        return None if value is None else check_variables(value)


class HostFields(InventoryFields):
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
    pool: PoolName = Field(
        default=None,
        description="Worker pool that can reach the host; null: its groups' pool, else any.",
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
    pool: str | None = None
    created_at: datetime
    updated_at: datetime
    tags: list[str] = []
    variables: list[VariableRead] = []


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


class HostGroupCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    host_ids: list[UUID] = Field(default_factory=list, max_length=10000)
    variables: list[Variable] = Field(default_factory=list, max_length=MAX_VARIABLES)
    pool: PoolName = Field(default=None, description="Worker pool that can reach its members.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: list[Variable]) -> list[Variable]:
        return check_variables(value)


class HostGroupUpdate(StrictModel):
    """Only the fields sent change; ``host_ids`` and ``variables`` replace the stored lists."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    host_ids: list[UUID] | None = Field(default=None, max_length=10000)
    variables: list[Variable] | None = Field(default=None, max_length=MAX_VARIABLES)
    pool: PoolName = Field(default=None, description="null clears it.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: list[Variable] | None) -> list[Variable] | None:
        return None if value is None else check_variables(value)


class HostGroupRead(BaseModel):
    id: UUID
    name: str
    description: str | None
    pool: str | None = None
    host_ids: list[UUID]
    variables: list[VariableRead]
    created_at: datetime
    updated_at: datetime


class Target(StrictModel):
    """The hosts listed, plus the hosts in any listed group (or, with no groups, any host)
    that carry every listed tag."""

    host_ids: list[UUID] = Field(default_factory=list, max_length=10000)
    group_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return check_tags(value)


class ImportCredentials(StrictModel):
    """What hosts an import creates log in with (Ansible inventories rarely say).

    Applied to created hosts only; a host's own ``ansible_user`` and ``ansible_password`` in
    the inventory win over these. Write-only, like every credential.
    """

    user: str | None = Field(
        default=None, max_length=256, description="For hosts without ansible_user."
    )
    auth_method: AuthMethod | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    private_key: str | None = Field(default=None, max_length=16384)
    private_key_passphrase: str | None = Field(default=None, max_length=1024)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not USER_NAME.match(value):
            raise ValueError("must not contain spaces, colons or control characters")
        return value


class InventoryImport(StrictModel):
    """An Ansible inventory file's text, INI or YAML."""

    format: Literal["ini", "yaml"]
    # Under the server's default body cap (SHIPYARD_MAX_REQUEST_BYTES, 1 MiB) with room for JSON.
    content: str = Field(min_length=1, max_length=1_000_000)
    credentials: ImportCredentials | None = None


class ImportedNames(BaseModel):
    hosts: list[str] = []
    groups: list[str] = []


class SkippedItem(BaseModel):
    """Something of the inventory left out, and why; ``owners`` say whose variable it was."""

    kind: Literal["host", "group", "variable"]
    name: str
    reason: str
    owners: list[str] = []


class InventoryImportReport(BaseModel):
    created: ImportedNames
    updated: ImportedNames
    skipped: list[SkippedItem]
