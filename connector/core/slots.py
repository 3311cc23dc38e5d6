"""Free slots of one local date, from Cal.com, with a short cache calsync's own bookings clear.

A local date is not a UTC date: in Europe/Berlin on the last Sunday of March the
day lasts 23 hours, and in America/Santiago some days start at 01:00. The day's
bounds are computed in the zone and sent to Cal.com as UTC instants (Cal.com
reads ``start``/``end`` in UTC, and an ``end`` at exactly 00:00:00 would mean the
end of that day, so the end is sent one second early). Cal.com's answer is
then cut to the day, since it groups by its own dates.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from connector import errors
from connector.calcom import CalcomClient
from mappings.times import parse_instant

TTL_SECONDS = 30.0


@dataclass(frozen=True)
class DaySlots:
    date: date
    time_zone: str
    event_type_id: int
    slots: tuple[tuple[datetime, datetime | None], ...]
    reason: str | None = None

    def as_dict(self) -> dict:
        zone = ZoneInfo(self.time_zone)
        body = {"date": self.date.isoformat(), "time_zone": self.time_zone,
                "event_type_id": self.event_type_id,
                "slots": [{"start": start.astimezone(zone).isoformat(),
                           "end": end.astimezone(zone).isoformat() if end else None}
                          for start, end in self.slots]}
        if self.reason:
            body["reason"] = self.reason
        return body


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where ``day`` starts and the next day starts, in ``zone``."""
    def start_of(d: date) -> datetime:
        # fold=0 (PEP 495): a midnight skipped by a DST jump maps to the jump itself, the day's
        # first real instant; a midnight that happens twice maps to the first one.
        return datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)

    return start_of(day), start_of(day + timedelta(days=1))


class SlotCache:
    """Answers per (account, event type, date, zone) for ``TTL_SECONDS``; thread-safe."""

    def __init__(self, ttl_seconds: float = TTL_SECONDS) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[tuple, tuple[float, DaySlots]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> DaySlots | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or time.monotonic() - hit[0] >= self.ttl:
                return None
            return hit[1]

    def put(self, key: tuple, value: DaySlots) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def invalidate(self, account_id: str) -> None:
        """calsync booked, moved or cancelled something for this account: its slots changed."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == account_id]:
                del self._entries[key]


def free_slots(client: CalcomClient, cache: SlotCache, account_id: str, day: date, event_type_id: int,
               time_zone: str, now: datetime) -> DaySlots:
    zone = ZoneInfo(time_zone)
    if day < now.astimezone(zone).date():
        return DaySlots(day, time_zone, event_type_id, (), reason="the date is in the past")
    key = (account_id, event_type_id, day, time_zone)
    cached = cache.get(key)
    if cached is not None:
        return cached
    first, after = day_bounds(day, zone)
    try:
        data = client.get_slots(event_type_id, first, after - timedelta(seconds=1), time_zone)
    except errors.CalcomRejected as refused:  # other Cal.com failures answer 503/502 at the API
        if refused.status in (400, 404):
            raise errors.ValidationFailed.one(
                "event_type_id", f"Cal.com has no bookable event type {event_type_id}: {refused}") from None
        raise
    found: dict[datetime, datetime | None] = {}
    for items in data.values():
        for item in items if isinstance(items, list) else []:
            try:
                start = parse_instant(item["start"])
                end = parse_instant(item["end"]) if item.get("end") else None
            except (KeyError, TypeError, ValueError):
                continue  # a slot without a readable start is no slot
            if first <= start < after and start >= now:
                found[start] = end
    result = DaySlots(day, time_zone, event_type_id, tuple(sorted(found.items())))
    cache.put(key, result)
    return result
