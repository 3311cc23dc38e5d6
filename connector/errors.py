"""Every error calsync raises on purpose, in one hierarchy.

    CalsyncError
    ├── ConfigurationError        bad settings or setup; stops a start, never retried
    ├── ApiError                  rendered as problem+json by connector/api/problems.py
    │   ├── MalformedRequest      400: the body is not JSON / not an object
    │   ├── Unauthorized          401: missing, unknown or revoked bearer token
    │   ├── Forbidden             403: the token lacks the scope
    │   ├── NotFound              404
    │   ├── Conflict              409: the resource's state forbids the change
    │   ├── PayloadTooLarge       413
    │   ├── UnsupportedMediaType  415
    │   ├── ValidationFailed      422: one entry per offending field
    │   ├── UpstreamRefused       502: Cal.com refused a call made inside the request
    │   └── UpstreamUnavailable   503: Cal.com did not answer (Retry-After when known)
    │       ├── UpstreamRateLimited   503: Cal.com's own 429 for the account's key
    │       └── PacingCalcom          503: calsync held the call back to keep within the limit
    ├── CallbackFailed            the CRM's callback URL did not take an event: retry later
    └── CalcomError               raised by connector/calcom only
        ├── CalcomUnavailable     transient: retry later (carries retry_after)
        │   └── CalcomRateLimited 429, or calsync holding a call back: wait until retry_after
        ├── CalcomOutcomeUnknown  the request may have reached Cal.com: search before retrying
        ├── CalcomRejected        permanent: Cal.com refused; carries its message
        │   └── CalcomConflict    409 booking_conflict_error on create: search, then fail
        └── CalcomAuthError       the API key is missing, invalid or expired

A class's docstring is its default message. Retry paths catch ``CalcomError``;
``ConfigurationError`` deliberately does not share that base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CalsyncError(Exception):
    """calsync failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or "").strip().splitlines()[0]
        super().__init__(self.message)


class ConfigurationError(CalsyncError):
    """calsync is not configured correctly."""


# --- HTTP-facing errors -------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One offending field: a dotted path into the request and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ApiError(CalsyncError):
    """The request cannot be served."""

    status = 500
    slug = "error"
    title = "Internal error"
    retry_after: float | None = None  # seconds, sent as Retry-After


class MalformedRequest(ApiError):
    """The request body is not valid JSON."""

    status, slug, title = 400, "malformed-request", "Malformed request"


class Unauthorized(ApiError):
    """A valid bearer token is required."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ApiError):
    """The token does not carry the scope this operation needs."""

    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ApiError):
    """No such resource."""

    status, slug, title = 404, "not-found", "Not found"


class Conflict(ApiError):
    """The resource's current state does not allow this change."""

    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ApiError):
    """The request body is larger than calsync accepts."""

    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ApiError):
    """The request body must be application/json."""

    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(ApiError):
    """The request has invalid fields."""

    status, slug, title = 422, "validation-failed", "Validation failed"

    def __init__(self, errors: list[FieldError]) -> None:
        if not errors:
            raise ValueError("ValidationFailed needs at least one field error")
        self.errors = errors
        names = ", ".join(dict.fromkeys(e.field for e in errors))
        super().__init__(f"Invalid fields: {names}. {errors[0].field}: {errors[0].message}")

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls([FieldError(field, message)])


class UpstreamUnavailable(ApiError):
    """Cal.com is unreachable or failing; try again shortly."""

    status, slug, title = 503, "calcom-unavailable", "Cal.com unavailable"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamRateLimited(UpstreamUnavailable):
    """Cal.com's rate limit for this account's key is exhausted; try again after Retry-After."""

    slug, title = "calcom-rate-limited", "Cal.com rate limit reached"


class PacingCalcom(UpstreamUnavailable):
    """calsync is holding calls to Cal.com back to stay within the account's rate limit."""

    slug, title = "calcom-paced", "Pacing calls to Cal.com"


class UpstreamRefused(ApiError):
    """Cal.com refused the request calsync made on your behalf."""

    status, slug, title = 502, "calcom-refused", "Cal.com refused"


class CallbackFailed(CalsyncError):
    """The CRM's callback URL did not accept the event."""


# --- Cal.com ------------------------------------------------------------------


class CalcomError(CalsyncError):
    """Cal.com could not do what was asked."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.endpoint = endpoint


class CalcomUnavailable(CalcomError):
    """Cal.com is unreachable or failing; try again later."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CalcomRateLimited(CalcomUnavailable):
    """Cal.com's rate limit for this API key is exhausted."""


class RateLimitDeferred(CalcomRateLimited):
    """calsync held the call back to stay within the account's Cal.com rate limit."""


class CalcomOutcomeUnknown(CalcomError):
    """The request may have reached Cal.com, but no answer came back."""


class CalcomRejected(CalcomError):
    """Cal.com refused the request."""


class CalcomConflict(CalcomRejected):
    """Cal.com reports a conflicting booking for this slot."""


class CalcomAuthError(CalcomError):
    """Cal.com did not accept the account's API key."""
