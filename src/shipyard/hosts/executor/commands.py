"""Command lines for POSIX shells and Windows PowerShell: quoting, env files, cwd, the PID marker.

Every command run over SSH first reports the PID of the shell that runs it on stderr (the
marker line, never passed to callers). sshd starts each session in its own session and
process group, so that PID is also the process group to kill on timeout or cancellation.

Environment values never appear on a command line (asyncssh logs every command, and the
host's process list shows it): they travel in a file of their own (:func:`posix_env_file`,
:func:`powershell_env_file`), which the command line names and the wrapper reads and removes.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shlex
from collections.abc import Mapping, Sequence

PID_MARKER = "__SHIPYARD_PID__"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# cmd.exe (the default shell of OpenSSH on Windows) refuses longer command lines.
WINDOWS_MAX_COMMAND = 8191
POWERSHELL = "powershell -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand"
# PowerShell treats these as single quotes too, so each must be doubled inside a literal.
_PS_SINGLE_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def check_env(env: Mapping[str, str] | None) -> None:
    """Refuse names a shell cannot export and values an environment cannot hold (NUL)."""
    for name, value in (env or {}).items():
        if not ENV_NAME.match(name):
            raise ValueError(
                f"environment variable name {name!r} is not valid "
                "(letters, digits and underscores, not starting with a digit)"
            )
        if "\x00" in value:
            raise ValueError(f"environment variable {name} holds a NUL character")


def parse_pid_marker(line: str) -> int | None:
    """The PID in a marker line, or None when ``line`` is ordinary output."""
    if not line.startswith(PID_MARKER + " "):
        return None
    value = line[len(PID_MARKER) + 1 :].strip()
    return int(value) if value.isdigit() else None


# POSIX ------------------------------------------------------------------------------------


def posix_quote(value: str) -> str:
    return shlex.quote(value)


def posix_command(
    code: str,
    *,
    args: Sequence[str] = (),
    env_file: str | None = None,
    cwd: str | None = None,
    marker: bool = True,
    exec_: bool = False,
) -> str:
    """Shell code for ``sh -c``: marker, ``cd``, the env file, then ``code`` with ``args`` quoted.

    ``env_file`` (from :func:`posix_env_file`) is sourced and removed at once, before the
    command starts. With ``exec_`` the last line replaces the shell (used for scripts, so the
    process keeps the marker's PID).
    """
    lines = []
    if marker:
        lines.append(f"printf '%s %s\\n' {PID_MARKER} \"$$\" >&2")
    if cwd:
        lines.append(f"cd -- {posix_quote(cwd)} || exit 126")
    if env_file:
        quoted = posix_quote(env_file)
        lines.append(f". {quoted} || exit 126")
        lines.append(f"rm -f -- {quoted}")
    quoted_args = " ".join(posix_quote(arg) for arg in args)
    last = f"{code} {quoted_args}" if quoted_args else code
    lines.append(f"exec {last}" if exec_ else last)
    return "\n".join(lines)


def posix_script(
    path: str,
    *,
    args: Sequence[str] = (),
    env_file: str | None = None,
    cwd: str | None = None,
    marker: bool = True,
) -> str:
    return posix_command(
        posix_quote(path), args=args, env_file=env_file, cwd=cwd, marker=marker, exec_=True
    )


def posix_env_file(env: Mapping[str, str]) -> bytes:
    """The body of an env file for ``.`` (sh): one quoted assignment and export per variable."""
    check_env(env)
    lines = [f"{name}={posix_quote(value)}\nexport {name}\n" for name, value in env.items()]
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def posix_kill(pid: int, *, grace_seconds: float) -> str:
    """Signal the process group ``pid`` with TERM, then KILL if it outlives the grace period.

    A killed process may stay a zombie until something reaps it, so "still running" means a
    member of the group that is not a zombie (``ps`` is asked when there is one).
    """
    steps = max(1, int(grace_seconds * 10))
    group = int(pid)
    # "kill -SIG -PGID" without "--": dash's kill builtin does not accept "--".
    return (
        f"kill -TERM -{group} 2>/dev/null || exit 0\n"
        "running() {\n"
        f"  kill -0 -{group} 2>/dev/null || return 1\n"
        "  command -v ps >/dev/null 2>&1 || return 0\n"
        f"  ps -A -o pgid= -o stat= | awk '$1 == {group} && $2 !~ /^Z/ {{ found = 1 }} "
        "END { exit !found }'\n"
        "}\n"
        f"i=0; while running && [ $i -lt {steps} ]; do sleep 0.1; i=$((i+1)); done\n"
        f"kill -KILL -{group} 2>/dev/null; exit 0"
    )


POSIX_MAKE_TEMP_DIR = 'mktemp -d "${TMPDIR:-/tmp}/shipyard.XXXXXXXXXX"'
POSIX_PROBE = "uname -srm"
# Where SSH connections create their temporary directories through SFTP (one mkdir, no shell):
# SFTP cannot expand ${TMPDIR:-/tmp}, so the default of POSIX_MAKE_TEMP_DIR is used as is.
# Safe in a shared /tmp: an exclusive mkdir of an unguessable name, mode 0700.
POSIX_TEMP_ROOT = "/tmp"  # noqa: S108


def posix_temp_dir_path(root: str = POSIX_TEMP_ROOT) -> str:
    """A fresh, unguessable directory path under ``root`` (80 random bits, like mktemp's name).

    Creating it with one SFTP mkdir is exclusive: mkdir(2) fails when the name exists, even as
    a symbolic link, so nobody can hand us a directory of theirs under that name.
    """
    return f"{root.rstrip('/')}/shipyard.{secrets.token_hex(10)}"


def posix_remove_dirs(paths: Sequence[str]) -> str:
    return "rm -rf -- " + " ".join(posix_quote(path) for path in paths)


# Windows PowerShell --------------------------------------------------------------------------


def powershell_quote(value: str) -> str:
    """A PowerShell single-quoted literal: nothing inside is expanded."""
    for quote in _PS_SINGLE_QUOTES:
        value = value.replace(quote, quote * 2)
    return f"'{value}'"


def encode_powershell(script: str) -> str:
    """The ``powershell -EncodedCommand`` line for ``script`` (base64 of UTF-16LE).

    Encoding sidesteps cmd.exe and PowerShell quoting of the outer command line entirely.
    """
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    line = f"{POWERSHELL} {encoded}"
    if len(line) > WINDOWS_MAX_COMMAND:
        raise ValueError(
            f"command is too long for Windows ({len(line)} > {WINDOWS_MAX_COMMAND} characters "
            "once encoded); upload it as a script instead"
        )
    return line


def powershell_command(
    code: str,
    *,
    args: Sequence[str] = (),
    env_file: str | None = None,
    cwd: str | None = None,
    marker: bool = True,
) -> str:
    """PowerShell ``code`` with ``args`` as literal arguments, as an encoded command line.

    ``env_file`` (from :func:`powershell_env_file`) is read into the process environment and
    removed before the command starts. The exit code is the last native exit code, or 1 when
    PowerShell itself failed.
    """
    lines = ["$ProgressPreference = 'SilentlyContinue'"]
    if marker:
        lines.append(f"[Console]::Error.WriteLine('{PID_MARKER} ' + $PID)")
    if cwd:
        lines.append(f"Set-Location -LiteralPath {powershell_quote(cwd)}")
    if env_file:
        lines += [
            f"$shipyardEnvFile = {powershell_quote(env_file)}",
            "try {",
            "  $shipyardEnv = [IO.File]::ReadAllText($shipyardEnvFile, [Text.Encoding]::UTF8)"
            " | ConvertFrom-Json",
            "} catch {",
            "  [Console]::Error.WriteLine('cannot read the environment file: ' + $_.ToString())",
            "  exit 126",
            "} finally {",
            "  Remove-Item -LiteralPath $shipyardEnvFile -Force -ErrorAction SilentlyContinue",
            "}",
            "foreach ($shipyardVar in $shipyardEnv.PSObject.Properties) {",
            "  [Environment]::SetEnvironmentVariable("
            "$shipyardVar.Name, [string]$shipyardVar.Value, 'Process')",
            "}",
            "Remove-Variable shipyardEnv, shipyardVar, shipyardEnvFile -ErrorAction SilentlyContinue",
        ]
    quoted_args = " ".join(powershell_quote(arg) for arg in args)
    call = f"{code} {quoted_args}" if quoted_args else code
    lines += [
        "$global:LASTEXITCODE = 0",
        "try {",
        f"  {call}",
        "  $succeeded = $?",
        "} catch {",
        "  [Console]::Error.WriteLine($_.ToString())",
        "  exit 1",
        "}",
        "if ($global:LASTEXITCODE -ne 0) { exit $global:LASTEXITCODE }",
        "if (-not $succeeded) { exit 1 }",
        "exit 0",
    ]
    return encode_powershell("\n".join(lines))


def powershell_script(
    path: str,
    *,
    args: Sequence[str] = (),
    env_file: str | None = None,
    cwd: str | None = None,
    marker: bool = True,
) -> str:
    """Run the file at ``path`` (.ps1, .bat, .cmd, .exe) with the call operator."""
    return powershell_command(
        f"& {powershell_quote(path)}", args=args, env_file=env_file, cwd=cwd, marker=marker
    )


def powershell_env_file(env: Mapping[str, str]) -> bytes:
    """The body of an env file for PowerShell: a JSON object, ASCII only (any code page reads it)."""
    check_env(env)
    return json.dumps(dict(env), ensure_ascii=True).encode("ascii")


def windows_kill(pid: int) -> str:
    """End the process tree rooted at ``pid`` (the PowerShell that ran the command)."""
    return f"taskkill /F /T /PID {int(pid)}"


# The directory is made readable by its owner alone (inheritance cut, one rule for the current
# user) before anything is put in it: env files with secret values land there.
WINDOWS_MAKE_TEMP_DIR = encode_powershell(
    "$path = Join-Path ([IO.Path]::GetTempPath()) ('shipyard.' + [Guid]::NewGuid().ToString('N'))\n"
    "$dir = New-Item -ItemType Directory -Path $path\n"
    "$acl = $dir.GetAccessControl()\n"
    "$acl.SetAccessRuleProtection($true, $false)\n"
    "foreach ($rule in @($acl.Access)) { [void]$acl.RemoveAccessRule($rule) }\n"
    "$acl.AddAccessRule((New-Object Security.AccessControl.FileSystemAccessRule("
    "[Security.Principal.WindowsIdentity]::GetCurrent().User, 'FullControl', "
    "'ContainerInherit, ObjectInherit', 'None', 'Allow')))\n"
    "$dir.SetAccessControl($acl)\n"
    "Write-Output $path"
)
WINDOWS_PROBE = powershell_command(
    "Write-Output ('Windows ' + [Environment]::OSVersion.Version.ToString() + ' '"
    " + $env:PROCESSOR_ARCHITECTURE)"
)


def windows_remove_dirs(paths: Sequence[str]) -> str:
    literals = ", ".join(powershell_quote(path) for path in paths)
    return encode_powershell(
        f"Remove-Item -LiteralPath {literals} -Recurse -Force -ErrorAction SilentlyContinue"
    )


def windows_sftp_path(path: str) -> str:
    r"""The SFTP form of a Windows path: ``C:\Temp\x`` becomes ``/C:/Temp/x``."""
    converted = path.replace("\\", "/")
    if re.match(r"^[A-Za-z]:", converted):
        converted = "/" + converted
    return converted


def windows_join(directory: str, name: str) -> str:
    return directory.rstrip("\\/") + "\\" + name
