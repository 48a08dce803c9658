"""Message rendering: the facts every channel carries, per-channel limits, the sandboxed
webhook template, the signature, the backoff."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from shipyard.notifications import messages
from shipyard.notifications.senders import sign
from shipyard.notifications.service import retry_delay

FACTS = {
    "event": "deployment.failed",
    "title": "deploy-web",
    "status": "failed",
    "triggered_by": "ada@example.com",
    "commit_sha": "0123456789abcdef0123",
    "ref": "main",
    "failed_hosts": [{"name": "web-1", "exit_code": 3, "error": None}],
    "path": "/deployments/42",
    "at": "2027-01-01T00:00:00Z",
}


def test_render_carries_every_fact_and_the_link() -> None:
    rendered = messages.render(FACTS, base_url="https://ship.example.com/")
    assert rendered.subject == "[Shipyard] deploy-web: failed"
    assert rendered.link == "https://ship.example.com/deployments/42"
    for text in (
        "Status: failed",
        "Triggered by: ada@example.com",
        "Commit: 0123456789ab (main)",
        "Failed hosts: web-1: exit code 3",
        "https://ship.example.com/deployments/42",
    ):
        assert text in rendered.text
    assert "&lt;" not in rendered.html and "web-1: exit code 3" in rendered.html
    assert rendered.tone == "bad"


def test_html_escapes_what_users_named() -> None:
    rendered = messages.render({**FACTS, "title": "<script>x</script>"}, base_url="http://x")
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_many_failed_hosts_are_cut() -> None:
    hosts = [{"name": f"h{i}", "exit_code": 1} for i in range(30)]
    lines = messages.host_lines({"failed_hosts": hosts})
    assert len(lines) == messages.MAX_HOSTS_SHOWN + 1 and lines[-1] == "... and 10 more"


def test_discord_limits_and_slack_shape() -> None:
    rendered = messages.render({**FACTS, "title": "x" * 400}, base_url="http://x")
    embed = messages.discord_payload(rendered, FACTS)["embeds"][0]
    assert len(embed["title"]) == 256 and embed["timestamp"] == FACTS["at"]
    slack = messages.slack_payload(rendered)
    assert len(slack["blocks"][0]["text"]["text"]) <= 150


def test_webhook_template_is_sandboxed() -> None:
    rendered = messages.render(FACTS, base_url="http://x")
    body = messages.webhook_body(FACTS, rendered, '{"e": {{ event | tojson }}}')
    assert json.loads(body) == {"e": "deployment.failed"}
    with pytest.raises(messages.TemplateFailed):
        messages.webhook_body(FACTS, rendered, "{{ event.__class__.__mro__ }}")
    with pytest.raises(messages.TemplateFailed):
        messages.webhook_body(FACTS, rendered, "{{ nothing_here }}")
    with pytest.raises(messages.TemplateFailed):
        messages.check_template("{% for %}")


def test_signature_and_backoff() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k" * 20, body, hashlib.sha256).hexdigest()
    assert sign("k" * 20, body) == f"sha256={expected}"
    delays = [retry_delay(n, base_seconds=60).total_seconds() for n in range(1, 8)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3840]
    assert sum(delays) < 24 * 3600  # eight attempts within a day
