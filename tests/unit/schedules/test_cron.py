"""Cron arithmetic across DST: a wall time that does not exist is skipped, one that happens
twice fires once; presets; start and end; validation naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shipyard.cron import describe, expand, next_times
from shipyard.errors import ValidationFailed

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def local(times: list[datetime], tz: str) -> list[str]:
    return [at.astimezone(ZoneInfo(tz)).isoformat() for at in times]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_berlin_spring_forward_skips_the_missing_wall_time() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    times = next_times("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), 3)
    assert local(times, BERLIN) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_berlin_fall_back_fires_a_doubled_wall_time_once() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, fires at the first.
    times = next_times("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), 2)
    assert local(times, BERLIN) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_berlin_hourly_across_both_changes() -> None:
    spring = next_times("0 * * * *", BERLIN, utc(2026, 3, 28, 23, 30), 3)
    assert local(spring, BERLIN) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 does not exist
        "2026-03-29T04:00:00+02:00",
    ]
    autumn = next_times("0 * * * *", BERLIN, utc(2026, 10, 24, 22, 30), 3)
    assert local(autumn, BERLIN) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",  # and not again at 02:00+01:00
        "2026-10-25T03:00:00+01:00",
    ]
    # Each fire time at most once: strictly increasing, no duplicates.
    assert autumn == sorted(set(autumn))


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT; 2026-11-01: 02:00 EDT becomes 01:00 EST.
    spring = next_times("30 2 * * *", NEW_YORK, utc(2026, 3, 6, 12), 2)
    assert local(spring, NEW_YORK) == ["2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00"]
    spring_min = next_times("*/20 * * * *", NEW_YORK, utc(2026, 3, 8, 5, 50), 4)
    assert local(spring_min, NEW_YORK) == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T01:20:00-05:00",
        "2026-03-08T01:40:00-05:00",
        "2026-03-08T03:00:00-04:00",  # 02:00, 02:20, 02:40 do not exist
    ]
    autumn = next_times("30 1 * * *", NEW_YORK, utc(2026, 10, 31, 12), 2)
    assert local(autumn, NEW_YORK) == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_asked_from_inside_the_repeated_hour_does_not_fire_it_again() -> None:
    # Now is 01:40 EST, the second pass: 01:45 already fired at its first pass (EDT).
    second_pass = datetime(2026, 11, 1, 6, 40, tzinfo=UTC)  # 01:40-05:00
    times = next_times("45 1 * * *", NEW_YORK, second_pass, 1)
    assert local(times, NEW_YORK) == ["2026-11-02T01:45:00-05:00"]


def test_presets() -> None:
    after = utc(2026, 1, 1, 10, 30)
    assert expand("@hourly") == "0 * * * *"
    assert next_times("@hourly", "UTC", after, 1) == [utc(2026, 1, 1, 11)]
    assert next_times("@daily", "UTC", after, 1) == [utc(2026, 1, 2)]
    assert next_times("@weekly", "UTC", after, 1) == [utc(2026, 1, 4)]  # a Sunday
    assert next_times("@monthly", "UTC", after, 1) == [utc(2026, 2, 1)]
    assert next_times("@yearly", "UTC", after, 1) == [utc(2027, 1, 1)]
    assert local(next_times("@daily", BERLIN, after, 1), BERLIN) == ["2026-01-02T00:00:00+01:00"]


def test_starts_at_and_ends_at_bound_the_fires() -> None:
    after = utc(2026, 1, 1)
    start = utc(2026, 1, 3, 3)  # a fire time itself: included
    end = utc(2026, 1, 5, 3)  # included
    times = next_times("0 3 * * *", "UTC", after, 10, starts_at=start, ends_at=end)
    assert times == [utc(2026, 1, 3, 3), utc(2026, 1, 4, 3), utc(2026, 1, 5, 3)]
    assert next_times("0 3 * * *", "UTC", utc(2026, 1, 6), 1, ends_at=end) == []


def test_strictly_after() -> None:
    assert next_times("0 3 * * *", "UTC", utc(2026, 1, 1, 3), 1) == [utc(2026, 1, 2, 3)]


def test_a_line_that_never_fires_gives_no_time() -> None:
    assert next_times("0 0 30 2 *", "UTC", utc(2026, 1, 1), 1) == []


@pytest.mark.parametrize(
    ("cron", "tz", "field"),
    [
        ("0 3 * *", "UTC", "cron"),
        ("0 3 * * * *", "UTC", "cron"),
        ("61 3 * * *", "UTC", "cron"),
        ("@fortnightly", "UTC", "cron"),
        ("H 3 * * *", "UTC", "cron"),
        ("0 3 * * *", "Mars/Olympus", "timezone"),
        ("0 3 * * *", "", "timezone"),
    ],
)
def test_invalid_lines_and_zones_name_the_field(cron: str, tz: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        next_times(cron, tz, utc(2026, 1, 1), 1)
    assert refused.value.field == field


def test_describe_in_words() -> None:
    assert describe("0 3 * * *") == "At 03:00"
    assert describe("@hourly") == "Every hour"
    assert describe("*/15 * * * *") == "Every 15 minutes"
