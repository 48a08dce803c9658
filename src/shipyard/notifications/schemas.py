"""Request and response bodies of the notifications API; one config model per channel type.

A channel's body is ``{type, name, config}``; ``config`` is checked against the type's model
below (a 422 names ``config.<field>``). Secret fields (the SMTP password, the Slack, Teams and
Discord webhook URLs, the ntfy token, the webhook's signing secret) are write-only: answers say
``has_password``/``has_url``/``has_token``/``has_secret`` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from shipyard.notifications.models import CHANNEL_TYPES, EVENTS

ChannelType = Literal["email", "slack", "teams", "discord", "ntfy", "webhook"]
ScopeType = Literal["tenant", "template", "repository"]
DeliveryStatus = Literal["pending", "retrying", "delivered", "failed"]
URL_FIELD = Field(min_length=8, max_length=2000, pattern=r"^https?://")
EVENTS_DESCRIPTION = "Any of: " + ", ".join(EVENTS) + "."


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_mode_override="validation"
    )


# --- per-type configs (input) -----------------------------------------------------------------


class EmailChannelConfig(StrictModel):
    """SMTP: sent with Python's smtplib; ``security`` starttls upgrades a plain connection,
    tls speaks TLS from the start (port 465). The server's certificate is verified (against
    ``ca_certificate`` when given, else the system's CAs)."""

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=1000, description="Write-only.")
    from_address: EmailStr = Field(alias="from")
    to: list[EmailStr] = Field(min_length=1, max_length=50)
    ca_certificate: str | None = Field(
        default=None, max_length=20000, description="PEM of a private CA to trust (optional)."
    )


class SlackChannelConfig(StrictModel):
    """A Slack incoming webhook; its URL is the credential (write-only)."""

    url: str = URL_FIELD


class TeamsChannelConfig(StrictModel):
    """A Microsoft Teams incoming webhook (write-only URL): ``adaptive`` posts an Adaptive Card
    in a ``message`` attachment (Workflows webhooks), ``message`` a legacy MessageCard
    (Office 365 connectors)."""

    url: str = URL_FIELD
    card: Literal["adaptive", "message"] = "adaptive"


class DiscordChannelConfig(StrictModel):
    """A Discord webhook (write-only URL): ``content`` plus one embed."""

    url: str = URL_FIELD


class NtfyChannelConfig(StrictModel):
    """An ntfy topic: POST of the text to ``server``/``topic`` with Title, Tags, Priority and
    Click headers; ``token`` (write-only) is sent as a bearer token."""

    server: str = Field(
        default="https://ntfy.sh", min_length=8, max_length=2000, pattern=r"^https?://"
    )
    topic: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    token: str | None = Field(default=None, max_length=1000, description="Write-only.")
    priority: int = Field(default=3, ge=1, le=5)


class WebhookChannelConfig(StrictModel):
    """A generic webhook: POST of a JSON body (the event's facts, or ``body_template`` rendered
    in a Jinja2 sandbox with them), signed: ``X-Shipyard-Signature: sha256=<hex HMAC-SHA256 of
    the raw body with secret>``. ``secret`` is generated when omitted and shown once."""

    url: str = URL_FIELD
    body_template: str | None = Field(default=None, max_length=20000)
    secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="Write-only."
    )


CONFIG_MODELS: dict[str, type[StrictModel]] = {
    "email": EmailChannelConfig,
    "slack": SlackChannelConfig,
    "teams": TeamsChannelConfig,
    "discord": DiscordChannelConfig,
    "ntfy": NtfyChannelConfig,
    "webhook": WebhookChannelConfig,
}
# Which config fields of each type are secret (kept in the encrypted secret_config).
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("password",),
    "slack": ("url",),
    "teams": ("url",),
    "discord": ("url",),
    "ntfy": ("token",),
    "webhook": ("secret",),
}
assert set(CONFIG_MODELS) == set(CHANNEL_TYPES)

