"""The systemd units in deploy/systemd pass ``systemd-analyze verify`` and stay hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.config import Settings
from shipyard.worker import SHUTDOWN_MARGIN_SECONDS

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
INSTALLED_COMMAND = "/opt/shipyard/venv/bin/shipyard"
# `systemd-analyze security` exposure, in tenths (0 best, 100 worst): both units score 32.
MAX_EXPOSURE = "40"
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/shipyard",
    "PrivateTmp=yes",
    "User=shipyard",
    "KillSignal=SIGTERM",
)

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze missing: `make system-deps` installs Debian's systemd package",
)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The units as installed, pointing at this checkout's `shipyard` (verify checks it runs)."""
    root = tmp_path_factory.mktemp("units")
    command = str(Path(sys.executable).with_name("shipyard"))
    copies = {}
    for name, installed in (
        ("shipyard.service", "shipyard.service"),
        ("shipyard-worker@.service", "shipyard-worker@1.service"),
    ):
        text = (UNITS / name).read_text()
        assert INSTALLED_COMMAND in text
        copies[name] = root / installed
        copies[name].write_text(text.replace(INSTALLED_COMMAND, command))
    return copies


@pytest.mark.parametrize("name", ["shipyard.service", "shipyard-worker@.service"])
def test_unit_verifies_cleanly_and_is_hardened(units: dict[str, Path], name: str) -> None:
    unit = units[name]
    verified = analyze("verify", str(unit))
    # verify exits 0 on unknown keys and bad values, only saying so: any output is a failure.
    assert verified.returncode == 0 and verified.stderr == "" and verified.stdout == "", (
        verified.stderr
    )
    text = unit.read_text()
    for line in HARDENING:
        assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), line
    security = analyze("security", "--offline=true", f"--threshold={MAX_EXPOSURE}", str(unit))
    assert security.returncode == 0, security.stdout[-400:]


def test_worker_stop_timeout_outlasts_the_drain(units: dict[str, Path]) -> None:
    text = units["shipyard-worker@.service"].read_text()
    match = re.search(r"^TimeoutStopSec=(\d+)s$", text, re.MULTILINE)
    assert match is not None
    grace = Settings.model_fields["worker_shutdown_grace_seconds"].default
    assert int(match.group(1)) > grace + SHUTDOWN_MARGIN_SECONDS
    assert (
        "shipyard worker" in text and "serve --no-worker" in units["shipyard.service"].read_text()
    )


def test_verify_reports_a_mistake(units: dict[str, Path], tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    broken = tmp_path / "broken.service"
    broken.write_text(units["shipyard.service"].read_text().replace("KillMode=", "KilMode="))
    assert "Unknown key 'KilMode'" in analyze("verify", str(broken)).stderr
