"""Sending one message to one channel: SMTP (smtplib in a thread) or an HTTP POST.

Every address obeys the outbound policy at send time too: HTTP goes through the runtime's
client (its transport checks each connection), SMTP connects only to an address the policy
checked (TLS still verifies the host name). Nothing here raises for the receiver's answer: a
:class:`SendResult` says what it said, or why it could not be reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from shipyard.notifications import messages
from shipyard.outbound.errors import OutboundRefused
from shipyard.outbound.masking import Masker
from shipyard.outbound.policy import OutboundPolicy

REPLY_EXCERPT = 500
SIGNATURE_HEADER = "X-Shipyard-Signature"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    reply: str | None = None
    error: str | None = None
    duration_ms: int = 0


@dataclass(frozen=True)
class Target:
    """A channel as the sender needs it: type, plain config and decrypted secrets."""

    type: str
    config: dict[str, Any]
    secrets: dict[str, str]

    def masker(self) -> Masker:
        return Masker(self.secrets.values())


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``: the webhook's signature header value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _ntfy_url(config: dict[str, Any]) -> str:
    return str(config.get("server", "https://ntfy.sh")).rstrip("/") + "/" + str(config["topic"])


def http_request(
    target: Target, facts: dict[str, Any], *, base_url: str
) -> tuple[str, bytes, dict[str, str]]:
    """The URL, raw body and headers of an HTTP channel's message."""
    rendered = messages.render(facts, base_url=base_url)
    headers = {"Content-Type": "application/json"}
    if target.type == "slack":
        body = json.dumps(messages.slack_payload(rendered)).encode()
        return target.secrets["url"], body, headers
    if target.type == "teams":
        payload = messages.teams_payload(rendered, card=str(target.config.get("card", "adaptive")))
        return target.secrets["url"], json.dumps(payload).encode(), headers
    if target.type == "discord":
        body = json.dumps(messages.discord_payload(rendered, facts)).encode()
        return target.secrets["url"], body, headers
    if target.type == "ntfy":
        body, headers = messages.ntfy_request(
            rendered, priority=int(target.config.get("priority", 3))
        )
        if target.secrets.get("token"):
            headers["Authorization"] = f"Bearer {target.secrets['token']}"
        return _ntfy_url(target.config), body, headers
    if target.type == "webhook":
        body = messages.webhook_body(facts, rendered, target.config.get("body_template"))
        headers[SIGNATURE_HEADER] = sign(target.secrets["secret"], body)
        headers["X-Shipyard-Event"] = str(facts.get("event", ""))
        return str(target.config["url"]), body, headers
    raise ValueError(f"not an HTTP channel type: {target.type}")


async def send_http(
    target: Target,
    facts: dict[str, Any],
    *,
    http: httpx.AsyncClient,
    base_url: str,
    timeout_seconds: float,
) -> SendResult:
    masker = target.masker()
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        url, body, headers = http_request(target, facts, base_url=base_url)
    except messages.TemplateFailed as exc:
        return SendResult(ok=False, error=masker(str(exc)), duration_ms=elapsed())
    try:
        response = await http.post(url, content=body, headers=headers, timeout=timeout_seconds)
    except OutboundRefused as exc:
        return SendResult(ok=False, error=masker(exc.message), duration_ms=elapsed())
    except httpx.TimeoutException:
        return SendResult(
            ok=False, error=f"no answer within {timeout_seconds:g} s", duration_ms=elapsed()
        )
    except httpx.HTTPError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OutboundRefused):
            return SendResult(ok=False, error=masker(cause.message), duration_ms=elapsed())
        reason = str(exc) or type(exc).__name__
        return SendResult(
            ok=False, error=masker(f"cannot reach the receiver: {reason}"), duration_ms=elapsed()
        )
    excerpt = masker(response.text[:REPLY_EXCERPT])
    ok = 200 <= response.status_code < 300
    return SendResult(
        ok=ok,
        status_code=response.status_code,
        reply=excerpt,
        error=None if ok else f"the receiver answered HTTP {response.status_code}",
        duration_ms=elapsed(),
    )


