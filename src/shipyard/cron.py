"""Cron arithmetic: five-field lines and ``@`` presets, read in an IANA zone, correct across DST.

The fire times are computed in the zone's *wall-clock* time and only then placed on the time
line, because croniter's own handling of zone-aware datetimes gets both DST changes wrong for
us (checked with croniter 7.0: in Europe/Berlin ``30 2 * * *`` fires at 03:00 on the spring
day and twice, at 02:30 +02:00 and 02:30 +01:00, on the autumn day). Here croniter only walks
naive wall times, and each one is placed with these rules:

- a wall time that does not exist that day (the hour skipped when clocks spring forward) is
  skipped: ``30 2 * * *`` does not fire on that day;
- a wall time that happens twice (the hour repeated when clocks fall back) fires once, at its
  first occurrence (``fold=0``): every wall time fires at most once, so ``0 * * * *`` fires at
  02:00 summer time and next at 03:00 winter time, two hours later.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from shipyard.errors import ValidationFailed

PRESETS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Per field: numbers, names (JAN, MON), * , - / and L/# where croniter reads them.
_FIELD = re.compile(r"^[0-9A-Za-z*,/\-#?]+$")
# croniter's extensions that are not cron: H (hashed) and R (random) values.
_EXTENSION = re.compile(r"(^|[,/\-])[HR]([,/\-(]|$)")
# A cron line that matches nothing for this long matches nothing ever (30 February).
_SEARCH_YEARS = 30
# Bound on the wall times walked for one fire time (a gap of an hour at one per minute is 60).
_MAX_STEPS = 10_000
MAX_COUNT = 100


def expand(cron: str) -> str:
    """The five-field form of ``cron`` (a preset expanded); ValidationFailed naming ``cron``."""
    line = " ".join(cron.split())
    if line.startswith("@"):
        found = PRESETS.get(line.lower())
        if found is None:
            raise ValidationFailed(
                f"unknown preset {line!r}: use one of {', '.join(sorted(PRESETS))}",
                field="cron",
                code="invalid_cron",
            )
        return found
    fields = line.split(" ")
    if len(fields) != 5:
        raise ValidationFailed(
            f"a cron line has five fields (minute hour day month weekday), not {len(fields)}",
            field="cron",
            code="invalid_cron",
        )
    for field in fields:
        if not _FIELD.match(field) or _EXTENSION.search(field.upper()):
            raise ValidationFailed(
                f"cron field {field!r} is not valid", field="cron", code="invalid_cron"
            )
    if not croniter.is_valid(line):
        raise ValidationFailed(
            f"{line!r} is not a valid cron line", field="cron", code="invalid_cron"
        )
    return line


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValidationFailed naming ``timezone``."""
    if name not in _zones() and name != "UTC":
        raise ValidationFailed(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)",
            field="timezone",
            code="invalid_timezone",
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            f"unknown time zone {name!r}", field="timezone", code="invalid_timezone"
        ) from exc


def _place(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of naive wall time ``wall`` in ``tz`` (its first occurrence), or None
    when that wall time does not exist there (skipped by a spring-forward change)."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return None
    return instant


def _walls(line: str, start: datetime) -> Iterator[datetime]:
    """Naive wall times matching ``line`` strictly after naive ``start``."""
    it = croniter(line, start, max_years_between_matches=_SEARCH_YEARS)
    while True:
        try:
            found: datetime = it.get_next(datetime)
        except Exception:  # croniter: no match within the search window (30 February)
            return
        yield found


def next_times(
    cron: str,
    tz: str,
    after: datetime,
    count: int = 1,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` fire times (aware, UTC) strictly after ``after``, within
    [``starts_at``, ``ends_at``]; fewer when the line ends or matches nothing more."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    line = expand(cron)
    zone_info = zone(tz)
    floor = after
    if starts_at is not None and starts_at - timedelta(microseconds=1) > floor:
        floor = starts_at - timedelta(microseconds=1)
    start_wall = floor.astimezone(zone_info).replace(tzinfo=None)
    # Wall times are placed at their first occurrence only, so none before ``start_wall`` can
    # be ahead of ``floor`` on the time line (even when ``floor`` is in a repeated hour).
    walls = _walls(line, start_wall)
    found: list[datetime] = []
    for _ in range(_MAX_STEPS * max(count, 1)):
        if len(found) >= count:
            break
        wall = next(walls, None)
        if wall is None:
            break
        instant = _place(wall, zone_info)
        if instant is None or instant <= floor:
            continue
        if ends_at is not None and instant > ends_at:
            break
        found.append(instant)
    return found


def in_zone(instant: datetime, tz: str) -> datetime:
    """``instant`` shown in the schedule's zone (with its offset)."""
    return instant.astimezone(zone(tz))


def describe(cron: str) -> str:
    """The cron line in words ("At 03:00 AM"), for lists and the schedule's page."""
    line = expand(cron)
    try:
        from cron_descriptor import Options, get_description

        options = Options()
        options.use_24hour_time_format = True
        options.verbose = False
        text: str = get_description(line, options)
        return text
    except Exception:
        return line
