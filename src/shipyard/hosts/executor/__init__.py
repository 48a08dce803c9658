"""Run commands and scripts on hosts: SSH (POSIX or Windows PowerShell) and the local machine.

Each process has one executor, ``runtime.executor`` (built by ``shipyard.runtime`` with
:meth:`Executor.from_settings`), so its connection caps and decrypted-key cache hold across
every deployment and host test the process runs. Usage::

    executor = runtime.executor
    async with executor.connect(target) as conn:     # one connection per host per run
        workdir = await conn.make_temp_dir()          # removed when the block exits
        path = await conn.upload(local_file, workdir)
        result = await conn.run_script(path, args=["--fast"], env={"A": "1"}, timeout=60,
                                       on_output=callback)
"""

from __future__ import annotations

from shipyard.hosts.executor.base import (
    HostConnection,
    HostTarget,
    OutputCallback,
    OutputChunk,
    OutputChunkCallback,
    OutputLine,
    ProbeResult,
    RunResult,
)
from shipyard.hosts.executor.errors import HostKeyMismatch
from shipyard.hosts.executor.executor import Executor

__all__ = [
    "Executor",
    "HostConnection",
    "HostKeyMismatch",
    "HostTarget",
    "OutputCallback",
    "OutputChunk",
    "OutputChunkCallback",
    "OutputLine",
    "ProbeResult",
    "RunResult",
]
