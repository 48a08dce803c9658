"""When a freeze window is in force: fixed periods, recurring ones across both DST changes in
Europe/Berlin (elapsed durations), bounds, scope, and the override's written reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from shipyard.freeze.models import FreezeWindow
from shipyard.freeze.schemas import FreezeOverride
from shipyard.freeze.service import applies, next_occurrences, occurrence_at

BERLIN = "Europe/Berlin"


def recurring(cron: str, minutes: int, tz: str = BERLIN, **fields: object) -> FreezeWindow:
    return FreezeWindow(
        id=uuid4(),
        name="weekly",
        kind="recurring",
        cron=cron,
        duration_minutes=minutes,
        timezone=tz,
        template_ids=[],
        group_ids=[],
        enabled=True,
        **fields,
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_fixed_window_is_in_force_from_its_start_until_before_its_end() -> None:
    start, end = utc(2026, 12, 20, 18), utc(2027, 1, 4, 8)
    window = FreezeWindow(
        id=uuid4(),
        name="holidays",
        kind="fixed",
        starts_at=start,
        ends_at=end,
        timezone=BERLIN,
        template_ids=[],
        group_ids=[],
        enabled=True,
    )
    assert occurrence_at(window, start - timedelta(seconds=1)) is None
    found = occurrence_at(window, start)
    assert found is not None and found.ends_at == end
    assert found.ends_at.isoformat() == "2027-01-04T09:00:00+01:00"
    assert occurrence_at(window, end - timedelta(seconds=1)) is not None
    assert occurrence_at(window, end) is None
    assert [o.starts_at for o in next_occurrences(window, start - timedelta(days=1), 3)] == [start]
    assert next_occurrences(window, start, 3) == []


def test_a_daily_window_follows_the_wall_clock_across_the_spring_change() -> None:
    window = recurring("0 9 * * *", 60)
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert occurrence_at(window, utc(2026, 3, 28, 8, 30)) is not None
    assert occurrence_at(window, utc(2026, 3, 28, 7, 30)) is None
    assert occurrence_at(window, utc(2026, 3, 30, 7, 30)) is not None
    assert occurrence_at(window, utc(2026, 3, 30, 8, 30)) is None
    starts = [o.starts_at.isoformat() for o in next_occurrences(window, utc(2026, 3, 28, 12), 2)]
    assert starts == ["2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"]


def test_an_occurrence_spanning_a_change_lasts_its_elapsed_duration() -> None:
    # Saturday 22:00 CET for four hours: the clocks spring forward at 02:00 on Sunday, so it
    # ends at 01:00 UTC, which is 03:00 CEST on the wall.
    window = recurring("0 22 * * 6", 240)
    found = occurrence_at(window, utc(2026, 3, 29, 0, 59))
    assert found is not None
    assert found.starts_at.isoformat() == "2026-03-28T22:00:00+01:00"
    assert found.ends_at.isoformat() == "2026-03-29T03:00:00+02:00"
    assert occurrence_at(window, utc(2026, 3, 29, 1, 0)) is None


def test_a_start_in_the_skipped_hour_does_not_happen_and_a_repeated_one_happens_once() -> None:
    window = recurring("30 2 * * *", 60)
    # Spring: 02:30 does not exist on 29 March, so no occurrence starts that day.
    starts = [o.starts_at.isoformat() for o in next_occurrences(window, utc(2026, 3, 28, 12), 2)]
    assert starts == ["2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    assert occurrence_at(window, utc(2026, 3, 29, 1, 0)) is None
    # Autumn: 02:30 happens twice on 25 October; the window starts at the first (00:30 UTC)
    # and lasts an hour, so it is over when the second 02:30 comes round (01:30 UTC).
    assert occurrence_at(window, utc(2026, 10, 25, 0, 29)) is None
    assert occurrence_at(window, utc(2026, 10, 25, 1, 15)) is not None
    assert occurrence_at(window, utc(2026, 10, 25, 1, 45)) is None


def test_bounds_limit_when_occurrences_start() -> None:
    window = recurring("0 9 * * *", 600, starts_at=utc(2026, 6, 2), ends_at=utc(2026, 6, 3, 7, 0))
    assert occurrence_at(window, utc(2026, 6, 1, 8)) is None
    assert occurrence_at(window, utc(2026, 6, 2, 8)) is not None
    # The occurrence that started at the last allowed moment lasts its full duration.
    assert occurrence_at(window, utc(2026, 6, 3, 16)) is not None
    assert occurrence_at(window, utc(2026, 6, 4, 8)) is None


def test_scope_templates_groups_or_everything() -> None:
    template, group, other = uuid4(), uuid4(), uuid4()
    everything = recurring("0 9 * * *", 60)
    assert applies(everything, template_id=None, group_ids=[])
    scoped = recurring("0 9 * * *", 60)
    scoped.template_ids = [template]
    scoped.group_ids = [group]
    assert applies(scoped, template_id=template, group_ids=[])
    assert applies(scoped, template_id=None, group_ids=[other, group])
    assert not applies(scoped, template_id=other, group_ids=[other])
    assert not applies(scoped, template_id=None, group_ids=[])
    scoped.enabled = False
    assert not applies(scoped, template_id=template, group_ids=[group])


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_override_needs_a_written_reason(reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FreezeOverride(reason=reason)
    assert caught.value.errors()[0]["loc"] == ("reason",)
    assert FreezeOverride(reason="  hotfix for INC-42 ").reason == "hotfix for INC-42"


def test_ids_are_uuids() -> None:
    # Stored arrays come back as UUIDs; scope checks compare them as such.
    window = recurring("0 9 * * *", 60)
    window.template_ids = [UUID(int=5)]
    assert applies(window, template_id=UUID(int=5), group_ids=[])
