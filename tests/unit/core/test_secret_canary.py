"""The secret canary finds a planted secret in every encoding it travels in, and never a mask."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

from tests.support.canary import MASK, scan

ROOT = Path(__file__).resolve().parents[3]


def planted() -> str:
    return f"planted-{uuid.uuid4().hex[:12]}"


def test_a_secret_in_a_log_is_found_with_the_file_the_line_and_the_secret_masked(
    tmp_path: Path,
) -> None:
    secret = planted()
    log = tmp_path / "logs" / "python.log"
    log.parent.mkdir()
    log.write_text(f"INFO ready\nINFO asyncssh: Command: TOKEN={secret}; export TOKEN\nINFO bye\n")
    report = scan({secret: "deployment secret variable"}, [tmp_path])
    assert report.failed
    [finding] = report.findings
    assert (finding.kind, finding.encoding, finding.path, finding.line_number) == (
        "deployment secret variable",
        "raw",
        log,
        2,
    )
    assert secret not in finding.excerpt and f"TOKEN={MASK};" in finding.excerpt
    assert secret not in "\n".join(report.lines())


def test_a_masked_secret_is_not_a_finding(tmp_path: Path) -> None:
    secret = planted()
    (tmp_path / "deploy.log").write_text(f"echo {MASK}\n{MASK}\n{secret[:5]}\n")
    report = scan({secret: "deployment secret variable"}, [tmp_path])
    assert not report.failed and report.files == 1
    assert "none found" in report.summary()


def test_every_encoding_a_secret_travels_in_is_found(tmp_path: Path) -> None:
    secret = "p@ss word/" + uuid.uuid4().hex[:8]
    basic = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    (tmp_path / "access.log").write_text(
        f"GET /cb?token={urllib.parse.quote(secret, safe='')} 200\n"
        f"Authorization: Basic {basic}\n"
        f'{{"value": {json.dumps(secret + chr(34))}}}\n'
    )
    (tmp_path / "dump.tsv").write_text(f'public.blobs\t{{"v": "\\\\x{secret.encode().hex()}"}}\n')
    report = scan({secret: "git token"}, [tmp_path])
    assert {(f.path.name, f.encoding) for f in report.findings} >= {
        ("access.log", "URL-encoded"),
        ("access.log", "base64"),
        ("access.log", "raw"),
        ("dump.tsv", "hex"),
    }


def test_a_private_key_is_found_by_any_line_of_its_body(tmp_path: Path) -> None:
    import asyncssh

    key = bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key()).decode()
    body_line = key.strip().splitlines()[2]
    (tmp_path / "worker.log").write_text(f'DEBUG sent {{"private_key": "...{body_line}\\n..."}}\n')
    report = scan({key: "SSH private key"}, [tmp_path])
    assert [(f.kind, f.encoding) for f in report.findings] == [
        ("SSH private key", "line of the key")
    ]


def test_a_key_line_holding_only_the_public_half_is_found_outside_public_keys_only(
    tmp_path: Path,
) -> None:
    # The OpenSSH format carries the public key in clear: such a body line can sit inside the
    # public key Shipyard stores and shows, which is no leak.
    public_part = "QC0NaA5xprHr0x78Uy6H2NSU0tAhFaE" + uuid.uuid4().hex
    begin, end = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"
    key = "\n".join([begin, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU", public_part, end])
    public_key = f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{public_part}xyz= shipyard-test"
    (tmp_path / "hosts.tsv").write_text(f'public.hosts\t{{"public_key": "{public_key}"}}\n')
    assert not scan({key: "SSH private key"}, [tmp_path]).failed
    (tmp_path / "worker.log").write_text(f"DEBUG key body {public_part}\n")
    report = scan({key: "SSH private key"}, [tmp_path])
    assert [f.path.name for f in report.findings] == ["worker.log"]


def test_only_the_exact_file_excluded_by_design_is_excused(tmp_path: Path) -> None:
    secret = planted()
    keys = tmp_path / "secret.keys"
    keys.write_text(secret + "\n")
    (tmp_path / "secret.keys.bak").write_text(secret + "\n")
    report = scan({secret: "Fernet key"}, [tmp_path], {keys: "the key file holds the keys"})
    assert [f.path for f in report.findings] == [tmp_path / "secret.keys.bak"]
    assert any("the key file holds the keys" in note for note in report.excused)


MINI_SESSION = """
import logging
from tests.support import canary

def test_creates_a_secret_and_logs_it():
    secret = canary.remember("{secret}", "planted secret")
    logging.getLogger("shipyard.planted").info("the token is %s", secret)
"""


def run_mini_session(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """A pytest session with the suite's conftest (its canary) and one test that logs a secret."""
    secret = planted()
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    (tmp_path / "test_mini.py").write_text(MINI_SESSION.format(secret=secret))
    (tmp_path / "test_quiet.py").write_text("def test_nothing_secret():\n    pass\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:cov",
            *options,
            ".",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert secret not in result.stdout + result.stderr, "the report must not print the secret"
    return result


def test_a_session_that_logs_a_secret_fails_loudly_though_its_tests_pass(tmp_path: Path) -> None:
    result = run_mini_session(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SECRET CANARY: SECRETS LEAKED" in result.stdout
    assert "planted secret (raw) in " in result.stdout and "python.log:" in result.stdout
    assert "the token is ***" in result.stdout
    assert "2 passed, 1 leaked (secret canary)" in result.stdout


def test_a_leak_in_one_xdist_worker_fails_the_whole_run(tmp_path: Path) -> None:
    # `make pytest` runs on xdist workers: the controller searches what every worker collected.
    # One worker is enough to cross the worker-to-controller hand-over (and starts one process
    # fewer than two would).
    result = run_mini_session(tmp_path, "-n", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SECRET CANARY: SECRETS LEAKED" in result.stdout
    assert "planted secret (raw) in " in result.stdout and "python.log:" in result.stdout
    assert "2 passed, 1 leaked (secret canary)" in result.stdout
