"""Per-hook token buckets, in the process, checked before the database is touched.

A bucket per hook id holds ``burst`` tokens and gains ``per_minute / 60`` a second; each
delivery takes one, and an empty bucket answers 429 with the seconds until the next token.
In memory (per ``serve`` process, so N processes allow N times the rate) because the check
must cost nothing: it runs before the hook is looked up, for known and unknown ids alike, so a
flood of deliveries never reaches PostgreSQL. Buckets of the least recently seen ids are
dropped past ``max_hooks``: a flood over random ids costs a bounded amount of memory.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class HookRateLimiter:
    """``take(hook_id, now)`` -> 0 when allowed, else the seconds to wait (at least 1)."""

    def __init__(self, *, per_minute: int, burst: int, max_hooks: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_hooks = max_hooks
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, hook_id: str, now: float) -> int:
        with self._lock:
            bucket = self._buckets.pop(hook_id, None) or _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets[hook_id] = bucket
            while len(self._buckets) > self.max_hooks:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0
            if self.rate <= 0:
                return 60
            return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))