class _Checked:
    """Connects to the address the policy checked, not a fresh lookup (``_host`` stays the
    name, so TLS verifies the name), and keeps the server's reply to DATA."""

    checked_address: str = ""
    _host: str = ""
    data_reply: tuple[int, bytes] = (0, b"")

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(self.checked_address or host, port, timeout)  # type: ignore[misc,no-any-return]

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.data_reply = super().data(msg)  # type: ignore[misc]
        return self.data_reply


class _CheckedSMTP(_Checked, smtplib.SMTP):
    pass


class _CheckedSMTPSSL(_Checked, smtplib.SMTP_SSL):
    pass


def _tls_context(config: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if config.get("ca_certificate"):
        context.load_verify_locations(cadata=str(config["ca_certificate"]))
    return context


def _smtp_send(
    config: dict[str, Any],
    password: str | None,
    message: EmailMessage,
    address: str,
    timeout_seconds: float,
) -> tuple[int, str]:
    host, port, security = str(config["host"]), int(config["port"]), config.get("security")
    context = _tls_context(config)
    client: _CheckedSMTP | _CheckedSMTPSSL
    if security == "tls":
        client = _CheckedSMTPSSL(timeout=timeout_seconds, context=context)
    else:
        client = _CheckedSMTP(timeout=timeout_seconds)
    client.checked_address = address
    # smtplib verifies STARTTLS against the name given to the constructor (which would also
    # connect at once, to a fresh lookup): set it here, connect to the checked address below.
    client._host = host
    with client:
        client.connect(host, port)
        client.ehlo()
        if security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if config.get("username"):
            client.login(str(config["username"]), password or "")
        refused = client.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = client.data_reply
        return code, reply.decode(errors="replace")


async def send_email(
    target: Target,
    facts: dict[str, Any],
    *,
    policy: OutboundPolicy,
    base_url: str,
    timeout_seconds: float,
) -> SendResult:
    config = target.config
    masker = target.masker()
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        addresses = await policy.check_host(str(config["host"]), int(config["port"]))
    except OutboundRefused as exc:
        return SendResult(ok=False, error=exc.message, duration_ms=elapsed())
    except OSError as exc:
        return SendResult(
            ok=False, error=f"cannot resolve {config['host']}: {exc}", duration_ms=elapsed()
        )
    rendered = messages.render(facts, base_url=base_url)
    message = messages.email_message(
        rendered, sender=str(config["from"]), recipients=[str(to) for to in config["to"]]
    )
    try:
        code, reply = await asyncio.to_thread(
            _smtp_send,
            config,
            target.secrets.get("password"),
            message,
            str(addresses[0]),
            timeout_seconds,
        )
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return SendResult(
            ok=False,
            status_code=exc.smtp_code,
            reply=masker(text[:REPLY_EXCERPT]),
            error=masker(f"the SMTP server answered {exc.smtp_code} {text}"[:REPLY_EXCERPT]),
            duration_ms=elapsed(),
        )
    except smtplib.SMTPRecipientsRefused as exc:
        return SendResult(
            ok=False,
            error=masker(f"recipients refused: {exc.recipients}")[:REPLY_EXCERPT],
            duration_ms=elapsed(),
        )
    except (smtplib.SMTPException, ssl.SSLError, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        return SendResult(
            ok=False,
            error=masker(f"SMTP to {config['host']}:{config['port']} failed: {reason}"),
            duration_ms=elapsed(),
        )
    return SendResult(
        ok=True, status_code=code, reply=masker(reply[:REPLY_EXCERPT]), duration_ms=elapsed()
    )


async def send(
    target: Target,
    facts: dict[str, Any],
    *,
    http: httpx.AsyncClient,
    policy: OutboundPolicy,
    base_url: str,
    timeout_seconds: float,
) -> SendResult:
    """Send ``facts`` to ``target``; what the receiver answered, never an exception for it."""
    if target.type == "email":
        return await send_email(
            target, facts, policy=policy, base_url=base_url, timeout_seconds=timeout_seconds
        )
    return await send_http(
        target, facts, http=http, base_url=base_url, timeout_seconds=timeout_seconds
    )
