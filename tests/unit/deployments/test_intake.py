"""The worker's intake: claimed runs' heavy work waits for the claims of the moment, bounded."""

from __future__ import annotations

import asyncio
import time

from shipyard.deployments.heartbeats import Intake


async def test_a_lone_claim_waits_only_the_quiet_moment() -> None:
    intake = Intake(quiet=0.02, max_wait=5.0)
    await intake.settled()  # nothing claimed: no wait at all
    with intake.claiming():
        await asyncio.sleep(0)
    started = time.monotonic()
    await intake.settled()
    assert time.monotonic() - started < 0.5


async def test_heavy_work_waits_while_claims_go_on_and_never_longer_than_the_bound() -> None:
    intake = Intake(quiet=0.05, max_wait=5.0)
    order: list[str] = []

    async def claim(index: int) -> None:
        await asyncio.sleep(index * 0.02)  # claims arriving one after another
        with intake.claiming():
            await asyncio.sleep(0.03)
            order.append(f"claimed {index}")
        await intake.settled()
        order.append(f"work {index}")

    await asyncio.wait_for(asyncio.gather(*(claim(i) for i in range(10))), 5)
    assert order[:10] == [f"claimed {i}" for i in range(10)]
    bounded = Intake(quiet=0.05, max_wait=0.2)
    with bounded.claiming():  # a claim that never ends cannot hold the others back for long
        started = time.monotonic()
        await bounded.settled()
        assert 0.15 < time.monotonic() - started < 1.0
