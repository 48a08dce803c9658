"""A delivery's facts rendered per channel: plain text and HTML mail, Slack blocks, Teams cards,
Discord embeds, ntfy headers, the generic webhook's JSON (or its sandboxed template).

Pure functions: the facts are what ``emit`` stored in the delivery's ``message``; the link is
made here from ``SHIPYARD_BASE_URL`` and the page's path.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

EVENT_LABELS = {
    "deployment.started": "started",
    "deployment.succeeded": "succeeded",
    "deployment.failed": "failed",
    "deployment.partial": "partially failed",
    "deployment.cancelled": "cancelled",
    "schedule.missed": "scheduled run not started",
    "approval.requested": "approval requested",
    "approval.approved": "approved",
    "approval.rejected": "rejected",
    "host.offline": "host offline",
    "host.key_changed": "host key changed",
    "provider.sync_failed": "provider sync failed",
    "test": "test message",
}
# Good news, bad news, or neither: colours and tags follow.
GOOD = frozenset({"deployment.succeeded", "approval.approved", "test"})
BAD = frozenset(
    {
        "deployment.failed",
        "deployment.partial",
        "schedule.missed",
        "approval.rejected",
        "host.offline",
        "host.key_changed",
        "provider.sync_failed",
    }
)
COLOURS = {"good": 0x2EB67D, "bad": 0xE01E5A, "neutral": 0x4A90D9}
NTFY_TAGS = {"good": "white_check_mark", "bad": "rotating_light", "neutral": "information_source"}
MAX_HOSTS_SHOWN = 20


class TemplateFailed(Exception):
    """The webhook's body template cannot be rendered (a user's template: shown, not logged)."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    fields: list[tuple[str, str]]
    link: str | None
    tone: str


def link_for(facts: dict[str, Any], base_url: str) -> str | None:
    path = facts.get("path")
    if not path:
        return None
    return base_url.rstrip("/") + "/" + str(path).lstrip("/")


def tone(event: str) -> str:
    return "good" if event in GOOD else "bad" if event in BAD else "neutral"


def host_lines(facts: dict[str, Any]) -> list[str]:
    hosts: list[dict[str, Any]] = facts.get("failed_hosts") or []
    lines = []
    for host in hosts[:MAX_HOSTS_SHOWN]:
        line = str(host.get("name"))
        if host.get("exit_code") is not None:
            line += f": exit code {host['exit_code']}"
        if host.get("error"):
            line += f" ({host['error']})"
        lines.append(line)
    if len(hosts) > MAX_HOSTS_SHOWN:
        lines.append(f"... and {len(hosts) - MAX_HOSTS_SHOWN} more")
    return lines


def render(facts: dict[str, Any], *, base_url: str) -> Rendered:
    """The message's parts every channel builds on."""
    event = str(facts.get("event", ""))
    label = EVENT_LABELS.get(event, event)
    title = str(facts.get("title") or event)
    subject = f"[Shipyard] {title}: {label}"
    fields: list[tuple[str, str]] = [("Event", event)]
    if facts.get("status"):
        fields.append(("Status", str(facts["status"])))
    if facts.get("triggered_by"):
        fields.append(("Triggered by", str(facts["triggered_by"])))
    if facts.get("commit_sha") or facts.get("ref"):
        commit = str(facts.get("commit_sha") or "")[:12]
        ref = facts.get("ref")
        fields.append(("Commit", f"{commit} ({ref})" if commit and ref else commit or str(ref)))
    hosts = host_lines(facts)
    if hosts:
        fields.append(("Failed hosts", "\n".join(hosts)))
    if facts.get("detail"):
        fields.append(("Detail", str(facts["detail"])))
    link = link_for(facts, base_url)
    text_lines = [f"{title}: {label}", ""]
    for name, value in fields:
        if "\n" in value:
            text_lines.append(f"{name}:")
            text_lines.extend(f"  - {line}" for line in value.splitlines())
        else:
            text_lines.append(f"{name}: {value}")
    if link:
        text_lines += ["", link]
    rows = "".join(
        f"<tr><th align='left' valign='top'>{html.escape(name)}</th>"
        f"<td>{html.escape(value).replace(chr(10), '<br>')}</td></tr>"
        for name, value in fields
    )
    link_html = f"<p><a href='{html.escape(link)}'>{html.escape(link)}</a></p>" if link else ""
    body_html = (
        f"<html><body><h2>{html.escape(title)}: {html.escape(label)}</h2>"
        f"<table>{rows}</table>{link_html}</body></html>"
    )
    return Rendered(
        subject=subject,
        text="\n".join(text_lines) + "\n",
        html=body_html,
        fields=fields,
        link=link,
        tone=tone(event),
    )


