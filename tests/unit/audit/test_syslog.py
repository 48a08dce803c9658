"""The RFC 5424 message of an entry, and the masking of secrets in changes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime

from shipyard.accounts.audit import is_secret, jsonable
from shipyard.accounts.models import AuditEvent
from shipyard.audit.streaming import signature, syslog_message


def _entry(**values: object) -> AuditEvent:
    entry = AuditEvent(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        actor_profile_id=None,
        actor_email='ada "the" admin]@example.com',
        action="host.update",
        resource_type="host",
        resource_id=uuid.uuid4(),
        details={},
        changes={"name": {"before": "a", "after": "b"}},
        outcome="denied",
        ip_address=None,
        created_at=datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC),
    )
    for key, value in values.items():
        setattr(entry, key, value)
    return entry


def test_rfc5424_message() -> None:
    entry = _entry()
    message = syslog_message(entry, app_name="shipyard", hostname="ctl 1")
    header, _, body = message.partition(b"\xef\xbb\xbf")
    match = re.match(
        rb"^<108>1 2026-12-01T10:00:00Z ctl_1 shipyard - host.update \[shipyard@32473 (.*)\] $",
        header,
    )
    assert match, header
    data = match.group(1).decode()
    assert 'action="host.update"' in data and 'outcome="denied"' in data
    assert 'actor="ada \\"the\\" admin\\]@example.com"' in data
    document = json.loads(body)
    assert document["id"] == str(entry.id) and document["changes"]["name"]["after"] == "b"
    assert document["tenant_id"] == str(entry.tenant_id)


def test_secret_names_and_values() -> None:
    for name in ("password", "private_key_passphrase", "secret_parameters", "access_token"):
        assert is_secret(name)
    assert not is_secret("name") and not is_secret("port")
    assert jsonable(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert jsonable(b"raw") == "***"
    assert len(jsonable("x" * 5000)) == 2001


def test_signature() -> None:
    expected = hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    assert signature("k", b"{}") == f"sha256={expected}"
