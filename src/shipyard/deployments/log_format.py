"""A log line for a terminal: the rules of the web viewer, in ANSI (pure; used by the CLI).

- Colours and bold (SGR sequences) are kept when colour is on, removed when it is off; every
  other escape sequence (cursor moves, window titles, OSC links) and control character is
  removed always, so a line cannot take over the terminal.
- A carriage-return progress bar shows its last state only.
- A script's lines are coloured by their stream, never by their level: stderr is marked
  (``[stderr]``) and its text is dim yellow (the web viewer's amber), not an error's red, since
  most of it is progress and warnings; stdout keeps the terminal's colour. Shipyard's own events
  (no stream) carry their level (``[ERROR]`` bold red, ``[WARNING]`` yellow).
"""

from __future__ import annotations

import re
from datetime import datetime

SGR = re.compile(r"\x1b\[[0-9;:]*m")
# CSI (other than SGR), OSC / DCS / APC / PM / SOS strings, two-character escapes, then the C0
# and C1 controls that remain (tab kept).
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_].*?(?:\x07|\x1b\\|$)"
    r"|\x1b[ -/]*[0-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]"
)
RESET = "\x1b[0m"
_STYLES = {
    "time": "\x1b[2m",
    "host": "\x1b[36m",
    "stderr": "\x1b[2;33m",
    "ERROR": "\x1b[1;31m",
    "WARNING": "\x1b[33m",
    "INFO": "\x1b[34m",
    "DEBUG": "\x1b[2m",
}


def collapse_progress(message: str) -> str:
    """The last state of a carriage-return progress bar ("10%\\r50%\\r100%" -> "100%")."""
    if "\r" not in message:
        return message
    parts = [part for part in message.split("\r") if part]
    return parts[-1] if parts else ""


def clean(message: str, *, colour: bool) -> str:
    """``message`` safe for a terminal: SGR kept (and reset after) with ``colour``, else none."""
    message = collapse_progress(message)
    if "\x1b" not in message and not _has_controls(message):
        return message
    kept: list[str] = []
    position = 0
    for match in SGR.finditer(message):
        kept.append(_ESCAPES.sub("", message[position : match.start()]))
        if colour:
            kept.append(match.group())
        position = match.end()
    kept.append(_ESCAPES.sub("", message[position:]))
    text = "".join(kept)
    return text + RESET if colour and SGR.search(text) else text


def _in_style(text: str, style: str) -> str:
    """``text`` (cleaned, SGR kept) in ``style``, taken up again after each reset inside it."""
    start = _STYLES[style]

    def again(match: re.Match[str]) -> str:
        codes = match.group()[2:-1]
        resets = codes == "" or "0" in [code.lstrip("0") or "0" for code in codes.split(";")]
        return match.group() + start if resets else match.group()

    return f"{start}{SGR.sub(again, text)}{RESET}"


def _has_controls(message: str) -> bool:
    return any(ord(char) < 32 and char != "\t" for char in message)


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{_STYLES[style]}{text}{RESET}" if colour else text


def terminal_line(
    *,
    timestamp: str,
    host: str | None,
    stream: str | None,
    level: str,
    message: str,
    colour: bool,
) -> str:
    """``HH:MM:SS host [stderr] message`` (local time to the second), newline included."""
    try:
        stamp = datetime.fromisoformat(timestamp).astimezone().strftime("%H:%M:%S")
    except ValueError:
        stamp = timestamp[:19]
    parts = [_paint(stamp, "time", colour)]
    if host:
        parts.append(_paint(clean(host, colour=False), "host", colour))
    text = clean(message, colour=colour)
    if stream == "stderr":
        parts.append(_paint("[stderr]", "stderr", colour))
        if colour:
            text = _in_style(text, "stderr")
    elif stream is None:
        parts.append(_paint(f"[{level}]", level if level in _STYLES else "INFO", colour))
    parts.append(text)
    return " ".join(parts) + "\n"