CONFIG_DESCRIPTION = (
    "The type's settings: see ChannelConfigs (email: EmailChannelConfig, slack: SlackChannelConfig, teams: "
    "TeamsChannelConfig, discord: DiscordChannelConfig, ntfy: NtfyChannelConfig, webhook: WebhookChannelConfig)."
)


class ChannelConfigs(BaseModel):
    """Every channel type's config, for reference (``GET /notification-channels/types``)."""

    email: EmailChannelConfig
    slack: SlackChannelConfig
    teams: TeamsChannelConfig
    discord: DiscordChannelConfig
    ntfy: NtfyChannelConfig
    webhook: WebhookChannelConfig


def _config_schema() -> dict[str, Any]:
    return {
        "oneOf": [
            {"$ref": f"#/components/schemas/{model.__name__}"} for model in CONFIG_MODELS.values()
        ]
    }


class ChannelCreate(StrictModel):
    type: ChannelType
    name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(
        description=CONFIG_DESCRIPTION, json_schema_extra=_config_schema()
    )
    enabled: bool = True


class ChannelUpdate(StrictModel):
    """The fields sent change; in ``config`` a secret field left out (or empty) keeps its
    stored value, and ``null`` removes an optional one (an SMTP password, an ntfy token)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = Field(
        default=None, description=CONFIG_DESCRIPTION, json_schema_extra=_config_schema()
    )
    enabled: bool | None = None


class ChannelRead(BaseModel):
    id: UUID
    type: ChannelType
    name: str
    enabled: bool
    config: dict[str, Any] = Field(
        description="The plain settings, with has_<secret> booleans for the write-only ones."
    )
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelRead):
    secret: str | None = Field(
        default=None,
        description="A webhook channel's signing secret, generated when none was given: shown "
        "in this answer only.",
    )


class TestResult(BaseModel):
    """What the receiver said to a test message (``ok: false`` with the error when it
    refused or could not be reached)."""

    ok: bool
    status_code: int | None = Field(description="HTTP status, or the SMTP reply code.")
    reply: str | None = Field(description="The start of the answer's body, or the SMTP reply.")
    error: str | None
    duration_ms: int
    delivery_id: UUID


# --- rules ---------------------------------------------------------------------------------------


class Scope(StrictModel):
    type: ScopeType = "tenant"
    id: UUID | None = Field(
        default=None, description="The template or repository; none for tenant."
    )


def _check_events(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    unknown = [value for value in values if value not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event {', '.join(map(repr, unknown))}; {EVENTS_DESCRIPTION}")
    return list(dict.fromkeys(values))


class RuleCreate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    events: list[str] = Field(min_length=1, max_length=len(EVENTS), description=EVENTS_DESCRIPTION)
    scope: Scope = Field(default_factory=Scope)
    channel_id: UUID
    only_on_change: bool = Field(
        default=False,
        description="Outcome events (deployment.succeeded/failed/partial) notify only when the "
        "subject's outcome changes (success to failure or back); other events always notify.",
    )
    enabled: bool = True

    _events = field_validator("events")(_check_events)


class RuleUpdate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(EVENTS))
    scope: Scope | None = None
    channel_id: UUID | None = None
    only_on_change: bool | None = None
    enabled: bool | None = None

    _events = field_validator("events")(_check_events)


class RuleRead(BaseModel):
    id: UUID
    name: str | None
    events: list[str]
    scope: Scope
    channel_id: UUID
    only_on_change: bool
    enabled: bool
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


# --- deliveries ----------------------------------------------------------------------------------


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    started_at: datetime
    duration_ms: int | None
    succeeded: bool
    status_code: int | None
    reply: str | None
    error: str | None


class DeliveryRead(BaseModel):
    id: UUID
    channel_id: UUID
    rule_id: UUID | None
    event: str
    subject_type: str | None
    subject_id: UUID | None
    title: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptRead]
