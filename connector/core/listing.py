"""Reading many appointments at once: the searchable table and the month calendar (DESIGN §6).

``search`` filters, sorts and pages an account's appointments; ``month`` groups
one month's appointments by local day in the account's time zone. Both render
their rows with two more queries whatever the page size (bookings and event
types), so a page of 100 costs the same number of statements as a page of 10.
"""

from __future__ import annotations

import calendar as calendar_math
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from peewee import SQL, NodeList, Value
from pydantic import TypeAdapter, ValidationError

from connector import errors
from connector.inputs import (
    DEFAULT_PER_PAGE,
    EARLIEST,
    LATEST,
    Instant,
    paging,
)
from connector.outputs import resources
from mappings.db import database, is_postgres
from mappings.models import Account, Appointment
from mappings.times import to_api

STATUSES = ("pending", "active", "rescheduled", "completed", "cancelled",
            "awaiting_confirmation", "reschedule_requested", "rejected", "failed")
# Appointments that are not going to happen do not belong on a calendar.
HIDDEN_ON_CALENDAR = ("cancelled", "rejected")
SOURCES = ("crm", "calcom", "import", "console", "assistant")  # how an appointment came in
SORTABLE: dict[str, Any] = {name: getattr(Appointment, name) for name in (
    "external_id", "title", "attendee_name", "attendee_email", "attendee_time_zone",
    "business_name", "label", "call_type", "event_type_id", "start_time", "end_time",
    "duration_minutes", "status", "attendance", "sync_state", "source", "booking_uid",
    "cancelled_by", "created_at", "updated_at")}
SORTABLE["version"] = Appointment.desired_version
SORTABLE["id"] = Appointment.id
QUERY_MAX_LENGTH = 200
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_LIKE_SPECIALS = re.compile(r"([\\%_])")
_SERIES_UID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class SearchQuery:
    q: str | None = None
    statuses: tuple[str, ...] = ()
    label: str | None = None
    recurring_booking_uid: str | None = None  # the occurrences of one recurring series
    sources: tuple[str, ...] = ()  # crm, calcom, import, console, assistant
    start_from: datetime | None = None
    start_to: datetime | None = None
    sort: str = "start_time"
    order: str = "asc"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE


@dataclass(frozen=True)
class SearchPage:
    items: list[dict[str, Any]]
    total: int
    query: SearchQuery

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.query.per_page))


def parse_search(params: Mapping[str, str]) -> SearchQuery:
    """A ``SearchQuery`` from query parameters; every bad one is named in one 422."""
    problems: list[errors.FieldError] = []
    q = params.get("q")
    if q is not None:
        q = q.strip() or None
        if q is not None and (len(q) > QUERY_MAX_LENGTH or "\x00" in q):
            problems.append(errors.FieldError("q", f"must be at most {QUERY_MAX_LENGTH} characters"))
    statuses = _choices(params, "status", STATUSES, problems)
    label = params.get("label") or None
    if label is not None and (len(label) > 100 or "\x00" in label):
        problems.append(errors.FieldError("label", "must be at most 100 characters"))
    sources = _choices(params, "source", SOURCES, problems)
    series = params.get("recurring_booking_uid") or None
    if series is not None and not _SERIES_UID.fullmatch(series):
        problems.append(errors.FieldError("recurring_booking_uid",
                                          "must be a Cal.com uid (letters, digits, - and _; at most 64)"))
    bounds: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        bounds[name] = None
        if params.get(name):
            try:
                bounds[name] = _instant(params[name])
            except ValueError as exc:
                problems.append(errors.FieldError(name, str(exc)))
    sort = params.get("sort", "start_time")
    if sort not in SORTABLE:
        problems.append(errors.FieldError("sort", f"must be one of {', '.join(sorted(SORTABLE))}"))
    order = params.get("order", "asc").lower()
    if order not in ("asc", "desc"):
        problems.append(errors.FieldError("order", "must be asc or desc"))
    page, per_page, paging_problems = paging(params)
    problems += paging_problems
    if problems:
        raise errors.ValidationFailed(problems)
    return SearchQuery(q=q, statuses=statuses, label=label, recurring_booking_uid=series, sources=sources,
                       start_from=bounds["from"],
                       start_to=bounds["to"], sort=sort, order=order, page=page, per_page=per_page)


def _choices(params: Mapping[str, str], name: str, allowed: tuple[str, ...],
             problems: list[errors.FieldError]) -> tuple[str, ...]:
    """A comma-separated parameter's values, each one of ``allowed`` (else a problem naming it)."""
    chosen = tuple(part.strip() for part in (params.get(name) or "").split(",") if part.strip())
    wrong = [value for value in chosen if value not in allowed]
    if wrong:
        problems.append(errors.FieldError(
            name, f"must be among {', '.join(allowed)} (comma-separated); got {wrong[0]!r}"))
    return chosen


