"""A weekly availability schedule in a time zone, and the slots it offers on a day."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RULE = re.compile(r"^\s*([A-Za-z]{3})(?:\s*-\s*([A-Za-z]{3}))?\s+(.+?)\s*$")
_RANGE = re.compile(r"^\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*$")


@dataclass(frozen=True)
class WeeklySchedule:
    """Opening hours per weekday, e.g. ``"Mon-Fri 09:00-12:00,13:00-17:00; Sat 10:00-14:00"``."""

    hours: tuple[tuple[tuple[time, time], ...], ...]  # index 0 = Monday

    @classmethod
    def parse(cls, text: str) -> WeeklySchedule:
        hours: list[list[tuple[time, time]]] = [[] for _ in DAYS]
        if not text.strip():
            raise ValueError("must name at least one day, e.g. 'Mon-Fri 09:00-17:00'")
        for rule in text.split(";"):
            match = _RULE.match(rule)
            if not match or match.group(1).lower() not in DAYS:
                raise ValueError(f"cannot read {rule.strip()!r}; write e.g. 'Mon-Fri 09:00-17:00'")
            first = DAYS.index(match.group(1).lower())
            last_name = (match.group(2) or match.group(1)).lower()
            if last_name not in DAYS:
                raise ValueError(f"unknown day {match.group(2)!r}")
            last = DAYS.index(last_name)
            for span in match.group(3).split(","):
                found = _RANGE.match(span)
                if not found:
                    raise ValueError(f"cannot read hours {span.strip()!r}; write e.g. 09:00-17:00")
                h1, m1, h2, m2 = (int(g) for g in found.groups())
                if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
                    raise ValueError(f"{span.strip()!r} is not a time of day")
                start = time(h1, m1)
                end = time.max if h2 == 24 else time(h2, m2)
                if end <= start:
                    raise ValueError(f"{span.strip()!r} ends before it starts")
                for day in range(first, last + 1):
                    hours[day].append((start, end))
        return cls(tuple(tuple(sorted(day)) for day in hours))

    def open_intervals(self, day: date, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
        """The day's opening hours as aware datetimes (correct across DST changes)."""
        result = []
        for start, end in self.hours[day.weekday()]:
            begin = datetime.combine(day, start, tzinfo=zone)
            if end == time.max:
                finish = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
            else:
                finish = datetime.combine(day, end, tzinfo=zone)
            result.append((begin, finish))
        return result

    def slot_starts(self, day: date, zone: ZoneInfo, length: timedelta, step: timedelta):
        """Every start on ``day`` where a meeting of ``length`` fits inside opening hours."""
        for begin, finish in self.open_intervals(day, zone):
            cursor = begin
            while cursor + length <= finish:
                yield cursor
                cursor += step

    def is_open(self, start: datetime, end: datetime, zone: ZoneInfo) -> bool:
        """Whether ``start``–``end`` lies inside open time (intervals that touch, even across
        midnight, are one stretch, as Cal.com's availability is)."""
        local = start.astimezone(zone).date()
        intervals = sorted(interval for offset in (-1, 0, 1)
                           for interval in self.open_intervals(local + timedelta(days=offset), zone))
        merged: list[list[datetime]] = []
        for begin, finish in intervals:
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], finish)
            else:
                merged.append([begin, finish])
        return any(begin <= start and end <= finish for begin, finish in merged)
