"""Reading Cal.com's answers: the four error shapes and the rate-limit headers.

Error shapes (../shared/calcom/REFERENCE.md §3):
  1. Nest HttpException  {"status":"error","error":{"code","message","details"}}
  2. Prisma              same envelope, code CONFLICT / NOT_FOUND / BAD_REQUEST / …
  3. tRPC                same envelope, code "TRPCError", generic message
  4. booking-core        {"statusCode":400,"message":"…"} (message may be a list)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import httpx

_REMAINING = "x-ratelimit-remaining-"
_RESET = "x-ratelimit-reset-"
_LIMIT = "x-ratelimit-limit-"


@dataclass(frozen=True)
class ErrorBody:
    code: str | None
    message: str


def parse_error(response: httpx.Response) -> ErrorBody:
    """Cal.com's code and message from any of its four error shapes, or the raw text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()[:300]
        return ErrorBody(None, text or response.reason_phrase or f"HTTP {response.status_code}")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # shapes 1–3
            message = error.get("message") or _details_message(error.get("details"))
            return ErrorBody(error.get("code"), _text(message) or f"HTTP {response.status_code}")
        if "message" in body or "statusCode" in body:  # shape 4
            message = _text(body.get("message"))
            code = message if message == "booking_conflict_error" else body.get("error")
            return ErrorBody(code, message or f"HTTP {response.status_code}")
    return ErrorBody(None, _text(body)[:300] or f"HTTP {response.status_code}")


def _details_message(details: object) -> object:
    if isinstance(details, dict):
        if "message" in details:
            return details["message"]
        if "errors" in details:
            return details["errors"]
    return details


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "; ".join(_text(item) for item in value)
    if isinstance(value, dict):
        constraints = value.get("constraints")
        if isinstance(constraints, dict):
            return "; ".join(str(v) for v in constraints.values())
        return json.dumps(value, separators=(",", ":"))[:300]
    return str(value)


@dataclass(frozen=True)
class RateLimitInfo:
    """Cal.com's ``X-RateLimit-*-<Name>`` headers, matched by prefix (REFERENCE §4).

    ``remaining`` is the smallest remaining count over all named limits and
    ``reset_seconds`` the longest reset among the exhausted ones (else the longest).
    """

    limit: int | None
    remaining: int | None
    reset_seconds: float | None

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimitInfo | None:
        limits: dict[str, int] = {}
        remaining: dict[str, int] = {}
        resets: dict[str, float] = {}
        for name, value in headers.items():
            lower = name.lower()
            try:
                if lower.startswith(_REMAINING):
                    remaining[lower[len(_REMAINING):]] = int(_finite(value))
                elif lower.startswith(_RESET):
                    resets[lower[len(_RESET):]] = _finite(value)
                elif lower.startswith(_LIMIT):
                    limits[lower[len(_LIMIT):]] = int(_finite(value))
            except ValueError:
                continue
        if not (limits or remaining or resets):
            return None
        exhausted = [resets[name] for name, left in remaining.items() if left <= 0 and name in resets]
        reset = max(exhausted) if exhausted else (max(resets.values()) if resets else None)
        tightest = min(remaining, key=lambda name: remaining[name]) if remaining else None
        return cls(
            limit=limits.get(tightest) if tightest else (min(limits.values()) if limits else None),
            remaining=remaining[tightest] if tightest else None,
            reset_seconds=reset,
        )


def _finite(text: str) -> float:
    """A header's number; ValueError for anything else, inf and nan included."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {text!r}")
    return number
