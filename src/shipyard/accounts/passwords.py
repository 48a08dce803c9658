"""Password hashing with argon2id."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Verified against when the account does not exist, so both paths cost the same time.
DUMMY_PASSWORD = "shipyard-timing-equaliser"


class Passwords:
    """argon2id hashing, run in threads so the event loop (and its requests) never waits on it.

    At most ``max_concurrent`` hashes run at once: each takes tens of milliseconds of CPU and
    ``memory_kib`` of memory, so a burst of log-ins queues here instead of starving the process.
    Call it outside any database transaction.
    """

    def __init__(self, *, memory_kib: int, max_concurrent: int = 4) -> None:
        self._hasher = PasswordHasher(memory_cost=memory_kib)
        self._slots = asyncio.Semaphore(max_concurrent)
        self._dummy_hash: str | None = None

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check ``password``; with no hash (no such account) spend the same time and fail."""
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(DUMMY_PASSWORD)
            password_hash = self._dummy_hash
            password = DUMMY_PASSWORD + "x"
        async with self._slots:
            return await asyncio.to_thread(self.verify_sync, password_hash, password)
