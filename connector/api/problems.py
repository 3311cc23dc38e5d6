"""The one place errors become HTTP answers: RFC 9457 problem+json.

    {"type": "/problems/validation-failed", "title": "Validation failed", "status": 422,
     "detail": "Invalid fields: start_time. start_time: must include a UTC offset …",
     "instance": "/v1/appointments/crm-42",
     "errors": [{"field": "start_time", "message": "must include a UTC offset …"}]}

Problem types are documented in docs/problems.md. Nothing here ever shows a
secret or a stack trace; an unexpected error is logged with its trace and
answered with a bare 500 problem.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector import errors

log = logging.getLogger("calsync.api")

PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(status: int, slug: str, title: str, detail: str, instance: str | None = None,
            headers: Mapping[str, str] | None = None, **extra: Any) -> ProblemResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status,
                            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def problem_for(exc: errors.ApiError, instance: str | None) -> ProblemResponse:
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(exc, errors.ValidationFailed):
        extra["errors"] = [e.as_dict() for e in exc.errors]
    if isinstance(exc, errors.Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="calsync"'}
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return problem(exc.status, exc.slug, exc.title, exc.message, instance, headers, **extra)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ApiError)
    return problem_for(exc, request.url.path)


async def calcom_error(request: Request, exc: Exception) -> Response:
    """Cal.com failed a call made inside a request (an admin operation, slots): never a 500,
    and never "Cal.com did not answer" when it was calsync that held the call back."""
    assert isinstance(exc, errors.CalcomError)
    refusal: errors.ApiError
    if isinstance(exc, errors.RateLimitDeferred):
        wait = exc.retry_after or 1.0
        refusal = errors.PacingCalcom(
            f"calsync is pacing its calls to Cal.com to stay within this account's rate limit "
            f"(Cal.com blocks a key that goes over it); try again in {math.ceil(wait)} s.",
            retry_after=wait)
    elif isinstance(exc, errors.CalcomRateLimited):
        refusal = errors.UpstreamRateLimited(
            "Cal.com's rate limit for this account's key is exhausted; try again after Retry-After.",
            retry_after=exc.retry_after or 60.0)
    elif isinstance(exc, errors.CalcomUnavailable):
        refusal = errors.UpstreamUnavailable("Cal.com did not answer; try again shortly.",
                                             retry_after=exc.retry_after)
    else:
        refusal = errors.UpstreamRefused(f"Cal.com refused: {exc}")
    return problem_for(refusal, request.url.path)


_HTTP_SLUGS = {
    400: ("malformed-request", "Malformed request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
}


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404:
        detail = f"There is nothing at {request.method} {request.url.path}."
    return problem(exc.status_code, slug, title, detail, request.url.path, exc.headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client left before its body ended (or stalled past server.request_timeout_seconds):
    nobody reads this answer, and it is not calsync's failure."""
    log.info("client disconnected", extra={"action": "api.client_gone", "path": request.url.path})
    return problem(400, "malformed-request", "Malformed request",
                   "The client closed the connection before the body ended.", request.url.path)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error", exc_info=exc,
              extra={"action": "api.error", "path": request.url.path, "method": request.method})
    return problem(500, "internal-error", "Internal error",
                   "calsync failed to handle this request; it has been logged.", request.url.path)


EXCEPTION_HANDLERS = {
    errors.ApiError: api_error,
    errors.CalcomError: calcom_error,
    HTTPException: http_error,
    ClientDisconnect: client_gone,
    Exception: unexpected_error,
}


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a 413 problem, by Content-Length or by counting.

    Plain ASGI: ``BaseHTTPMiddleware`` would turn the 413 into a 500 (docs/testing.md).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope.get("path", ""), self.default_max_bytes)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > max_bytes:
                status, slug, title = ((400, "malformed-request", "Malformed request") if declared < 0
                                       else (413, "payload-too-large", "Payload too large"))
                detail = ("Content-Length is not a number." if declared < 0 else
                          f"The request body is larger than {max_bytes} bytes.")
                await problem(status, slug, title, detail, scope.get("path"))(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise errors.PayloadTooLarge(
                        f"The request body is larger than {max_bytes} bytes.")
            return message

        await self.app(scope, counting_receive, send)


def json_body_required(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    # +json covers application/merge-patch+json for PATCH (RFC 7396).
    if media != "application/json" and not media.endswith("+json"):
        raise errors.UnsupportedMediaType(
            f"Send the body as application/json (got {media or 'no Content-Type'}).")

