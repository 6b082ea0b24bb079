"""One exception root for the whole platform; the API maps these to HTTP in one place."""

from __future__ import annotations


class AttuneError(Exception):
    """Base of every domain error. ``status`` and ``code`` drive the HTTP mapping."""

    status: int = 500
    code: str = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AttuneError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(AttuneError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(AttuneError):
    status = 403
    code = "FORBIDDEN"


class NotFound(AttuneError):
    status = 404
    code = "NOT_FOUND"


class Conflict(AttuneError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(AttuneError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ValidationFailed(AttuneError):
    """A field rule or a parameter schema failed (422 VALIDATION_ERROR)."""

    status = 422
    code = "VALIDATION_ERROR"


class Unprocessable(AttuneError):
    """A database constraint failed (422 UNPROCESSABLE_ENTITY)."""

    status = 422
    code = "UNPROCESSABLE_ENTITY"


class TooManyRequests(AttuneError):
    """Refused for now; the API answers with ``Retry-After: retry_after`` (seconds)."""

    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(AttuneError):
    """Configuration is missing or invalid; raised before any service starts."""