def email_message(
    rendered: Rendered, *, sender: str, recipients: list[str], domain: str | None = None
) -> EmailMessage:
    """Subject, plain text with an HTML alternative; From, To, Date and Message-ID."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain or sender.rpartition("@")[2] or None)
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def slack_payload(rendered: Rendered) -> dict[str, Any]:
    """``text`` (the notification's fallback) and ``blocks`` (Block Kit)."""
    facts = "\n".join(
        f"*{name}:* {value}"
        if "\n" not in value
        else f"*{name}:*\n• " + value.replace("\n", "\n• ")
        for name, value in rendered.fields
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": rendered.subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": facts[:3000]}},
    ]
    if rendered.link:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{rendered.link}|Open in Shipyard>"},
            }
        )
    text = rendered.subject + (f" {rendered.link}" if rendered.link else "")
    return {"text": text, "blocks": blocks}


def teams_payload(rendered: Rendered, *, card: str) -> dict[str, Any]:
    """An Adaptive Card in a ``message`` attachment, or a legacy MessageCard."""
    if card == "message":
        section: dict[str, Any] = {
            "activityTitle": rendered.subject,
            "facts": [{"name": name, "value": value} for name, value in rendered.fields],
        }
        payload: dict[str, Any] = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": rendered.subject,
            "themeColor": f"{COLOURS[rendered.tone]:06X}",
            "title": rendered.subject,
            "sections": [section],
        }
        if rendered.link:
            payload["potentialAction"] = [
                {
                    "@type": "OpenUri",
                    "name": "Open in Shipyard",
                    "targets": [{"os": "default", "uri": rendered.link}],
                }
            ]
        return payload
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": rendered.subject,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": {"good": "Good", "bad": "Attention"}.get(rendered.tone, "Default"),
            },
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in rendered.fields],
            },
        ],
    }
    if rendered.link:
        content["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open in Shipyard", "url": rendered.link}
        ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": content,
            }
        ],
    }


def discord_payload(rendered: Rendered, facts: dict[str, Any]) -> dict[str, Any]:
    """``content`` plus one embed (Discord's limits: 256-character title, 25 fields of 1024)."""
    embed: dict[str, Any] = {
        "title": rendered.subject[:256],
        "color": COLOURS[rendered.tone],
        "fields": [
            {"name": name[:256], "value": value[:1024], "inline": "\n" not in value}
            for name, value in rendered.fields[:25]
        ],
    }
    if rendered.link:
        embed["url"] = rendered.link
    if facts.get("at"):
        embed["timestamp"] = facts["at"]
    return {"content": rendered.subject[:2000], "embeds": [embed]}


def ntfy_request(rendered: Rendered, *, priority: int) -> tuple[bytes, dict[str, str]]:
    """The body (the plain text) and ntfy's headers: Title, Tags, Priority, Click."""
    headers = {
        "Title": rendered.subject.encode("ascii", "replace").decode(),
        "Tags": NTFY_TAGS[rendered.tone],
        "Priority": str(priority),
        "Content-Type": "text/plain; charset=utf-8",
    }
    if rendered.link:
        headers["Click"] = rendered.link
    return rendered.text.encode(), headers


def webhook_facts(facts: dict[str, Any], rendered: Rendered) -> dict[str, Any]:
    """What the generic webhook's JSON carries (and its template sees)."""
    return {
        "event": facts.get("event"),
        "title": facts.get("title"),
        "subject": rendered.subject,
        "status": facts.get("status"),
        "triggered_by": facts.get("triggered_by"),
        "commit_sha": facts.get("commit_sha"),
        "ref": facts.get("ref"),
        "failed_hosts": facts.get("failed_hosts") or [],
        "detail": facts.get("detail"),
        "link": rendered.link,
        "subject_type": facts.get("subject_type"),
        "subject_id": facts.get("subject_id"),
        "template_id": facts.get("template_id"),
        "repository_id": facts.get("repository_id"),
        "at": facts.get("at"),
        "text": rendered.text,
        **({"extra": facts["extra"]} if facts.get("extra") else {}),
    }


_SANDBOX = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_SANDBOX.filters["tojson"] = lambda value: json.dumps(value)


def check_template(source: str) -> None:
    """Raise :class:`TemplateFailed` when ``source`` does not parse."""
    try:
        _SANDBOX.parse(source)
    except TemplateError as exc:
        raise TemplateFailed(str(exc)) from exc


def webhook_body(facts: dict[str, Any], rendered: Rendered, template: str | None) -> bytes:
    """The raw body the signature covers: the facts as JSON, or the template rendered (in a
    sandbox: no attribute access to Python internals) with them."""
    values = webhook_facts(facts, rendered)
    if not template:
        return json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    try:
        return _SANDBOX.from_string(template).render(**values).encode()
    except TemplateError as exc:
        raise TemplateFailed(f"the body template failed: {exc}") from exc
    except Exception as exc:  # a sandbox refusal or a type error inside the user's template
        raise TemplateFailed(f"the body template failed: {type(exc).__name__}: {exc}") from exc
