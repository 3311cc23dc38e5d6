"""The console's appointment pages: the table and the month calendar, the create and edit
drawer with its slot picker, the detail page with its history, and the actions on one
appointment (reschedule, cancel, attendance, the host's answer)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.console.frame import Caller, Console, field_messages, form_value, is_http, redirect
from connector.core import accounts, appointments, host_actions, listing, slots
from connector.inputs import (
    PER_PAGE_CHOICES,
    REMINDER_CHANNELS,
    AppointmentInput,
    AttendanceInput,
    CancelInput,
    DeclineInput,
    check_external_id,
    parse,
)
from connector.outputs import audit, ics, resources
from mappings import bookings
from mappings.models import Appointment, EventType

TABS = ("upcoming", "past", "cancelled", "rescheduled", "all")
LIVE = ("pending", "active", "rescheduled", "awaiting_confirmation", "reschedule_requested", "failed")
ENDED = ("cancelled", "rejected")
VIEWS = ("table", "calendar")
COLUMNS = (("title", "Title"), ("attendee_name", "Attendee"), ("start_time", "Start"),
           ("status", "Status"), ("label", "Label"), ("source", "Source"), ("sync_state", "Sync"))
REASON_LIMIT = 500


def routes(console: Console) -> list[Route]:
    pages = AppointmentPages(console)
    base = "/appointments"
    one = base + "/{external_id}"
    return [
        Route(base, pages.index, methods=["GET"]),
        Route(base + "/new", pages.new, methods=["GET"]),
        Route(base + "/new", pages.create, methods=["POST"]),
        Route("/slots", pages.slot_picker, methods=["GET"]),
        Route(one, pages.detail, methods=["GET"]),
        Route(one + "/edit", pages.edit, methods=["GET"]),
        Route(one + "/edit", pages.save, methods=["POST"]),
        Route(one + "/state", pages.state, methods=["GET"]),
        Route(one + "/invite.ics", pages.invite, methods=["GET"]),
        Route(one + "/reschedule", pages.reschedule, methods=["POST"]),
        Route(one + "/cancel", pages.cancel, methods=["POST"]),
        Route(one + "/attendance", pages.attendance, methods=["POST"]),
        Route(one + "/confirm", pages.confirm, methods=["POST"]),
        Route(one + "/decline", pages.decline, methods=["POST"]),
    ]


class AppointmentPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ctx = console.ctx

    # --- the list: table or month calendar --------------------------------------------

    async def index(self, request: Request) -> Response:
        return await self.console.view(request, accounts.READ, lambda caller: self._index(request, caller))

    async def new(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            return self._index(request, caller, drawer=self._drawer(request, caller, None, {}, {}))

        return await self.console.view(request, accounts.WRITE, build)

    def _index(self, request: Request, caller: Caller, drawer: dict[str, Any] | None = None,
               status: int = 200) -> Response:
        params = request.query_params
        view = params.get("view") or request.cookies.get("calsync_console_view") or "table"
        view = view if view in VIEWS else "table"
        context: dict[str, Any] = {"view": view, "drawer": drawer, "tabs": TABS, "done": params.get("done")}
        if view == "calendar":
            context.update(self._calendar(caller, params.get("month"), params.get("day")))
        else:
            context.update(self._table(caller, params))
        response = self.console.render(request, "appointments.html", caller, status=status, **context)
        response.set_cookie("calsync_console_view", view, path="/console", httponly=True, samesite="strict")
        return response

    def _table(self, caller: Caller, params: Any) -> dict[str, Any]:
        tab = params.get("tab") if params.get("tab") in TABS else "upcoming"
        wanted = {name: params[name] for name in ("q", "sort", "order", "page", "per_page", "source")
                  if params.get(name)}
        now = self.ctx.clock.now()
        search: dict[str, str] = dict(wanted)
        search.setdefault("sort", "start_time")
        if tab == "upcoming":
            search.update(status=",".join(LIVE), **{"from": _iso(now)})
        elif tab == "past":
            search.update(status=",".join(s for s in listing.STATUSES if s not in ENDED), to=_iso(now))
            search.setdefault("order", "desc")
        elif tab == "cancelled":
            search.update(status=",".join(ENDED))
        elif tab == "rescheduled":
            search.update(status="rescheduled")
        problems: dict[str, str] = {}
        try:
            query = listing.parse_search(search)
        except errors.ValidationFailed as failed:
            problems = field_messages(failed)
            query = listing.parse_search({k: v for k, v in search.items() if k not in problems})
        page = listing.search(caller.account.id, query, self.console.booker_url)

        def link(**changes: Any) -> str:
            merged = {"tab": tab, **wanted, **{k: str(v) for k, v in changes.items()}}
            return "/console/appointments?" + urlencode({k: v for k, v in merged.items() if v})

        items = [{**item, "start": _instant(item["start_time"])} for item in page.items]
        return {"tab": tab, "items": items, "total": page.total, "pages": page.pages, "query": query,
                "q": wanted.get("q", ""), "columns": COLUMNS, "per_page_choices": PER_PAGE_CHOICES,
                "sources": listing.SOURCES, "source": wanted.get("source", ""),
                "link": link, "problems": problems}

    def _calendar(self, caller: Caller, month_text: str | None, day_text: str | None) -> dict[str, Any]:
        today = self.ctx.clock.now().astimezone(caller.zone).date()
        try:
            year, number = listing.parse_month(month_text or f"{today.year:04d}-{today.month:02d}")
        except errors.ValidationFailed:
            year, number = today.year, today.month
        days = listing.month_outline(caller.account, year, number)
        first = date(year, number, 1)
        start = first - timedelta(days=first.weekday())
        weeks = []
        cursor = start
        while cursor <= max(date.fromisoformat(d) for d in days) or cursor.weekday() != 0:
            week = []
            for _ in range(7):
                key = cursor.isoformat()
                week.append({"date": cursor, "in_month": cursor.month == number,
                             "items": days.get(key, []), "today": cursor == today})
                cursor += timedelta(days=1)
            weeks.append(week)
        previous = (first - timedelta(days=1)).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        chosen = None
        if day_text and day_text in days:
            chosen = {"date": date.fromisoformat(day_text), "items": days[day_text]}
        return {"month_title": first.strftime("%B %Y"), "weeks": weeks, "chosen": chosen,
                "month_key": f"{year:04d}-{number:02d}", "month_total": sum(len(v) for v in days.values()),
                "previous": previous.strftime("%Y-%m"), "following": following.strftime("%Y-%m"),
                "instant": _instant}

    # --- one appointment ------------------------------------------------------------------

    async def detail(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            return self._detail(request, caller)

        return await self.console.view(request, accounts.READ, build)

    def _detail(self, request: Request, caller: Caller, drawer: dict[str, Any] | None = None,
                dialog: str | None = None, problems: dict[str, str] | None = None,
                typed: dict[str, str] | None = None, status: int = 200) -> Response:
        row = self._row(request, caller)
        if row is None:
            return self.console.render(request, "refused.html", caller, status=404,
                                       reason="There is no such appointment in this account.")
        item = resources.appointment_with_chain(row, self.console.booker_url)
        event_type = EventType.of(caller.account.id, row.event_type_id)
        tab = request.query_params.get("tab", "details")
        history = [_history_entry(entry) for entry in appointments.history(caller.account.id, row.external_id)] \
            if tab == "history" else []
        now = self.ctx.clock.now()
        return self.console.render(
            request, "appointment.html", caller, status=status, item=item, row=row, tab=tab,
            history=history, event_type=event_type, drawer=drawer,
            dialog=dialog or request.query_params.get("dialog"), problems=problems or {},
            typed=typed or {}, started=row.start_time <= now, instant=_instant,
            saved=request.query_params.get("saved"), done=request.query_params.get("done"),
            reason_limit=REASON_LIMIT)

    def _row(self, request: Request, caller: Caller) -> Appointment | None:
        external_id = request.path_params["external_id"]
        try:
            check_external_id(external_id)
            return appointments.get(caller.account.id, external_id)
        except (errors.NotFound, errors.ValidationFailed):
            return None

    async def state(self, request: Request) -> Response:
        """What the page's script polls while a change is on its way to Cal.com."""
        def build(caller: Caller) -> Response:
            row = self._row(request, caller)
            if row is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse({"status": row.status, "sync_state": row.sync_state,
                                 "meeting_url": row.meeting_url if is_http(row.meeting_url) else None,
                                 "last_error": row.last_error}, headers={"Cache-Control": "no-store"})

        return await self.console.view(request, accounts.READ, build)

    async def invite(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            row = self._row(request, caller)
            if row is None:
                return Response("not found", status_code=404)
            current = bookings.find(row.account_id, row.booking_uid)
            body = ics.invite(row, ics.host_of(current), resources.current_manage_links(row, self.console.booker_url))
            return Response(body, media_type=ics.MEDIA_TYPE, headers={
                "Content-Disposition": f'attachment; filename="{row.id}.ics"'})

        return await self.console.view(request, accounts.READ, build)

    # --- create and edit --------------------------------------------------------------------

    def _drawer(self, request: Request, caller: Caller, row: Appointment | None, typed: dict[str, str],
                problems: dict[str, str]) -> dict[str, Any]:
        params = request.query_params
        types = list(EventType.select().where((EventType.account == caller.account.id) & EventType.active)
                     .order_by(EventType.title))
        values = dict(typed)
        if row is not None and not typed:
            values = {"title": row.title, "attendee_name": row.attendee_name,
                      "attendee_email": row.attendee_email, "to_number": row.to_number or "",
                      "from_number": row.from_number or "", "event_type_id": str(row.event_type_id),
                      "description": row.description or "", "label": row.label or "",
                      "date": row.start_time.astimezone(caller.zone).date().isoformat(),
                      "start_time": row.start_time.isoformat(), **_reminder_values(row.reminders)}
        for name in ("date", "event_type_id"):
            if params.get(name):
                values[name] = params[name]
        values.setdefault("event_type_id", str(caller.account.default_event_type_id or
                                                (types[0].calcom_id if types else "")))
        picker = None
        if values.get("date"):
            picker = self._slots(caller, values.get("date", ""), values.get("event_type_id", ""))
        return {"row": row, "values": values, "problems": problems, "event_types": types, "picker": picker,
                "reminder_rows": range(REMINDER_ROWS), "channels": REMINDER_CHANNELS}

    def _slots(self, caller: Caller, day_text: str, event_type_text: str) -> dict[str, Any]:
        """The free starts of a local day, or why there are none (the seed's "no slots" reasons)."""
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            return {"reason": "Pick a date.", "slots": []}
        if not event_type_text.isdigit():
            return {"reason": "Pick an event type first.", "slots": []}
        try:
            found = slots.free_slots(self.ctx.clients.for_account(caller.account), self.ctx.slot_cache,
                                     caller.account.id, day, int(event_type_text), caller.account.time_zone,
                                     self.ctx.clock.now())
        except errors.ValidationFailed as failed:
            return {"reason": next(iter(field_messages(failed).values()), "Cal.com refused."), "slots": []}
        except errors.CalcomError:
            return {"reason": "Cal.com cannot be reached just now: try again in a moment.", "slots": []}
        zone = ZoneInfo(caller.account.time_zone)
        times = [{"value": start.isoformat(), "label": start.astimezone(zone).strftime("%H:%M")}
                 for start, _ in found.slots]
        reason = None
        if not times:
            reason = {"the date is in the past": "This day is in the past."}.get(
                found.reason or "", "No free times on this day: the host is booked or not working.")
        return {"reason": reason, "slots": times, "date": day}

    async def slot_picker(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            picker = self._slots(caller, request.query_params.get("date", ""),
                                 request.query_params.get("event_type_id", ""))
            return self.console.render(request, "slots.html", caller, picker=picker,
                                       chosen=request.query_params.get("chosen", ""))

        return await self.console.view(request, accounts.WRITE, build)

    async def create(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            typed = _typed(form)
            try:
                data = parse(AppointmentInput, json.dumps(_appointment_body(typed, caller)).encode())
                external_id = f"console-{secrets.token_hex(6)}"
                appointments.put(self.ctx.db, caller.principal, external_id, data, now=self.ctx.clock.now())
            except errors.ValidationFailed as failed:
                drawer = self._drawer(request, caller, None, typed, field_messages(failed))
                return self._index(request, caller, drawer=drawer, status=422)
            return redirect(f"/console/appointments/{external_id}", saved="1")

        return await self.console.act(request, accounts.WRITE, perform)

    async def edit(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            row = self._row(request, caller)
            drawer = self._drawer(request, caller, row, {}, {}) if row is not None else None
            return self._detail(request, caller, drawer=drawer)

        return await self.console.view(request, accounts.WRITE, build)

    async def save(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            row = self._row(request, caller)
            if row is None:
                return self._detail(request, caller)
            typed = _typed(form)
            changes = _appointment_body(typed, caller)
            # The phone numbers are the call's: shown, locked, never changed from the console.
            changes.pop("to_number", None)
            changes.pop("from_number", None)
            try:
                appointments.patch(self.ctx.db, caller.principal, row.external_id,
                                   json.dumps(changes).encode(), now=self.ctx.clock.now())
            except (errors.ValidationFailed, errors.Conflict) as failed:
                problems = (field_messages(failed) if isinstance(failed, errors.ValidationFailed)
                            else {"start_time": str(failed)})
                drawer = self._drawer(request, caller, row, typed, problems)
                return self._detail(request, caller, drawer=drawer, status=422)
            return redirect(f"/console/appointments/{row.external_id}", saved="1")

        return await self.console.act(request, accounts.WRITE, perform)

    # --- actions ----------------------------------------------------------------------------

    async def reschedule(self, request: Request) -> Response:
        def change(caller: Caller, row: Appointment, typed: dict[str, str]) -> None:
            start = _local_start(typed["start_local"], typed["offset"], caller.zone)
            if len(typed["message"]) > REASON_LIMIT:
                raise errors.ValidationFailed.one("message", f"must be at most {REASON_LIMIT} characters")
            appointments.patch(self.ctx.db, caller.principal, row.external_id,
                               json.dumps({"start_time": start.isoformat()}).encode(), now=self.ctx.clock.now())
            if typed["message"]:
                audit.record(account_id=caller.account.id, appointment_id=row.id, actor=caller.principal.actor,
                             action="appointment.reschedule_message", now=self.ctx.clock.now(),
                             after={"message": typed["message"]})

        return await self._change(request, change, ("start_local", "offset", "message"), dialog="reschedule",
                                  rename={"start_time": "start_local"})

    async def cancel(self, request: Request) -> Response:
        def change(caller: Caller, row: Appointment, typed: dict[str, str]) -> None:
            data = parse(CancelInput, json.dumps({"reason": typed["reason"] or None}).encode())
            appointments.cancel(self.ctx.db, caller.principal, row.external_id, data, now=self.ctx.clock.now())

        return await self._change(request, change, ("reason",), dialog="cancel")

    async def attendance(self, request: Request) -> Response:
        def change(caller: Caller, row: Appointment, typed: dict[str, str]) -> None:
            data = parse(AttendanceInput, json.dumps({"attendance": typed["attendance"]}).encode())
            appointments.set_attendance(self.ctx.db, caller.principal, row.external_id, data,
                                        now=self.ctx.clock.now())

        return await self._change(request, change, ("attendance",), banner="attendance")

    async def confirm(self, request: Request) -> Response:
        def change(caller: Caller, row: Appointment, typed: dict[str, str]) -> None:
            host_actions.confirm(self.ctx.db, caller.principal, row.external_id, now=self.ctx.clock.now())

        return await self._change(request, change, (), banner="host")

    async def decline(self, request: Request) -> Response:
        def change(caller: Caller, row: Appointment, typed: dict[str, str]) -> None:
            data = parse(DeclineInput, json.dumps({"reason": typed["reason"] or None}).encode())
            host_actions.decline(self.ctx.db, caller.principal, row.external_id, data, now=self.ctx.clock.now())

        return await self._change(request, change, ("reason",), banner="host")

    async def _change(self, request: Request, change: Callable[[Caller, Appointment, dict[str, str]], None],
                      fields: tuple[str, ...], *, dialog: str | None = None, banner: str | None = None,
                      rename: dict[str, str] | None = None) -> Response:
        """One action on the appointment of the path: the form's ``fields`` to ``change``; a refusal
        shows the page again with what was typed, the message beside its field (in ``dialog``) or
        above the page (``banner``); success goes back to the page, following the sync state."""
        def perform(caller: Caller, form: FormData) -> Response:
            row = self._row(request, caller)
            if row is None:
                return self._detail(request, caller)
            typed = {name: form_value(form, name) for name in fields}
            try:
                change(caller, row, typed)
            except (errors.ValidationFailed, errors.Conflict) as failed:
                problems = (field_messages(failed) if isinstance(failed, errors.ValidationFailed)
                            else {fields[0] if fields else "host": failed.message})
                problems = {(rename or {}).get(name, name): message for name, message in problems.items()}
                if banner is not None:
                    problems = {banner: "; ".join(problems.values())}
                return self._detail(request, caller, dialog=dialog, problems=problems, typed=typed, status=422)
            return redirect(f"/console/appointments/{row.external_id}", saved="1")

        return await self.console.act(request, accounts.WRITE, perform)


# --- helpers ------------------------------------------------------------------------------

REMINDER_ROWS = 3
_FIELDS = ("title", "attendee_name", "attendee_email", "to_number", "from_number", "event_type_id",
           "description", "label", "date", "start_time",
           *(f"reminder_{part}_{n}" for n in range(REMINDER_ROWS) for part in ("channel", "minutes")))


def _typed(form: FormData) -> dict[str, str]:
    return {name: form_value(form, name) for name in _FIELDS}


def _reminder_values(reminders: list[dict[str, Any]] | None) -> dict[str, str]:
    """An appointment's reminders as the drawer's rows."""
    values: dict[str, str] = {}
    for n, item in enumerate((reminders or [])[:REMINDER_ROWS]):
        values[f"reminder_channel_{n}"] = str(item.get("channel", ""))
        values[f"reminder_minutes_{n}"] = str(item.get("minutes_before", ""))
    return values


def _appointment_body(typed: dict[str, str], caller: Caller) -> dict[str, Any]:
    """The form as the API's body: empty optional fields left out, so validation names the rest."""
    body: dict[str, Any] = {name: typed[name] for name in ("title", "attendee_name", "attendee_email")}
    for name in ("to_number", "from_number", "description", "label"):
        if typed.get(name):
            body[name] = typed[name]
    if typed.get("event_type_id"):
        body["event_type_id"] = int(typed["event_type_id"]) if typed["event_type_id"].isdigit() else typed["event_type_id"]
    body["start_time"] = typed.get("start_time") or ""
    rows = [(typed.get(f"reminder_channel_{n}", ""), typed.get(f"reminder_minutes_{n}", ""))
            for n in range(REMINDER_ROWS)]
    chosen = [{"channel": channel, "minutes_before": int(minutes) if minutes.isdigit() else minutes}
              for channel, minutes in rows if channel or minutes]
    if chosen:  # none chosen: the account's defaults (a new appointment), or as they were (an edit)
        body["reminders"] = chosen
    return body


def _local_start(text: str, offset: str, zone: ZoneInfo) -> datetime:
    """A ``datetime-local`` value read in the viewer's zone (the script sends its offset in
    minutes, as JavaScript's getTimezoneOffset has it), else in the account's."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise errors.ValidationFailed.one("start_local", "pick a new date and time") from None
    if naive.tzinfo is not None:
        return naive
    if offset.lstrip("-").isdigit() and abs(int(offset)) <= 14 * 60:
        return naive.replace(tzinfo=timezone(-timedelta(minutes=int(offset))))
    return naive.replace(tzinfo=zone)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    before, after = entry.get("before") or {}, entry.get("after") or {}
    return {**entry, "at": _instant(entry["at"]),
            "old_start": _instant(before.get("start_time")) if isinstance(before.get("start_time"), str) else None,
            "new_start": _instant(after.get("start_time")) if isinstance(after.get("start_time"), str) else None,
            "changes": {key: value for key, value in after.items() if key != "start_time"}}
