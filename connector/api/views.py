"""Read-only views over many appointments: the table, the month calendar, invites and the feed.

``GET /v1/appointments`` · ``GET /v1/calendar`` · ``GET /v1/appointments/{external_id}/invite.ics``
· ``GET /v1/calendar.ics?token=…`` (a ``calendar:feed`` token in the query, because calendar
clients cannot send headers).
"""

from __future__ import annotations

from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.api.auth import authenticate, principal_for
from connector.api.context import ApiContext
from connector.core import accounts, appointments, listing
from connector.outputs import ics, resources
from mappings import bookings
from mappings.db import session
from mappings.models import Account, Appointment

# What the subscription feed covers, around now.
FEED_PAST = timedelta(days=90)
FEED_LIMIT = 5000


def routes(ctx: ApiContext) -> list[Route]:
    booker_url = ctx.settings.calcom.booker_url

    async def list_appointments(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                query = listing.parse_search(request.query_params)
                page = listing.search(principal.account_id, query, booker_url)
            return {"items": page.items, "total": page.total, "page": query.page,
                    "per_page": query.per_page, "pages": page.pages,
                    "links": listing.links(request.url.path, page, request.query_params)}

        return JSONResponse(await run_in_threadpool(work))

    async def month_calendar(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                year, number = listing.parse_month(request.query_params.get("month"))
                account = Account.get_by_id(principal.account_id)
                return listing.month(account, year, number, booker_url)

        return JSONResponse(await run_in_threadpool(work))

    async def invite(request: Request) -> Response:
        external_id = request.path_params["external_id"]

        def work() -> tuple[bytes, str]:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                row = appointments.get(principal.account_id, external_id)
                current = bookings.find(row.account_id, row.booking_uid)
                return ics.invite(row, ics.host_of(current),
                                  resources.current_manage_links(row, booker_url)), row.id

        body, appointment_id = await run_in_threadpool(work)
        return Response(body, media_type=ics.MEDIA_TYPE, headers={
            "Content-Disposition": f'attachment; filename="{appointment_id}.ics"'})

    async def feed(request: Request) -> Response:
        def work() -> bytes:
            with session(ctx.db):
                principal = _feed_principal(ctx, request)
                account = Account.get_by_id(principal.account_id)
                rows = list(Appointment.select().where(
                    (Appointment.account == account.id)
                    & (Appointment.start_time >= ctx.clock.now() - FEED_PAST)
                    & Appointment.status.not_in(listing.HIDDEN_ON_CALENDAR + ("failed",)))
                    .order_by(Appointment.start_time, Appointment.id).limit(FEED_LIMIT))
                current = bookings.with_appointments(account.id, [row.booking_uid for row in rows])
                return ics.feed(account, [(row, ics.host_of(current.get(row.booking_uid or "")))
                                          for row in rows])

        return Response(await run_in_threadpool(work), media_type=ics.MEDIA_TYPE,
                        headers={"Cache-Control": "private, max-age=300"})

    return [
        Route("/v1/appointments", list_appointments, methods=["GET"]),
        Route("/v1/calendar", month_calendar, methods=["GET"]),
        Route("/v1/calendar.ics", feed, methods=["GET"]),
        Route("/v1/appointments/{external_id}/invite.ics", invite, methods=["GET"]),
    ]


def _feed_principal(ctx: ApiContext, request: Request) -> accounts.Principal:
    """A token with the ``calendar:feed`` scope, from ``?token=``: a URL is all a calendar client keeps,
    so only a token that can do nothing but read this feed may travel in one."""
    token = request.query_params.get("token", "")
    if not token:
        raise errors.Unauthorized("Add ?token=<a calendar:feed token> to the feed's URL.")
    principal = principal_for(ctx.db, ctx.clock, token)
    if accounts.FEED not in principal.scopes:
        raise errors.Forbidden("Only a token with the 'calendar:feed' scope opens the feed.")
    return principal
