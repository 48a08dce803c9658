"""Shipyard settings: one object, read from the environment (``SHIPYARD_`` prefix)."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Bounds of a retention period (log and audit): a century of days; of a run's log: a hundred
# million lines. Here, below the domains, so the settings and the APIs share them.
MAX_RETENTION_DAYS = 36500
MAX_RETENTION_LINES = 100_000_000

DEFAULT_DATA_DIR = Path("~/.local/share/shipyard")


class Settings(BaseSettings):
    """Every tunable of Shipyard; built by :func:`get_settings`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", env_file=None, extra="ignore")

    environment: Literal["development", "production", "test"] = "production"
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: SecretStr | None = None
    # The serving login for requests and jobs: a member of shipyard_app that owns nothing and has
    # no BYPASSRLS. SHIPYARD_DATABASE_URL (the owner) then runs only migrations and cross-tenant
    # system work. Unset with an external database: the owner serves too (a start-up warning).
    database_app_url: SecretStr | None = None
    # Server-side prepared statements; turn off behind PgBouncer in transaction mode before 1.21.
    database_prepared_statements: bool = True
    # Seconds a new connection to an external database may take (libpq's connect_timeout, added
    # to the URLs unless they name one): a server that does not answer fails the request or the
    # worker's statement with "the database does not answer" instead of holding it until TCP
    # gives up. libpq counts at least 2.
    database_connect_timeout_seconds: int = Field(default=10, ge=2)
    # Comma-separated Fernet keys, newest first; unset means a generated key file in data_dir.
    secret_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = "http://127.0.0.1:8000"
    # Mark browser cookies Secure even when the request looks like plain HTTP (behind a TLS proxy).
    secure_cookies: bool = False
    # Largest request body accepted (bytes); larger ones get 413 before they are read whole.
    # Routes that need more declare their own cap with shipyard.web.limits.max_request_bytes.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Inbound webhook deliveries per hook and per process: a bucket of `burst`, refilled at
    # `per_minute` (429 with Retry-After when empty), checked before the database is touched.
    webhook_rate_per_minute: int = Field(default=60, ge=1)
    webhook_rate_burst: int = Field(default=20, ge=1)

    session_token_ttl_hours: int = Field(default=24, ge=1, le=24 * 90)
    # Failed log-ins slow the next attempt (per account and per address) by
    # login_delay_base_seconds * 2^(failures - login_delay_free_failures), capped, before the
    # password is checked: the right password still works once the delay has passed. Only a
    # caller clearly hammering (these many failures in the window) gets 429 + Retry-After.
    login_max_failures_per_account: int = Field(default=100, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    login_delay_free_failures: int = Field(default=3, ge=0)
    login_delay_base_seconds: float = Field(default=0.25, ge=0)
    login_delay_max_seconds: float = Field(default=10.0, ge=0)
    # open: anyone may sign up (a new tenant each); invite: admins invite by link; closed: only
    # `shipyard user create`. Unset: open while no tenant exists, invite once one does.
    signup: Literal["open", "invite", "closed"] | None = None
    # Sign-up attempts allowed per client address within the window (then 429 + Retry-After).
    signup_max_per_address: int = Field(default=5, ge=1)
    signup_window_seconds: int = Field(default=3600, ge=1)
    invitation_ttl_hours: int = Field(default=72, ge=1, le=24 * 90)
    # Proxies whose X-Forwarded-For is believed (comma-separated CIDRs); empty: trust no header,
    # the client address is the peer's.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()

    allow_local_hosts: bool = False
    ssh_connect_timeout: float = Field(default=10.0, gt=0)
    ssh_max_connections: int = Field(default=400, ge=1)
    ssh_max_connections_per_host: int = Field(default=4, ge=1)
    # SSH handshakes (TCP, key exchange, authentication) in progress at once. The connect
    # time-out runs from the moment a handshake may start: hundreds started together share the
    # CPU and all finish late, so a large fleet would otherwise time out in waves.
    ssh_max_handshakes: int = Field(default=128, ge=1)
    host_test_concurrency: int = Field(default=50, ge=1)

    git_sync_interval_minutes: int = Field(default=60, ge=0)
    git_page_concurrency: int = Field(default=8, ge=1)
    git_clone_cache_dir: Path | None = None
    git_clone_timeout_seconds: float = Field(default=300.0, gt=0)
    # Rate limits are waited out, never failed on: the longest single wait and a sync's total.
    git_rate_limit_max_wait_seconds: float = Field(default=900.0, ge=0)
    git_rate_limit_total_wait_seconds: float = Field(default=3600.0, ge=0)
    # First back-off when a limited response names no time (GitHub asks for at least a minute).
    git_rate_limit_backoff_seconds: float = Field(default=60.0, ge=0)
    git_browse_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    git_file_max_bytes: int = Field(default=1024 * 1024, ge=1)
    git_oauth_state_ttl_seconds: int = Field(default=600, ge=30)
    http_timeout: float = Field(default=20.0, gt=0)

    cicd_sync_interval_minutes: int = Field(default=60, ge=0)
    cicd_poll_interval_seconds: float = Field(default=2.0, gt=0)
    cicd_queue_timeout_seconds: float = Field(default=600.0, gt=0)
    # How long provider timeouts, 5xx and rate limits are retried (with backoff) before failing.
    cicd_retry_seconds: float = Field(default=120.0, ge=0)
    cicd_build_timeout_seconds: float = Field(default=6 * 3600.0, gt=0)
    # After aborting a build, how long to wait for the provider to report it stopped.
    cicd_cancel_grace_seconds: float = Field(default=60.0, gt=0)

    worker_concurrency: int = Field(default=50, ge=1)
    worker_poll_interval_seconds: float = Field(default=0.5, gt=0)
    # Also how quickly a running deployment notices a cancel request.
    worker_heartbeat_seconds: float = Field(default=1.0, gt=0)
    worker_lost_after_seconds: float = Field(default=30.0, gt=0)
    # On SIGTERM (or Ctrl-C) a worker takes no new jobs and lets running scripts finish for this
    # long; then it stops their remote processes and marks the deployments `interrupted`.
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # A worker whose job engine stops (the database went away) is restarted with backoff; a
    # standalone `shipyard worker` gives up and exits non-zero after failing this long in a row
    # (the worker inside `serve` never gives up).
    worker_give_up_after_seconds: float = Field(default=300.0, gt=0)
    worker_restart_max_backoff_seconds: float = Field(default=30.0, gt=0)
    # Worker pools this worker serves besides unpooled work (comma-separated; `worker --pool`).
    worker_pools: str = ""
    # A run's part for a pool stays waiting this long; then, with no live worker of the pool,
    # its hosts fail ("no worker of pool X is running").
    pool_worker_wait_seconds: float = Field(default=60.0, gt=0)
    # /readyz answers 503 when no worker has sent a heartbeat for this long (0: do not check).
    readiness_worker_max_age_seconds: float = Field(default=60.0, ge=0)

    password_hash_memory_kib: int = Field(default=65536, ge=1024)
    # Hashes running at once per process; more log-ins wait their turn instead of starving it.
    password_hash_concurrency: int = Field(default=4, ge=1)
    user_agent: str = "Shipyard"

    # Outbound policy (git, CI/CD, SSH; see shipyard.outbound.policy). Link-local and cloud
    # metadata addresses are always refused. Loopback and private ranges are allowed for a
    # single-team install; a shared install sets this false. SHIPYARD_OUTBOUND_ALLOW lists
    # exceptions: comma-separated CIDRs, addresses and host names ("*.corp.example" for a domain).
    outbound_allow_private: bool = True
    outbound_allow: str = ""

    # outbound HTTP
    # How long Git provider requests retry connection failures, timeouts and 5xx (with backoff);
    # CI/CD providers use cicd_retry_seconds, which allows for a server restarting.
    http_retry_seconds: float = Field(default=3.0, ge=0)
    # How long a CircleCI workflow may wait on an approval job before the step fails.
    cicd_approval_timeout_seconds: float = Field(default=3600.0, gt=0)
    # A CI/CD provider whose sync keeps failing is retried after this many minutes, doubled per
    # consecutive failure up to cicd_sync_interval_minutes (never sooner than this).
    cicd_sync_retry_minutes: float = Field(default=5.0, gt=0)

    # notifications (issue 15): a failed delivery is retried after base * 2^(attempt-1) seconds,
    # at most 8 attempts (about two hours at the default base); then the delivery is `failed`.
    notification_retry_base_seconds: float = Field(default=60.0, gt=0)
    notification_max_attempts: int = Field(default=8, ge=1, le=8)
    # How long one delivery attempt (SMTP conversation or HTTP request) may take.
    notification_timeout_seconds: float = Field(default=15.0, gt=0)

    # audit (issue 15): entries older than this many days are deleted daily (a tenant may set
    # its own period); streams send new entries every few seconds (at least once), holding
    # back those younger than audit_stream_settle_seconds (a transaction still committing).
    audit_retention_days: int = Field(default=365, ge=1)
    # Log retention (issue 17): the installation's policy for a tenant that sets none of its
    # own (a tenant's own days or lines win); None: keep. Applied by the nightly prune.
    log_retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    log_retention_lines: int | None = Field(default=None, ge=1, le=MAX_RETENTION_LINES)
    audit_stream_settle_seconds: float = Field(default=2.0, ge=0)
    audit_stream_batch: int = Field(default=500, ge=1)

    log_level: str = "INFO"
    # One format for every line every process writes: "text", or "json" (one object per line).
    log_format: Literal["text", "json"] = "text"

    # metrics (/metrics, Prometheus text format)
    # When set, /metrics answers 401 unless sent "Authorization: Bearer <token>".
    metrics_token: SecretStr | None = None
    # A standalone worker serves its own /metrics on this port (0: not at all) and host.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.secret_key is not None and not self.secret_key.get_secret_value().strip():
            raise ValueError("SHIPYARD_SECRET_KEY is set but empty; unset it or give a key")
        if self.database_app_url is not None and self.database_url is None:
            raise ValueError(
                "SHIPYARD_DATABASE_APP_URL needs SHIPYARD_DATABASE_URL (the owner's login); "
                "the embedded database makes its own serving login"
            )
        return self

    @property
    def is_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def clone_cache_dir(self) -> Path:
        return self.git_clone_cache_dir or self.data_dir / "git-cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, built once from the environment."""
    return Settings()
