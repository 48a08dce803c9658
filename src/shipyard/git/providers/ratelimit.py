"""Rate-limit handling lives in :mod:`shipyard.outbound.ratelimit`; re-exported for Git callers."""

from __future__ import annotations

from shipyard.outbound.ratelimit import RateLimitExhausted, RateLimitGate

__all__ = ["RateLimitExhausted", "RateLimitGate"]
