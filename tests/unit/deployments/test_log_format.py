"""A log line for a terminal (the CLI): SGR kept or removed, other escapes always removed,
carriage-return progress collapsed, stderr marked, Shipyard's events with their level."""

from __future__ import annotations

import pytest

from shipyard.deployments.log_format import clean, collapse_progress, terminal_line


@pytest.mark.parametrize(
    ("message", "last"),
    [
        ("10%\r50%\r100%", "100%"),
        ("done\r", "done"),
        ("\r\r", ""),
        ("no bar", "no bar"),
    ],
)
def test_carriage_return_progress_shows_its_last_state(message: str, last: str) -> None:
    assert collapse_progress(message) == last


def test_colours_kept_with_colour_and_reset_after() -> None:
    message = "\x1b[1;32mok\x1b[0m and \x1b[38;5;208morange"
    assert clean(message, colour=True) == message + "\x1b[0m"
    assert clean(message, colour=False) == "ok and orange"


@pytest.mark.parametrize(
    "hostile",
    [
        "\x1b]0;pwned\x07",  # window title
        "\x1b]8;;http://evil.example\x1b\\",  # hyperlink
        "\x1b[2J\x1b[H",  # clear screen, cursor home
        "\x1bP+q544e\x1b\\",  # DCS query
        "\x1bc",  # reset the terminal
        "\x07\x08\x7f\x9b",  # bell, backspace, DEL, C1 CSI
    ],
)
def test_other_escapes_are_always_removed(hostile: str) -> None:
    for colour in (True, False):
        cleaned = clean(f"a{hostile}b", colour=colour)
        assert cleaned == "ab", repr(cleaned)


def test_line_marks_stderr_and_shipyard_events() -> None:
    stamp = "2026-12-02T04:00:00+00:00"
    out = terminal_line(
        timestamp=stamp, host="web-1", stream="stdout", level="INFO", message="hi", colour=False
    )
    assert out.endswith(" web-1 hi\n") and len(out) == len("HH:MM:SS web-1 hi\n")
    err = terminal_line(
        timestamp=stamp, host="web-1", stream="stderr", level="INFO", message="warn", colour=False
    )
    assert err.endswith(" web-1 [stderr] warn\n")
    event = terminal_line(
        timestamp=stamp, host=None, stream=None, level="ERROR", message="failed", colour=True
    )
    assert "\x1b[1;31m[ERROR]\x1b[0m failed" in event
    # A host name cannot carry escapes either.
    named = terminal_line(
        timestamp=stamp, host="web\x1b[2J", stream="stdout", level="INFO", message="", colour=False
    )
    assert "\x1b" not in named


def test_stderr_is_coloured_by_its_stream_never_by_its_level() -> None:
    stamp = "2026-12-02T04:00:00+00:00"
    err = terminal_line(
        timestamp=stamp,
        host="web-1",
        stream="stderr",
        level="ERROR",
        message="50% \x1b[32mdone\x1b[0m then more",
        colour=True,
    )
    # Dim yellow, taken up again after the line's own reset; no level tag, no red.
    assert "\x1b[2;33m[stderr]\x1b[0m \x1b[2;33m50% \x1b[32mdone\x1b[0m\x1b[2;33m then more" in err
    assert "[ERROR]" not in err and "\x1b[1;31m" not in err
    out = terminal_line(
        timestamp=stamp, host="web-1", stream="stdout", level="ERROR", message="x", colour=True
    )
    assert out.endswith("\x1b[36mweb-1\x1b[0m x\n")
    warning = terminal_line(
        timestamp=stamp, host=None, stream=None, level="WARNING", message="slow", colour=True
    )
    assert "\x1b[33m[WARNING]\x1b[0m slow" in warning
