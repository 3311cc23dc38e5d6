"""The Cal.com API v2 client.

Only this package knows httpx and HTTP status codes; above it there are the
errors of connector/errors.py (STYLE rule 2):

    network error before the request was sent ...... CalcomUnavailable (for a POST: Cal.com did nothing)
    timeout / reset / 5xx after a POST was sent ..... CalcomOutcomeUnknown
    timeout / reset / 5xx on a GET .................. CalcomUnavailable (retried here)
    429 ............................................. CalcomRateLimited (retry_after from X-RateLimit-Reset-*)
    401 ............................................. CalcomAuthError
    409 booking_conflict_error ...................... CalcomConflict
    other 4xx ....................................... CalcomRejected (Cal.com's message)
    2xx whose body cannot be read ................... as a timeout: the call may have worked

Each endpoint family needs its own ``cal-api-version``: without it Cal.com
silently routes to the 2024-04-15 handlers (REFERENCE §2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from connector import errors, metrics
from connector.calcom.responses import RateLimitInfo, parse_error
from mappings import from_calcom
from mappings.from_calcom import CalcomBooking, CalcomEventType, CalcomMe, CalcomReassignment
from mappings.times import to_wire

log = logging.getLogger("calsync.calcom")

API_VERSIONS = {
    "bookings": "2024-08-13",
    "slots": "2024-09-04",
    "event_types": "2024-06-14",
}
USER_AGENT = "calsync/0.1 (+https://github.com/calsync/calsync)"


@dataclass(frozen=True)
class BookingFilters:
    """Every filter of ``GET /v2/bookings`` (REFERENCE §5.3); None means "not sent"."""

    status: tuple[str, ...] = ()  # upcoming, recurring, past, cancelled, unconfirmed
    attendee_email: str | None = None
    attendee_name: str | None = None
    booking_uid: str | None = None
    event_type_id: int | None = None
    event_type_ids: tuple[int, ...] = ()
    team_id: int | None = None
    teams_ids: tuple[int, ...] = ()  # sic: "teamsIds"; "teamIds" is silently dropped
    after_start: datetime | None = None
    before_end: datetime | None = None
    after_created_at: datetime | None = None
    before_created_at: datetime | None = None
    after_updated_at: datetime | None = None
    before_updated_at: datetime | None = None
    sort_start: str | None = None
    sort_end: str | None = None
    sort_created: str | None = None
    sort_updated_at: str | None = None  # sic: "sortUpdatedAt", not "sortUpdated"
    take: int = 100
    skip: int = 0

    def to_query(self) -> dict[str, str]:
        query: dict[str, str] = {}
        if self.status:
            query["status"] = ",".join(self.status)
        for key, value in (
            ("attendeeEmail", self.attendee_email),
            ("attendeeName", self.attendee_name),
            ("bookingUid", self.booking_uid),
        ):
            if value is not None:
                query[key] = value
        if self.event_type_id is not None:
            query["eventTypeId"] = str(self.event_type_id)
        if self.event_type_ids:
            query["eventTypeIds"] = ",".join(str(i) for i in self.event_type_ids)
        if self.team_id is not None:
            query["teamId"] = str(self.team_id)
        if self.teams_ids:
            query["teamsIds"] = ",".join(str(i) for i in self.teams_ids)
        for key, instant in (
            ("afterStart", self.after_start),
            ("beforeEnd", self.before_end),
            ("afterCreatedAt", self.after_created_at),
            ("beforeCreatedAt", self.before_created_at),
            ("afterUpdatedAt", self.after_updated_at),
            ("beforeUpdatedAt", self.before_updated_at),
        ):
            if instant is not None:
                query[key] = to_wire(instant)
        for key, order in (
            ("sortStart", self.sort_start),
            ("sortEnd", self.sort_end),
            ("sortCreated", self.sort_created),
            ("sortUpdatedAt", self.sort_updated_at),
        ):
            if order is not None:
                if order not in ("asc", "desc"):
                    raise ValueError(f"{key} must be asc or desc")
                query[key] = order
        if not 1 <= self.take <= 250:
            raise ValueError("take must be between 1 and 250")
        if self.skip < 0:
            raise ValueError("skip must be 0 or more")
        query["take"] = str(self.take)
        query["skip"] = str(self.skip)
        return query


@dataclass(frozen=True)
class BookingPage:
    bookings: tuple[CalcomBooking, ...]
    total_items: int
    has_next_page: bool
    raw_pagination: dict[str, Any] = field(repr=False, default_factory=dict)


class CalcomClient:
    """One Cal.com account's API, over a shared ``httpx.Client`` (the seam tests replace)."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        api_key: str | None,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        read_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        on_rate_limit: Callable[[RateLimitInfo], None] | None = None,
        before_request: Callable[[], None] | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout,
                                      write=read_timeout, pool=connect_timeout)
        self._read_attempts = max(1, read_attempts)
        self._sleep = sleep
        self._on_rate_limit = on_rate_limit
        # Called before every request; may wait, or raise RateLimitDeferred (connector/calcom/ratelimit.py).
        self._before_request = before_request

    def __repr__(self) -> str:  # never show the key
        return f"CalcomClient(base_url={self._base_url!r})"

    # --- bookings ---------------------------------------------------------------

    def create_booking(self, body: dict[str, Any]) -> CalcomBooking:
        """``POST /v2/bookings``. An unknown outcome raises CalcomOutcomeUnknown: search first."""
        data = self._call("POST", "/v2/bookings", family="bookings", json=body)
        if isinstance(data, list):
            # A recurring event type answers with one booking per occurrence (REFERENCE §5.1): the
            # appointment is the first; the others become appointments of their own (Reconciler.reconcile_series).
            occurrences = [self._parse(from_calcom.parse_booking, item, "POST /v2/bookings", unsafe=True)
                           for item in data]
            if not occurrences:
                raise errors.CalcomOutcomeUnknown("Cal.com answered an empty booking list")
            return min(occurrences, key=lambda booking: booking.start)
        return self._parse(from_calcom.parse_booking, data, "POST /v2/bookings", unsafe=True)

    def reschedule_booking(self, uid: str, body: dict[str, Any]) -> CalcomBooking:
        """``POST /v2/bookings/{uid}/reschedule``: the answer is a *new* booking with a new uid.

        Not idempotent: after CalcomOutcomeUnknown, GET the old uid and follow
        ``rescheduledToUid`` before trying again (REFERENCE §5.4).
        """
        data = self._call("POST", f"/v2/bookings/{quote(uid, safe='')}/reschedule",
                          family="bookings", json=body)
        return self._parse(from_calcom.parse_booking, data, "POST /v2/bookings/{uid}/reschedule",
                           unsafe=True)

    def cancel_booking(self, uid: str, body: dict[str, Any]) -> CalcomBooking:
        """``POST /v2/bookings/{uid}/cancel``; a second cancel is a 400 (REFERENCE §5.5)."""
        data = self._call("POST", f"/v2/bookings/{quote(uid, safe='')}/cancel", family="bookings",
                          json=body)
        if isinstance(data, list):  # a recurring series
            data = data[0] if data else {}
        return self._parse(from_calcom.parse_booking, data, "POST /v2/bookings/{uid}/cancel",
                           unsafe=True)

    def mark_absent(self, uid: str, body: dict[str, Any]) -> CalcomBooking:
        """``POST /v2/bookings/{uid}/mark-absent``; only after the start (REFERENCE §5.6)."""
        data = self._call("POST", f"/v2/bookings/{quote(uid, safe='')}/mark-absent",
                          family="bookings", json=body)
        return self._parse(from_calcom.parse_booking, data, "POST /v2/bookings/{uid}/mark-absent",
                           unsafe=True)

    def confirm_booking(self, uid: str) -> CalcomBooking:
        """``POST /v2/bookings/{uid}/confirm`` (the host's key): pending → accepted (REFERENCE §5.7)."""
        data = self._call("POST", f"/v2/bookings/{quote(uid, safe='')}/confirm", family="bookings")
        return self._parse(from_calcom.parse_booking, data, "POST /v2/bookings/{uid}/confirm",
                           unsafe=True)

    def decline_booking(self, uid: str, body: dict[str, Any]) -> CalcomBooking:
        """``POST /v2/bookings/{uid}/decline``: pending → rejected (REFERENCE §5.7)."""
        data = self._call("POST", f"/v2/bookings/{quote(uid, safe='')}/decline", family="bookings",
                          json=body)
        return self._parse(from_calcom.parse_booking, data, "POST /v2/bookings/{uid}/decline",
                           unsafe=True)

    def reassign_booking(self, uid: str, user_id: int | None) -> CalcomReassignment:
        """``POST /v2/bookings/{uid}/reassign[/{userId}]``: a round-robin or managed booking to
        another host, Cal.com's pick or ``user_id``."""
        path = f"/v2/bookings/{quote(uid, safe='')}/reassign"
        body: dict[str, Any] = {}
        if user_id is not None:  # ReassignToUserBookingInput_2024_08_13; the automatic one takes none
            path += f"/{int(user_id)}"
            body["json"] = {"reason": "Reassigned in CRM"}
        data = self._call("POST", path, family="bookings", **body)
        return self._parse(from_calcom.parse_reassignment, data, "POST /v2/bookings/{uid}/reassign",
                           unsafe=True)

    def get_booking(self, uid: str) -> CalcomBooking:
        """``GET /v2/bookings/{uid}``; a cancelled or rescheduled booking is still returned."""
        path = f"/v2/bookings/{quote(uid, safe='')}"
        data = self._call("GET", path, family="bookings")
        if isinstance(data, list):  # a recurring series uid
            data = data[0] if data else {}
        return self._parse(from_calcom.parse_booking, data, "GET /v2/bookings/{uid}")

    def get_series(self, uid: str) -> list[CalcomBooking]:
        """``GET /v2/bookings/{uid}`` of a recurring series' uid: its occurrences, earliest first
        (a plain booking's uid answers that booking alone)."""
        path = f"/v2/bookings/{quote(uid, safe='')}"
        data = self._call("GET", path, family="bookings")
        items = data if isinstance(data, list) else [data]
        occurrences = [self._parse(from_calcom.parse_booking, item, "GET /v2/bookings/{uid}")
                       for item in items]
        return sorted(occurrences, key=lambda booking: booking.start)

    def list_bookings(self, filters: BookingFilters | None = None) -> BookingPage:
        """One page of ``GET /v2/bookings``."""
        filters = filters or BookingFilters()
        payload = self._call("GET", "/v2/bookings", family="bookings", params=filters.to_query(),
                             envelope=True)

        def page(payload: dict[str, Any]) -> BookingPage:
            items = payload.get("data") or []
            pagination = payload.get("pagination") or {}
            if not isinstance(items, list) or not isinstance(pagination, dict):
                raise TypeError("data must be a list and pagination an object")
            has_next = pagination.get("hasNextPage")
            if has_next is None:
                has_next = len(items) >= filters.take
            return BookingPage(
                bookings=tuple(from_calcom.parse_booking(item) for item in items),
                total_items=int(pagination.get("totalItems", len(items))),
                has_next_page=bool(has_next),
                raw_pagination=pagination,
            )

        return self._parse(page, payload, "GET /v2/bookings")

    def iter_bookings(self, filters: BookingFilters | None = None) -> Iterator[BookingPage]:
        """Every page of ``GET /v2/bookings``, following ``skip`` until the last page.

        Bounded whatever Cal.com answers: it stops once ``totalItems`` bookings have come, or
        when a page repeats the one before (a server that ignores ``skip`` would otherwise be
        paged for ever), and logs why it stopped early.
        """
        filters = filters or BookingFilters()
        skip = filters.skip
        seen = 0
        previous: tuple[str, ...] = ()
        while True:
            page = self.list_bookings(_with(filters, skip=skip))
            uids = tuple(booking.uid for booking in page.bookings)
            if uids and uids == previous:
                self._paging_stopped("a page repeated the one before", skip, page)
                return
            yield page
            seen += len(uids)
            if not page.has_next_page or not uids:
                return
            if seen >= page.total_items:
                self._paging_stopped("totalItems reached while hasNextPage was still true", skip, page)
                return
            previous = uids
            skip += len(uids)

    def _paging_stopped(self, why: str, skip: int, page: BookingPage) -> None:
        log.warning(f"stopped paging GET /v2/bookings: {why}", extra={
            "action": "calcom.paging_stopped", "skip": skip, "total_items": page.total_items,
            "returned": len(page.bookings)})

    def get_slots(self, event_type_id: int, start: datetime, end: datetime, time_zone: str) -> dict[str, Any]:
        """``GET /v2/slots`` with ``format=range``: ``{date: [{start, end}, …]}`` in ``time_zone``.

        ``start``/``end`` are sent as UTC instants (Cal.com reads them in UTC; REFERENCE §5.8).
        """
        params = {"eventTypeId": str(int(event_type_id)), "start": to_wire(start), "end": to_wire(end),
                  "timeZone": time_zone, "format": "range"}
        data = self._call("GET", "/v2/slots", family="slots", params=params)
        return data if isinstance(data, dict) else {}

    # --- webhook subscriptions (any or no version; REFERENCE §5.10) ---------------

    def list_webhooks(self) -> list[dict[str, Any]]:
        """``GET /v2/webhooks`` (take ≤ 250, no pagination object). Ids are UUID strings."""
        data = self._call("GET", "/v2/webhooks", family=None, params={"take": "250", "skip": "0"})
        return [item for item in data or [] if isinstance(item, dict)]

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v2/webhooks", family=None, json=body)

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/v2/webhooks/{quote(str(webhook_id), safe='')}", family=None,
                          json=body)

    def delete_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"/v2/webhooks/{quote(str(webhook_id), safe='')}", family=None)

    # --- event types and me -----------------------------------------------------

    def list_event_types(self) -> list[CalcomEventType]:
        """``GET /v2/event-types``: the key's user's own event types."""
        data = self._call("GET", "/v2/event-types", family="event_types")
        return [self._parse(from_calcom.parse_event_type, item, "GET /v2/event-types")
                for item in data or []]

    def list_team_ids(self) -> list[int]:
        """``GET /v2/teams`` (any version): the ids of the teams the key's user belongs to."""
        data = self._call("GET", "/v2/teams", family=None)
        return [int(item["id"]) for item in data or []
                if isinstance(item, dict) and isinstance(item.get("id"), int | float)
                and not item.get("isOrganization")]

    def list_team_event_types(self, team_id: int) -> list[CalcomEventType]:
        """``GET /v2/teams/{teamId}/event-types`` (any version)."""
        data = self._call("GET", f"/v2/teams/{int(team_id)}/event-types", family=None)
        return [self._parse(from_calcom.parse_event_type, item, "GET /v2/teams/{id}/event-types")
                for item in data or []]

    def get_me(self) -> CalcomMe:
        """``GET /v2/me``: whose key this is; also the cheapest check that a key works."""
        data = self._call("GET", "/v2/me", family=None)
        return self._parse(from_calcom.parse_me, data, "GET /v2/me")

    # --- plumbing ---------------------------------------------------------------

    def _headers(self, family: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if family is not None:
            headers["cal-api-version"] = API_VERSIONS[family]
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _call(self, method: str, path: str, *, family: str | None, envelope: bool = False,
              **kwargs: Any) -> Any:
        unsafe = method != "GET"

        def attempt() -> Any:
            return self._send(method, path, family=family, unsafe=unsafe, envelope=envelope, **kwargs)

        retrying = tenacity.Retrying(
            # Only failures where Cal.com surely did nothing, or reads; never a 429
            # (that waits for the reset, in the queue) and never an unknown outcome.
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, errors.CalcomUnavailable)
                and not isinstance(e, errors.CalcomRateLimited)
            ),
            stop=tenacity.stop_after_attempt(self._read_attempts),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _send(self, method: str, path: str, *, family: str | None, unsafe: bool, envelope: bool,
              **kwargs: Any) -> Any:
        endpoint = f"{method} {path}"
        label = metrics.endpoint_template(method, path)
        if self._before_request is not None:
            self._before_request()
        started = time.perf_counter()
        try:
            response = self._http.request(
                method, self._base_url + path, headers=self._headers(family),
                timeout=self._timeout, **kwargs,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            metrics.calcom_requests.labels(label, "network").inc()
            raise errors.CalcomUnavailable(f"cannot reach Cal.com: {type(exc).__name__}",
                                           endpoint=endpoint) from None
        except httpx.HTTPError as exc:
            metrics.calcom_requests.labels(label, "network").inc()
            message = f"no answer from Cal.com: {type(exc).__name__}"
            if unsafe:
                raise errors.CalcomOutcomeUnknown(message, endpoint=endpoint) from None
            raise errors.CalcomUnavailable(message, endpoint=endpoint) from None
        elapsed = time.perf_counter() - started
        metrics.calcom_requests.labels(label, str(response.status_code)).inc()
        metrics.calcom_latency.labels(label).observe(elapsed)
        limits = RateLimitInfo.from_headers(response.headers)
        if limits is not None and self._on_rate_limit is not None:
            self._on_rate_limit(limits)
        log.debug("cal.com call", extra={"action": "calcom.call", "endpoint": endpoint,
                                          "status": response.status_code,
                                          "ms": round(elapsed * 1000, 1)})
        if response.is_success:
            try:
                payload = response.json()
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise self._unreadable(endpoint, unsafe, response.status_code) from None
            if not isinstance(payload, dict) or "data" not in payload:
                raise self._unreadable(endpoint, unsafe, response.status_code)
            return payload if envelope else payload["data"]
        raise self._error(response, endpoint, unsafe, limits)

    @staticmethod
    def _unreadable(endpoint: str, unsafe: bool, status: int) -> errors.CalcomError:
        message = "Cal.com answered with a body calsync cannot read"
        if unsafe:
            return errors.CalcomOutcomeUnknown(message, status=status, endpoint=endpoint)
        return errors.CalcomUnavailable(message, status=status, endpoint=endpoint)

    @staticmethod
    def _error(response: httpx.Response, endpoint: str, unsafe: bool,
               limits: RateLimitInfo | None) -> errors.CalcomError:
        status = response.status_code
        body = parse_error(response)

        def answer(kind: type[errors.CalcomError]) -> errors.CalcomError:
            return kind(body.message, status=status, code=body.code, endpoint=endpoint)

        if status == 429:
            # No Retry-After: Cal.com's guard only sets X-RateLimit-Reset-* (REFERENCE §4).
            retry_after = limits.reset_seconds if limits and limits.reset_seconds else 60.0
            return errors.CalcomRateLimited(body.message, retry_after=retry_after, status=status,
                                            code=body.code, endpoint=endpoint)
        if status >= 500:
            return answer(errors.CalcomOutcomeUnknown if unsafe else errors.CalcomUnavailable)
        if status == 401:
            return answer(errors.CalcomAuthError)
        if status == 409 and body.code == "booking_conflict_error":
            return answer(errors.CalcomConflict)
        if status in (408, 425):
            return answer(errors.CalcomUnavailable)
        return answer(errors.CalcomRejected)

    @staticmethod
    def _parse(parser: Callable[[Any], Any], data: Any, endpoint: str, *, unsafe: bool = False) -> Any:
        try:
            return parser(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            message = f"unexpected answer shape: {exc}"
            if unsafe:
                raise errors.CalcomOutcomeUnknown(message, endpoint=endpoint) from None
            raise errors.CalcomUnavailable(message, endpoint=endpoint) from None


def _with(filters: BookingFilters, **changes: Any) -> BookingFilters:
    return replace(filters, **changes)
