"""Password hashing with argon2id."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shipyard.config import get_settings


@lru_cache(maxsize=4)
def _hasher(memory_cost_kib: int) -> PasswordHasher:
    return PasswordHasher(memory_cost=memory_cost_kib)


def _current_hasher() -> PasswordHasher:
    return _hasher(get_settings().password_hash_memory_kib)


def hash_password(password: str) -> str:
    return _current_hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _current_hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verified against when the account does not exist, so both paths cost the same time.
_DUMMY_HASH_INPUT = "shipyard-timing-equaliser"


def burn_verification_time() -> None:
    verify_password(_dummy_hash(), _DUMMY_HASH_INPUT + "x")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(_DUMMY_HASH_INPUT)
