"""Command building: POSIX quoting (checked by a real sh) and Windows PowerShell encoding.

No Windows host is available to the test suite, so the PowerShell side is checked by
decoding what would be sent and reading the script PowerShell would run.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

from shipyard.hosts.executor import commands

TRICKY = [
    "plain",
    "two words",
    "it's",
    '"double"',
    "$HOME",
    "`id`",
    "a;b|c&d",
    "new\nline",
    "ü ✓",
    "",
]


def sh(line: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, check=False)


def decode(line: str) -> str:
    prefix, encoded = line.rsplit(" ", 1)
    assert prefix == commands.POWERSHELL
    return base64.b64decode(encoded).decode("utf-16-le")


def powershell_literal(text: str) -> str:
    """Read one single-quoted PowerShell literal the way PowerShell does (doubled quotes)."""
    quotes = "'\u2018\u2019\u201a\u201b"
    assert text[0] in quotes and text[-1] in quotes
    body = text[1:-1]
    value, index = [], 0
    while index < len(body):
        char = body[index]
        if char in quotes:
            assert index + 1 < len(body) and body[index + 1] in quotes, (
                "lone quote ends the literal"
            )
            index += 1
        value.append(char)
        index += 1
    return "".join(value)


def test_posix_command_quotes_args_and_cwd_and_sources_the_env_file(tmp_path: Path) -> None:
    env = {"WHO": "it's $me `id`", "MULTI": "a\nb", "EMPTY": "", "UNI": "ünï-env ✓"}
    env_file = tmp_path / "env file.sh"
    env_file.write_bytes(commands.posix_env_file(env))
    line = commands.posix_command(
        "printf '[%s]\\n'", args=TRICKY, env_file=str(env_file), cwd="/tmp", marker=False
    )
    for value in env.values():
        if value:
            assert value not in line  # only the file's path is on the command line
    result = sh(line + '\nprintf "%s|%s|%s|%s|%s\\n" "$WHO" "$MULTI" "$EMPTY" "$UNI" "$(pwd)"')
    assert result.returncode == 0, result.stderr
    expected = "".join(f"[{arg}]\n" for arg in TRICKY) + "it's $me `id`|a\nb||ünï-env ✓|/tmp\n"
    assert result.stdout == expected
    # The wrapper removed the file as soon as it had read it.
    assert not env_file.exists()


def test_posix_env_file_values_are_exported_to_children(tmp_path: Path) -> None:
    env_file = tmp_path / "env.sh"
    env_file.write_bytes(commands.posix_env_file({"CHILD_SEES": "yes; rm -rf /"}))
    result = sh(commands.posix_command("sh -c 'echo \"$CHILD_SEES\"'", env_file=str(env_file)))
    assert result.stdout == "yes; rm -rf /\n"


def test_a_missing_env_file_stops_the_command(tmp_path: Path) -> None:
    line = commands.posix_command("echo ran", env_file=str(tmp_path / "gone.sh"), marker=False)
    result = sh(line)
    assert result.returncode != 0 and "ran" not in result.stdout


def test_posix_marker_reports_the_shell_pid_on_stderr() -> None:
    result = sh(commands.posix_command("echo $$", marker=True))
    pid = commands.parse_pid_marker(result.stderr.strip())
    assert pid is not None and str(pid) == result.stdout.strip()
    assert commands.parse_pid_marker("__SHIPYARD_PID__ abc") is None
    assert commands.parse_pid_marker("ordinary output") is None


def test_posix_script_execs_the_quoted_path(tmp_path: object) -> None:
    line = commands.posix_script("/opt/my scripts/run.sh", args=["x y"], marker=False)
    assert line.splitlines()[-1] == "exec '/opt/my scripts/run.sh' 'x y'"


def test_env_names_and_values_are_checked() -> None:
    for bad in ("1ABC", "A-B", "A B", "", "A=B", "Ä"):
        with pytest.raises(ValueError, match="environment variable name"):
            commands.posix_env_file({bad: "x"})
        with pytest.raises(ValueError, match="environment variable name"):
            commands.powershell_env_file({bad: "x"})
    with pytest.raises(ValueError, match="NUL"):
        commands.posix_env_file({"A": "x\x00y"})


def test_posix_kill_targets_the_process_group() -> None:
    line = commands.posix_kill(4242, grace_seconds=2)
    assert "kill -TERM -4242" in line and "kill -KILL -4242" in line
    assert "-lt 20" in line
    # It is valid sh, and ends quietly when the group does not exist.
    assert sh(commands.posix_kill(999999, grace_seconds=0.1)).returncode == 0


def test_powershell_literals_survive_every_quote_kind() -> None:
    for value in [*TRICKY, "O'Brien", "\u2018curly\u2019 \u201alow\u201b", "''", "'"]:
        literal = commands.powershell_quote(value)
        assert powershell_literal(literal) == value


def test_powershell_command_is_encoded_and_complete() -> None:
    line = commands.powershell_command(
        "Write-Output",
        args=["it's", "$env:PATH", "a b"],
        env_file=r"C:\Temp\shipyard.1\.env-ab.json",
        cwd=r"C:\Deploy Root\app",
    )
    assert line.startswith("powershell -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass")
    script = decode(line)
    lines = script.splitlines()
    assert "[Console]::Error.WriteLine('__SHIPYARD_PID__ ' + $PID)" in lines
    assert "Set-Location -LiteralPath 'C:\\Deploy Root\\app'" in lines
    # The env file is read into the process environment and removed before the command runs.
    assert "$shipyardEnvFile = 'C:\\Temp\\shipyard.1\\.env-ab.json'" in lines
    read = lines.index("$shipyardEnvFile = 'C:\\Temp\\shipyard.1\\.env-ab.json'")
    removal = next(
        i for i, text in enumerate(lines) if "Remove-Item -LiteralPath $shipyard" in text
    )
    call = lines.index("  Write-Output 'it''s' '$env:PATH' 'a b'")
    assert read < removal < call
    assert "[Environment]::SetEnvironmentVariable(" in script and "'Process')" in script
    assert lines[-1] == "exit 0"
    assert "if ($global:LASTEXITCODE -ne 0) { exit $global:LASTEXITCODE }" in lines
    # Only base64 characters after the flags: nothing for cmd.exe or PowerShell to expand.
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", line.rsplit(" ", 1)[1])


def test_powershell_env_file_is_ascii_json() -> None:
    env = {"APP_ENV": "prod 'blue'", "TOKEN": "s3cr\u00e9t ✓", "EMPTY": ""}
    body = commands.powershell_env_file(env)
    body.decode("ascii")  # any Windows code page reads it the same
    assert json.loads(body) == env


def test_powershell_script_uses_the_call_operator() -> None:
    script = decode(commands.powershell_script(r"C:\Temp\shipyard.x\deploy.ps1", args=["-Fast"]))
    assert "  & 'C:\\Temp\\shipyard.x\\deploy.ps1' '-Fast'" in script.splitlines()


def test_powershell_command_line_length_is_limited() -> None:
    with pytest.raises(ValueError, match="too long for Windows"):
        commands.powershell_command("Write-Output " + "x" * 4000)


def test_windows_helpers() -> None:
    assert commands.windows_sftp_path(r"C:\Users\me\AppData\Local\Temp\shipyard.1") == (
        "/C:/Users/me/AppData/Local/Temp/shipyard.1"
    )
    assert commands.windows_join("C:\\Temp\\x\\", "run.ps1") == "C:\\Temp\\x\\run.ps1"
    assert commands.windows_kill(77) == "taskkill /F /T /PID 77"
    assert "Windows " in decode(commands.WINDOWS_PROBE)
    make_dir = decode(commands.WINDOWS_MAKE_TEMP_DIR)
    assert "New-Item -ItemType Directory" in make_dir
    # Owner-only before anything is put in it: inheritance cut, one rule for the current user.
    assert "SetAccessRuleProtection($true, $false)" in make_dir
    assert make_dir.index("SetAccessControl") < make_dir.index("Write-Output $path")
    removal = decode(commands.windows_remove_dirs(["C:\\Temp\\a b", "C:\\Temp\\c'd"]))
    assert "Remove-Item -LiteralPath 'C:\\Temp\\a b', 'C:\\Temp\\c''d' -Recurse -Force" in removal
