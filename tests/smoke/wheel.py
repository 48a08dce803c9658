"""Check of the built wheel installed into a fresh venv, as ``pipx install`` would leave it.

``make wheel-check`` runs it with that venv's Python: ``VENV/bin/python -m tests.smoke.wheel WHEEL``.
The wheel must hold the package data (templates, static files, migrations with their SQL,
``py.typed``); the installed ``shipyard`` command must answer ``--version`` and ``db --help``; and
``shipyard serve`` from the installed package (run outside the checkout) must serve the log-in
page with its static files.
"""

from __future__ import annotations

import re
import sys
import time
import zipfile
from pathlib import Path

import httpx

from tests.smoke.common import cli, serve

SOURCE = Path(__file__).resolve().parents[2] / "src" / "shipyard"
DATA_SUFFIXES = (".html", ".css", ".js", ".sql", ".typed")


def check_contents(wheel: Path) -> None:
    """Every data file of the source tree, and every migration, is inside the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        "shipyard/" + path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix in DATA_SUFFIXES or path.parent.name == "versions")
    }
    assert any(name.startswith("shipyard/migrations/") and name.endswith(".sql") for name in wanted)
    assert "shipyard/py.typed" in wanted
    missing = sorted(wanted - names)
    if missing:
        raise SystemExit(f"{wheel.name} lacks {len(missing)} files: {missing[:20]}")
    print(f"{wheel.name}: {len(wanted)} data and migration files inside")


def check_installed(venv_bin: Path) -> None:
    import shipyard

    location = Path(shipyard.__file__).resolve()
    if SOURCE in location.parents or not location.is_relative_to(venv_bin.parent.resolve()):
        raise SystemExit(f"shipyard is imported from {location}, not the installed wheel")
    shipyard_cmd = venv_bin / "shipyard"
    print(cli(shipyard_cmd, "--version").strip())
    if "upgrade" not in cli(shipyard_cmd, "db", "--help"):
        raise SystemExit("shipyard db --help lists no upgrade command")
    with serve(shipyard_cmd) as base:
        # A fresh install (no account yet) sends /login on to sign-up: follow it.
        page = httpx.get(f"{base}/login", timeout=30, follow_redirects=True)
        if page.status_code != 200 or "<form" not in page.text:
            raise SystemExit(f"/login answered {page.status_code}: {page.text[:500]}")
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        if not assets:
            raise SystemExit("/login links no static file")
        for asset in assets:
            response = httpx.get(f"{base}{asset}", timeout=30)
            if response.status_code != 200 or not response.content:
                raise SystemExit(f"{asset} answered {response.status_code}")
        print(f"/login and {len(assets)} static files served from the installed package")


def main() -> None:
    (wheel,) = (Path(arg) for arg in sys.argv[1:])
    started = time.monotonic()
    check_contents(wheel)
    check_installed(Path(sys.executable).parent)
    print(f"wheel check: passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
