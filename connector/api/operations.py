"""Admin operations on the account's Cal.com mirror: reconcile now, the event-type cache, slots.

``/v1/reconcile`` and ``/v1/event-types/refresh`` run in the request (in the
threadpool) and answer their figures; a reconciliation already running for the
account answers 409. A Cal.com failure on the way becomes a 503 or 502 problem
(problems.calcom_error).
"""

from __future__ import annotations

import re
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.api.problems import json_body_required
from connector.core import accounts, event_types, slots
from connector.core.appointments import cached_event_type
from connector.inputs import LATEST, MAX_CALCOM_ID, ReconcileInput, parse, whole_number
from connector.outputs import resources
from connector.timezones import is_iana_zone
from mappings.db import session
from mappings.models import Account, EventType, ReconcileRun
from mappings.times import to_api

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
LAST_YEAR = LATEST.year  # as for an appointment's start_time


def describe_run(run: ReconcileRun) -> dict:
    return {"id": run.id, "mode": run.mode, "trigger": run.trigger, "status": run.status,
            "started_at": to_api(run.started_at), "finished_at": to_api(run.finished_at),
            "duration_ms": run.duration_ms, "pages": run.pages, "bookings_seen": run.bookings_seen,
            "repairs": run.repairs or {}, "error": run.error}


def describe_event_type(row: EventType) -> dict:
    return {"id": row.calcom_id, "slug": row.slug, "title": row.title,
            "length_minutes": row.length_minutes, "length_options": row.length_options,
            "locations": row.locations, "scheduling_type": row.scheduling_type,
            "seats_per_slot": row.seats_per_slot, "requires_confirmation": row.requires_confirmation,
            "hidden": row.hidden, "team_id": row.team_id, "active": row.active,
            "strategy": resources.strategy(row), "has_meeting_address": resources.has_meeting_address(row),
            "warnings": [] if resources.has_meeting_address(row) else [
                "no location or video link: Cal.com books it without a meeting address, "
                "so calsync sends no invite for it"],
            "refreshed_at": to_api(row.refreshed_at)}


def _slot_query(request: Request, account: Account) -> tuple[date, int, str]:
    params = request.query_params
    problems = []
    day = None
    raw_date = params.get("date")
    if raw_date is None:
        problems.append(errors.FieldError("date", "is required (YYYY-MM-DD)"))
    else:
        try:
            if not _DATE.fullmatch(raw_date):
                raise ValueError
            day = date.fromisoformat(raw_date)
        except ValueError:
            problems.append(errors.FieldError("date", "must be a calendar date as YYYY-MM-DD"))
        else:
            if day.year > LAST_YEAR:  # the day after 9999-12-31 cannot even be computed
                problems.append(errors.FieldError("date", f"must be in {LAST_YEAR} or earlier"))
    event_type_id = account.default_event_type_id
    raw_type = params.get("event_type_id")
    if raw_type is not None:
        event_type_id = whole_number(raw_type, high=MAX_CALCOM_ID)
        if event_type_id is None:
            problems.append(errors.FieldError("event_type_id", "must be a Cal.com event type id"))
    elif event_type_id is None:
        problems.append(errors.FieldError("event_type_id", "is required: the account has no default"))
    time_zone = params.get("time_zone") or account.time_zone
    if not is_iana_zone(time_zone):
        problems.append(errors.FieldError("time_zone", "must be an IANA time zone such as Europe/Berlin"))
    if problems or day is None or event_type_id is None:
        raise errors.ValidationFailed(problems)
    return day, event_type_id, time_zone


def routes(ctx: ApiContext) -> list[Route]:
    async def reconcile(request: Request) -> Response:
        raw = await request.body()

        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                if raw.strip():
                    json_body_required(request)
                options = parse(ReconcileInput, raw) if raw.strip() else ReconcileInput()
                run = ctx.reconciler.run(principal.account_id, full=options.full, trigger="api")
                return describe_run(run)

        return JSONResponse(await run_in_threadpool(work))

    async def list_event_types(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                rows = EventType.select().where(EventType.account == principal.account_id).order_by(
                    EventType.active.desc(), EventType.title, EventType.calcom_id)
                return {"items": [describe_event_type(row) for row in rows]}

        return JSONResponse(await run_in_threadpool(work))

    async def refresh_event_types(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                return event_types.refresh(ctx.db, ctx.clock, ctx.clients, principal.account_id).as_dict()

        return JSONResponse(await run_in_threadpool(work))

    async def free_slots(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                account = Account.get_by_id(principal.account_id)
                day, event_type_id, time_zone = _slot_query(request, account)
                cached_event_type(account.id, event_type_id)
                client = ctx.clients.for_account(account)
            return slots.free_slots(client, ctx.slot_cache, account.id, day, event_type_id, time_zone,
                                    ctx.clock.now()).as_dict()

        return JSONResponse(await run_in_threadpool(work))

    return [
        Route("/v1/reconcile", reconcile, methods=["POST"]),
        Route("/v1/event-types", list_event_types, methods=["GET"]),
        Route("/v1/event-types/refresh", refresh_event_types, methods=["POST"]),
        Route("/v1/slots", free_slots, methods=["GET"]),
    ]
