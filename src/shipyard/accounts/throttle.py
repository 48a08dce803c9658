"""Brute-force protection: a growing delay on failed log-ins, and a budget for sign-ups.

Log-in: each failure within ``login_failure_window_seconds`` (counted per account and per client
address) makes the next attempt wait ``base * 2^(failures - free)`` seconds after the latest
failure, capped at ``login_delay_max_seconds``. The wait happens before the password is checked
and holds no connection, so guessing gets slower and slower while the owner, who types the
right password once the delay has passed, always gets in: a few bad attempts never lock an
account. Only a caller clearly hammering (``login_max_failures_per_*`` failures in the window)
is refused outright with 429 and ``Retry-After``.

Sign-up: at most ``signup_max_per_address`` attempts per address per ``signup_window_seconds``.

These run in system sessions: the tables hold no tenant's data and are read by no tenant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.models import LoginFailure, SignupAttempt
from shipyard.config import Settings
from shipyard.errors import RateLimited


@dataclass(frozen=True)
class Failures:
    """Recent failures of one account or one address: how many, the oldest and the latest."""

    count: int
    oldest: datetime | None
    latest: datetime | None


def failure_delay(failures: int, settings: Settings) -> float:
    """Seconds the next attempt waits after ``failures`` recent failures."""
    excess = failures - settings.login_delay_free_failures
    if excess < 0 or settings.login_delay_base_seconds <= 0:
        return 0.0
    # 2^excess overflows floats long after the cap; min() first keeps it finite.
    if excess > 60:
        return settings.login_delay_max_seconds
    return float(
        min(settings.login_delay_max_seconds, settings.login_delay_base_seconds * 2**excess)
    )


async def _failures(
    session: AsyncSession, *, where: ColumnElement[bool], since: datetime
) -> Failures:
    count, oldest, latest = (
        await session.execute(
            select(
                func.count(), func.min(LoginFailure.created_at), func.max(LoginFailure.created_at)
            ).where(where, LoginFailure.created_at > since)
        )
    ).one()
    return Failures(count=int(count), oldest=oldest, latest=latest)


def _retry_after(oldest: datetime | None, *, window: timedelta, now: datetime) -> int:
    if oldest is None:
        return 1
    return max(1, math.ceil((oldest + window - now).total_seconds()))


async def login_wait(
    *, session: AsyncSession, email: str, ip_address: str, settings: Settings, now: datetime
) -> float:
    """Seconds this log-in must wait before its password is checked (0: none).

    Raises :class:`RateLimited` when the account or the address is clearly being hammered.
    """
    window = timedelta(seconds=settings.login_failure_window_seconds)
    since = now - window
    by_account = await _failures(session, where=LoginFailure.email == email, since=since)
    by_address = await _failures(session, where=LoginFailure.ip_address == ip_address, since=since)
    for failures, limit, what in (
        (by_address, settings.login_max_failures_per_address, "your address"),
        (by_account, settings.login_max_failures_per_account, "this account"),
    ):
        if failures.count >= limit:
            retry_after = _retry_after(failures.oldest, window=window, now=now)
            raise RateLimited(
                f"too many failed log-ins for {what}; try again in {retry_after} seconds",
                retry_after=retry_after,
            )
    wait = 0.0
    for failures in (by_account, by_address):
        if failures.latest is not None:
            due = failures.latest + timedelta(seconds=failure_delay(failures.count, settings))
            wait = max(wait, (due - now).total_seconds())
    return wait


async def record_login_failure(*, session: AsyncSession, email: str, ip_address: str) -> None:
    """Count a failed log-in against the account and the address."""
    session.add(LoginFailure(email=email, ip_address=ip_address))


async def forget_login_failures(*, session: AsyncSession, email: str) -> None:
    """After a correct password: the account's failures no longer slow it (the address's do)."""
    await session.execute(delete(LoginFailure).where(LoginFailure.email == email))


async def take_signup_attempt(
    *, session: AsyncSession, ip_address: str, settings: Settings, now: datetime
) -> None:
    """Count a sign-up from ``ip_address``, or raise :class:`RateLimited` past its budget."""
    window = timedelta(seconds=settings.signup_window_seconds)
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(SignupAttempt.created_at)).where(
                SignupAttempt.ip_address == ip_address, SignupAttempt.created_at > now - window
            )
        )
    ).one()
    if count >= settings.signup_max_per_address:
        retry_after = _retry_after(oldest, window=window, now=now)
        raise RateLimited(
            f"too many sign-ups from your address; try again in {retry_after} seconds",
            retry_after=retry_after,
        )
    session.add(SignupAttempt(ip_address=ip_address, created_at=now))


async def purge_throttle_rows(*, session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Delete failures and sign-up attempts too old to count; returns how many went."""
    login_cutoff = now - timedelta(seconds=settings.login_failure_window_seconds)
    signup_cutoff = now - timedelta(seconds=settings.signup_window_seconds)
    failures = await session.execute(
        delete(LoginFailure).where(LoginFailure.created_at <= login_cutoff)
    )
    attempts = await session.execute(
        delete(SignupAttempt).where(SignupAttempt.created_at <= signup_cutoff)
    )
    return int(getattr(failures, "rowcount", 0) or 0) + int(getattr(attempts, "rowcount", 0) or 0)
