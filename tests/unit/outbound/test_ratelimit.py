"""Reading rate-limit answers and waiting them out within a budget."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

import httpx
import pytest

from shipyard.outbound.ratelimit import (
    RateLimitExhausted,
    RateLimitGate,
    is_rate_limited,
    named_delay,
    reset_in,
)


def response(
    status: int, headers: dict[str, str] | None = None, body: str = "{}"
) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, text=body)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert named_delay(response(429, {"retry-after": "17"})) == 17
    in_ten = formatdate(time.time() + 10, usegmt=True)
    delay = named_delay(response(429, {"retry-after": in_ten}))
    assert delay is not None and 8 <= delay <= 10


def test_reset_is_an_epoch_or_a_delay() -> None:
    epoch = int(time.time()) + 30
    delay = reset_in(response(200, {"x-ratelimit-reset": str(epoch)}))
    assert delay is not None and 28 <= delay <= 30
    assert reset_in(response(200, {"ratelimit-reset": "12"})) == 12
    assert reset_in(response(200)) is None


def test_which_answers_are_rate_limits() -> None:
    assert is_rate_limited(response(429))
    assert is_rate_limited(response(403, {"x-ratelimit-remaining": "0"}))
    assert is_rate_limited(response(403, {"retry-after": "60"}))
    assert is_rate_limited(
        response(403, body='{"message": "You have exceeded a secondary rate limit."}')
    )
    # A plain permission problem is not something waiting fixes.
    assert not is_rate_limited(response(403, body='{"message": "Resource not accessible"}'))
    assert not is_rate_limited(response(401))
    assert not is_rate_limited(response(200, {"x-ratelimit-remaining": "0"}))


def test_back_off_doubles_when_nothing_names_a_time() -> None:
    gate = RateLimitGate(max_wait=100, total_wait=100, backoff=0.5)
    limited = response(403, body='{"message": "secondary rate limit"}')
    assert [gate.retry_delay(limited, attempt) for attempt in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert gate.retry_delay(response(200), 0) is None


async def test_concurrent_waits_share_one_barrier_and_one_budget() -> None:
    gate = RateLimitGate(max_wait=1, total_wait=0.5, backoff=0)
    started = time.monotonic()
    await asyncio.gather(*(gate.wait(0.2, url="u") for _ in range(5)))
    elapsed = time.monotonic() - started
    # Five waits of 0.2 s one after another would take 1 s: they share one barrier.
    assert 0.19 <= elapsed < 0.9
    assert gate.waited == pytest.approx(0.2, abs=0.02)
    with pytest.raises(RateLimitExhausted):
        await gate.wait(0.4, url="u")


async def test_no_requests_left_holds_the_next_request_until_the_reset() -> None:
    gate = RateLimitGate(max_wait=0.3, total_wait=5, backoff=0)
    exhausted = response(
        200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 100)}
    )
    assert gate.retry_delay(exhausted, 0) is None
    started = time.monotonic()
    await gate.before_request()
    # Capped by max_wait: a reset an hour away is not waited for in full.
    assert 0.25 <= time.monotonic() - started < 1.0