def search(account_id: str, query: SearchQuery, booker_url: str) -> SearchPage:
    """One page of the account's appointments matching ``query``, with the total."""
    condition = Appointment.account == account_id
    if query.q:
        pattern = "%" + _LIKE_SPECIALS.sub(r"\\\1", query.q) + "%"
        matches = [_contains(field, pattern) for field in (
            Appointment.title, Appointment.attendee_name, Appointment.business_name,
            Appointment.label)]
        condition &= matches[0] | matches[1] | matches[2] | matches[3]
    if query.statuses:
        condition &= Appointment.status.in_(query.statuses)
    if query.label:
        condition &= Appointment.label == query.label
    if query.recurring_booking_uid:
        condition &= Appointment.recurring_booking_uid == query.recurring_booking_uid
    if query.sources:
        condition &= Appointment.source.in_(query.sources)
    if query.start_from:
        condition &= Appointment.start_time >= query.start_from
    if query.start_to:
        condition &= Appointment.start_time < query.start_to
    total = Appointment.select().where(condition).count()
    column = SORTABLE[query.sort]
    ordering = [column.desc(nulls="LAST") if query.order == "desc" else column.asc(nulls="LAST")]
    if query.sort != "id":  # ties broken by id so pages never overlap
        ordering.append(Appointment.id.desc() if query.order == "desc" else Appointment.id.asc())
    rows = list(Appointment.select().where(condition).order_by(*ordering)
                .paginate(query.page, query.per_page))
    return SearchPage(resources.render(account_id, rows, booker_url), total, query)


def _contains(field: Any, pattern: str) -> NodeList:
    """``field`` matches ``pattern`` ignoring case, ``\\`` escaping ``%`` and ``_``: ILIKE on
    PostgreSQL; LIKE on SQLite, which ignores ASCII case but has no escape unless told."""
    operator = "ILIKE" if is_postgres(database) else "LIKE"
    return NodeList((field, SQL(operator), Value(pattern), SQL("ESCAPE '\\'")))


def links(path: str, page: SearchPage, params: Mapping[str, str]) -> dict[str, str | None]:
    """first/prev/self/next/last, each keeping the caller's other parameters."""
    def to(number: int) -> str:
        kept = {k: v for k, v in params.items() if k != "page"}
        return f"{path}?{urlencode({**kept, 'page': number})}"

    current, last = page.query.page, page.pages
    return {"self": to(current), "first": to(1), "last": to(last),
            "prev": to(current - 1) if 1 < current <= last + 1 else None,
            "next": to(current + 1) if current < last else None}


# --- the month calendar -------------------------------------------------------------


def parse_month(value: str | None) -> tuple[int, int]:
    match = _MONTH.fullmatch(value or "")
    if value is None:
        raise errors.ValidationFailed.one("month", "is required (YYYY-MM)")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise errors.ValidationFailed.one("month", "must be a month as YYYY-MM, e.g. 2026-03")
    year, number = int(match.group(1)), int(match.group(2))
    if not EARLIEST.year < year < LATEST.year:
        raise errors.ValidationFailed.one(
            "month", f"must lie between {EARLIEST.year + 1} and {LATEST.year - 1}")
    return year, number


def _month_rows(account: Account, year: int, number: int, *columns: Any) -> tuple[list[Appointment], dict]:
    """The month's appointments on the calendar (cancelled and rejected hidden), in start order,
    and an empty list for each of its local days."""
    zone = ZoneInfo(account.time_zone)
    first = date(year, number, 1)
    days = calendar_math.monthrange(year, number)[1]
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(first + timedelta(days=days), time(), zone)
    rows = list(Appointment.select(*columns)
                .where((Appointment.account == account.id)
                       & (Appointment.start_time >= start) & (Appointment.start_time < end)
                       & Appointment.status.not_in(HIDDEN_ON_CALENDAR))
                .order_by(Appointment.start_time, Appointment.id))
    return rows, {(first + timedelta(days=offset)).isoformat(): [] for offset in range(days)}


def month_outline(account: Account, year: int, number: int) -> dict[str, list[dict[str, Any]]]:
    """Every local day of the month → its appointments as a month grid shows them (title, times,
    status, attendee): the console's calendar, without rendering each whole resource."""
    zone = ZoneInfo(account.time_zone)
    rows, by_day = _month_rows(account, year, number, Appointment.external_id, Appointment.title,
                               Appointment.status, Appointment.start_time, Appointment.attendee_name)
    for row in rows:
        local = row.start_time.astimezone(zone)
        by_day[local.date().isoformat()].append({
            "external_id": row.external_id, "title": row.title, "status": row.status,
            "attendee_name": row.attendee_name, "start_time": to_api(row.start_time),
            "local_start_time": local.isoformat()})
    return by_day


def month(account: Account, year: int, number: int, booker_url: str) -> dict[str, Any]:
    """Every local day of the month → that day's appointments (cancelled and rejected hidden)."""
    zone = ZoneInfo(account.time_zone)
    rows, by_day = _month_rows(account, year, number)
    for item, row in zip(resources.render(account.id, rows, booker_url), rows, strict=True):
        local = row.start_time.astimezone(zone)
        by_day[local.date().isoformat()].append({**item, "local_start_time": local.isoformat()})
    return {"month": f"{year:04d}-{number:02d}", "time_zone": account.time_zone,
            "total": len(rows), "days": by_day}


_INSTANT = TypeAdapter(Instant)


def _instant(text: str) -> datetime:
    try:
        return _INSTANT.validate_python(text)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

