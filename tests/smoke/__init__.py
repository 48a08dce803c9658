"""Install checks run by ``make smoke-lowest`` and ``make wheel-check`` (not pytest tests)."""
