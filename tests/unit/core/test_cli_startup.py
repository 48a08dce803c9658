"""The command's start-up: an API command loads no database layer.

The database layer (SQLAlchemy, psycopg, Alembic, asyncssh) took half of every command's start:
4.5 s for ``shipyard --version`` on a slow machine, 2 s without it. Only the local commands
(``db``, ``user``, ``secrets``, ``backup``, ``serve``, ``worker``) load it, when they run.
"""

from __future__ import annotations

import json
import subprocess
import sys

DATABASE_LAYER = ("sqlalchemy", "psycopg", "alembic", "asyncssh", "shipyard.db")


def test_the_command_and_its_api_commands_load_no_database_layer() -> None:
    # The root command with every domain's sub-commands registered, as `shipyard hosts list`
    # has them before it runs.
    probe = (
        "import json, sys\n"
        "import shipyard.cli\n"
        f"print(json.dumps([name for name in {DATABASE_LAYER!r} if name in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout) == []
