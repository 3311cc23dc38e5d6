"""Cal.com's wire shapes as the sandbox writes them: envelopes, errors, bookings, event types.

Key sets and order follow ../shared/calcom/fixtures/api-*.json; optional keys that
Cal.com omits when empty are omitted here too, so responses validate against
../shared/calcom/openapi.json (tests/connector/sandbox/test_contract.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mappings.times import to_wire_ms


class SandboxError(Exception):
    """An error answer in one of Cal.com's shapes (REFERENCE §3)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def nest_error(status: int, code: str, message: str, path: str, now: datetime,
               details: Any = None) -> SandboxError:
    """Shape 1: a Nest HttpException through HttpExceptionFilter."""
    if details is None:
        details = {"message": message, "error": _reason(status), "statusCode": status}
    return SandboxError(status, {
        "status": "error",
        "timestamp": to_wire_ms(now),
        "path": path,
        "error": {"code": code, "message": message, "details": details},
    })


def core_error(status: int, message: str) -> SandboxError:
    """Shape 4: a booking-core HttpError through Nest's default filter."""
    return SandboxError(status, {"statusCode": status, "message": message})


def bad_request(message: str, path: str, now: datetime) -> SandboxError:
    return nest_error(400, "BadRequestException", message, path, now)


def not_found(message: str, path: str, now: datetime) -> SandboxError:
    return nest_error(404, "NotFoundException", message, path, now,
                      details={"message": message, "error": "Not Found", "statusCode": 404})


def _reason(status: int) -> str:
    return {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 429: "Too Many Requests"}.get(status, "Error")


def success(data: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "success", "data": data, **extra}


def pagination(total: int, take: int, skip: int, returned: int) -> dict[str, Any]:
    """``PaginationMetaDto`` as apps/api/v2/src/lib/pagination/pagination.ts computes it."""
    total_pages = -(-total // take) if take else 0
    return {
        "returnedItems": returned,
        "totalItems": total,
        "itemsPerPage": take,
        "remainingItems": max(total - (skip + take), 0),
        "currentPage": skip // take + 1 if take else 1,
        "totalPages": total_pages,
        "hasNextPage": skip + take < total,
        "hasPreviousPage": skip > 0,
    }


def instant(value: datetime | None) -> str | None:
    return to_wire_ms(value) if value is not None else None
