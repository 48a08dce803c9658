"""Domain exceptions; ``api.py`` maps them to HTTP responses in one place."""

from __future__ import annotations

from typing import Any


class ShipyardError(Exception):
    """Base of every error a user can act on."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class NotFound(ShipyardError):
    status_code = 404
    code = "not_found"


class Conflict(ShipyardError):
    status_code = 409
    code = "conflict"


class Unauthorized(ShipyardError):
    status_code = 401
    code = "unauthorized"


class PermissionDenied(ShipyardError):
    status_code = 403
    code = "forbidden"


class ValidationFailed(ShipyardError):
    """Input that is well-formed but not acceptable; ``field`` names what is wrong."""

    status_code = 422
    code = "validation_error"

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(
            message, code=code, details={"errors": [{"field": field, "message": message}]}
        )
        self.field = field


class RateLimited(ShipyardError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class ProviderError(ShipyardError):
    """An outside system (Git provider, CI server) refused or failed."""

    status_code = 502
    code = "provider_error"


class HostError(ShipyardError):
    """A host could not be reached or used; ``code`` says why."""

    status_code = 502
    code = "host_error"


class ServiceUnavailable(ShipyardError):
    status_code = 503
    code = "unavailable"
