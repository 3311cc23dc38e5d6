"""Instants on the wire: parsing Cal.com's several ISO 8601 spellings, writing UTC with ``Z``.

Cal.com writes ``…:00Z``, ``….000Z`` and ``…+00:00`` depending on the code path
(../shared/calcom/REFERENCE.md §10 item 8): parse, never string-compare.
"""

from __future__ import annotations

from datetime import UTC, datetime

# The instants calsync holds: far enough out for any meeting, clear of datetime's overflow edges.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


class NaiveDatetimeError(ValueError):
    """A datetime without a UTC offset was given where an instant is required."""


class InstantOutOfRange(ValueError):
    """The instant cannot be held in UTC (year 1 with a positive offset, 9999 with a negative)."""


def require_aware(value: datetime) -> datetime:
    """``value`` in UTC; refuses naive datetimes (STYLE rule 7)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError("datetime has no UTC offset")
    return value.astimezone(UTC)


def parse_instant(text: str, *, assume_utc: bool = False) -> datetime:
    """An aware UTC datetime from ISO 8601 text.

    ``assume_utc`` reads a missing offset as UTC, which is what Cal.com's own
    server does for booking starts (REFERENCE §5.1); calsync's API never does.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("expected an ISO 8601 date-time string")
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    parsed = datetime.fromisoformat(cleaned)
    if parsed.tzinfo is None:
        if not assume_utc:
            raise NaiveDatetimeError(f"{text!r} has no UTC offset")
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InstantOutOfRange(f"{text!r} lies outside the years datetime can hold") from None


def to_wire(value: datetime) -> str:
    """UTC ISO 8601 with ``Z`` and whole seconds, as calsync sends to Cal.com."""
    return require_aware(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_wire_ms(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``, as Cal.com's REST API writes instants."""
    utc = require_aware(value)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_api(value: datetime | None) -> str | None:
    """How calsync's own API writes an instant: UTC, ISO 8601, ``Z``."""
    if value is None:
        return None
    utc = require_aware(value)
    text = utc.isoformat(timespec="seconds" if utc.microsecond == 0 else "milliseconds")
    return text.replace("+00:00", "Z")
