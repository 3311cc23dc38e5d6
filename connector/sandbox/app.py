"""The sandbox's HTTP face: the Cal.com v2 endpoints calsync uses, plus ``/_sandbox`` controls.

Deliberately stricter than Cal.com in two ways. A ``/v2/bookings``, ``/v2/slots``
or ``/v2/event-types`` request without its family's ``cal-api-version`` answers
404, where Cal.com would silently route it to a legacy handler (REFERENCE §2), so
a client that forgets the header fails loudly in tests. And every booking and
webhook route needs an API key, where Cal.com lets an attendee act on a booking by
its uid alone: each key is a user of its own, so one calsync account cannot reach
another's bookings, webhooks or secrets through the sandbox (the attendee's side is
played through ``/_sandbox/act``).

The controls (``/_sandbox/…``) answer only ``Authorization: Bearer
<sandbox.control_token>``, and not at all while no token is set; a user's own key
may also ``act`` on that user's bookings.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.clock import Clock
from connector.sandbox import wire
from connector.sandbox.calendar import CANCEL_KEYS, SandboxCalendar, refuse_unknown
from connector.sandbox.catalog import TEAM, Host
from connector.sandbox.faults import FaultRule, Faults
from connector.sandbox.ratelimit import Throttler
from connector.sandbox.schedule import WeeklySchedule
from connector.sandbox.webhooks import Sender, WebhookHub
from connector.settings import SandboxSettings

VERSIONS = {"bookings": "2024-08-13", "slots": "2024-09-04", "event_types": "2024-06-14"}
REVOKED_KEYS = frozenset({"cal_revoked"})


class _DroppedAnswer(Response):
    """Headers announce a body that never comes; the server then closes the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _too_many(verdict, path: str, clock: Clock) -> JSONResponse:
    """Cal.com's 429: HttpExceptionFilter body, rate-limit headers, no Retry-After (REFERENCE §4)."""
    message = "CustomThrottlerGuard - Too many requests. Please try again later."
    error = wire.nest_error(429, "ThrottlerException", message, path, clock.now(), details=message)
    response = JSONResponse(error.body, status_code=429)
    response.raw_headers.extend(verdict.headers())
    response.raw_headers.append((b"x-request-id", b"unknown-request-id"))
    return response


def _tracker(throttler: Throttler, scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    authorization = headers.get(b"authorization", b"").decode("latin-1") or None
    client = scope.get("client")
    return throttler.tracker(authorization, client[0] if client else None)


class _ThrottleMiddleware:
    """Plain ASGI (BaseHTTPMiddleware would break streaming and cost throughput)."""

    def __init__(self, app: ASGIApp, throttler: Throttler, clock: Clock) -> None:
        self.app = app
        self.throttler = throttler
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _route_path(scope).startswith("/v2/"):
            await self.app(scope, receive, send)
            return
        verdict = self.throttler.hit(_tracker(self.throttler, scope))
        if not verdict.allowed:
            await _too_many(verdict, _route_path(scope), self.clock)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A 429 fault already wrote the block's headers; the request's own count is moot.
                if not any(name == b"x-ratelimit-remaining-default" for name, _ in headers):
                    headers += verdict.headers()
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class Sandbox:
    """The sandbox's parts; ``app`` is the ASGI application to serve or mount."""

    calendar: SandboxCalendar
    faults: Faults
    throttler: Throttler
    hub: WebhookHub
    app: ASGIApp


def create_sandbox(clock: Clock, settings: SandboxSettings | None = None, *, seed: int = 0,
                   send: Sender | None = None) -> Sandbox:
    """The sandbox; ``send`` replaces real HTTP for its webhooks (tests deliver in-process)."""
    settings = settings or SandboxSettings()
    calendar = SandboxCalendar(clock, schedule=WeeklySchedule.parse(settings.weekly_hours),
                               time_zone=settings.time_zone)
    hub = calendar.hub = WebhookHub(clock, send=send, seed=seed)
    faults = Faults(seed)
    throttler = Throttler(clock, settings.rate_limit, settings.rate_limit_window_seconds,
                          settings.rate_limit_block_seconds)

    def path_of(request: Request) -> str:
        return _route_path(request.scope)

    def fail(error: wire.SandboxError) -> JSONResponse:
        return JSONResponse(error.body, status_code=error.status,
                            headers={"x-request-id": "unknown-request-id"})

    def check_version(request: Request, family: str) -> None:
        if request.headers.get("cal-api-version") != VERSIONS[family]:
            raise wire.not_found(f"Cannot {request.method} {path_of(request)}", path_of(request),
                                 clock.now())

    def caller(request: Request, required: bool) -> Host | None:
        """The user whose API key the request carries; None without one (where that is allowed)."""
        header = request.headers.get("authorization")
        if header is None:
            if required:
                raise wire.nest_error(401, "UnauthorizedException",
                                      "ApiAuthStrategy - Invalid Authorization Token",
                                      path_of(request), clock.now())
            return None
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not token.startswith("cal_") or token in REVOKED_KEYS:
            raise wire.nest_error(401, "UnauthorizedException",
                                  "ApiAuthStrategy - api key - Your api key is not valid",
                                  path_of(request), clock.now())
        return calendar.user(token)

    def calcom_endpoint(endpoint: str, family: str | None, auth_required: bool):
        """Wrap a handler with what every Cal.com route does first: faults, version, auth.

        The handler gets the calling user (None only where ``auth_required`` is False). A
        "drop" fault lets the handler do its work (and commit it) and then loses the answer.
        """

        def wrap(handler: Callable[[Request, Host | None], Awaitable[Response]]):
            async def route(request: Request) -> Response:
                fault = faults.draw(endpoint)
                if fault.latency_seconds:
                    await asyncio.sleep(fault.latency_seconds)
                if fault.error:
                    return fail(wire.nest_error(503, "InternalServerErrorException",
                                                "Internal server error", path_of(request), clock.now()))
                if fault.rate_limit:
                    verdict = throttler.block(_tracker(throttler, request.scope))
                    return _too_many(verdict, path_of(request), clock)
                try:
                    if family is not None:
                        check_version(request, family)
                    host = caller(request, required=auth_required)
                    response = await handler(request, host)
                except wire.SandboxError as error:
                    return fail(error)
                return _DroppedAnswer() if fault.drop else response

            return route

        return wrap

    def shown(booking, seat_uid: str | None = None) -> dict[str, Any]:
        return booking.output(calendar.host_of(booking), seat_uid)

    @calcom_endpoint("POST /v2/bookings", "bookings", auth_required=True)
    async def create_booking(request: Request, host: Host) -> Response:
        booking, seat_uid = calendar.book(await json_body(request), path_of(request),
                                          meeting_base_of(request), host=host)
        if booking.recurring_uid:  # a recurring event type: every occurrence (REFERENCE §5.1)
            return JSONResponse(wire.success([shown(b) for b in calendar.series(booking.recurring_uid)]),
                                status_code=201)
        return JSONResponse(wire.success(shown(booking, seat_uid)), status_code=201)

    def meeting_base_of(request: Request) -> str:
        # base_url drops the mount prefix (/sandbox under `calsync serve`); add it back.
        return str(request.base_url).rstrip("/") + request.scope.get("root_path", "")

    async def json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise wire.bad_request("Unexpected token in JSON body", path_of(request), clock.now()) from None

    # Every sandbox API key belongs to the booking's host, as a CRM's key belongs to its organizer.
    @calcom_endpoint("POST /v2/bookings/{uid}/reschedule", "bookings", auth_required=True)
    async def reschedule_booking(request: Request, host: Host) -> Response:
        booking, seat_uid = calendar.rebook(request.path_params["uid"], await json_body(request),
                                            path_of(request), meeting_base_of(request), host=host)
        return JSONResponse(wire.success(shown(booking, seat_uid)), status_code=201)

    @calcom_endpoint("POST /v2/bookings/{uid}/cancel", "bookings", auth_required=True)
    async def cancel_booking(request: Request, host: Host) -> Response:
        uid, body = request.path_params["uid"], await json_body(request)
        if uid not in calendar.bookings and calendar.series(uid, host):
            # A series' uid: every remaining occurrence (REFERENCE §5.5); answers the series.
            refuse_unknown(body, CANCEL_KEYS, path_of(request), clock.now())
            calendar.cancel_remaining(uid, body.get("cancellationReason"), path_of(request),
                                      by_host=True, host=host)
            return JSONResponse(wire.success([shown(b) for b in calendar.series(uid, host)]))
        booking = calendar.cancel(uid, body, path_of(request), by_host=True, host=host)
        return JSONResponse(wire.success(shown(booking)))

    @calcom_endpoint("POST /v2/bookings/{uid}/confirm", "bookings", auth_required=True)
    async def confirm_booking(request: Request, host: Host) -> Response:
        booking = calendar.confirm(request.path_params["uid"], path_of(request), host)
        return JSONResponse(wire.success(shown(booking)))

    @calcom_endpoint("POST /v2/bookings/{uid}/decline", "bookings", auth_required=True)
    async def decline_booking(request: Request, host: Host) -> Response:
        body = await optional_body(request, {"reason"})
        booking = calendar.decline(request.path_params["uid"], body.get("reason"), path_of(request), host)
        return JSONResponse(wire.success(shown(booking)))

    @calcom_endpoint("POST /v2/bookings/{uid}/reassign", "bookings", auth_required=True)
    async def reassign_booking(request: Request, host: Host) -> Response:
        user_id = request.path_params.get("user_id")
        await optional_body(request, {"reason"})
        booking, target = calendar.reassign(request.path_params["uid"], user_id, path_of(request), host)
        # ReassignBookingOutput_2024_08_13 as Cal.com's source has it (the spec's refers to itself).
        return JSONResponse(wire.success({"bookingUid": booking.uid, "reassignedTo": {
            "id": target.id, "name": target.name, "email": target.email}}))

    async def optional_body(request: Request, allowed: set[str]) -> dict[str, Any]:
        body = await json_body(request) if (await request.body()).strip() else {}
        refuse_unknown(body, allowed, path_of(request), clock.now())
        return dict(body)

    @calcom_endpoint("POST /v2/bookings/{uid}/mark-absent", "bookings", auth_required=True)
    async def mark_absent(request: Request, host: Host) -> Response:
        booking = calendar.mark_absent(request.path_params["uid"], await json_body(request),
                                       path_of(request), host)
        return JSONResponse(wire.success(shown(booking)))

    # --- webhook subscriptions (any or no version, key required; REFERENCE §5.10) ---------

    async def subscription_body(request: Request, *, partial: bool) -> dict[str, Any]:
        body = await json_body(request)
        problem = hub.check(body, partial=partial)
        if problem:
            raise wire.bad_request(problem, path_of(request), clock.now())
        return body

    @calcom_endpoint("POST /v2/webhooks", None, auth_required=True)
    async def create_webhook(request: Request, host: Host) -> Response:
        sub = hub.create(await subscription_body(request, partial=False), owner=host.id)
        if sub is None:
            raise wire.nest_error(409, "ConflictException",
                                  "Webhook with this subscriber url already exists for this user",
                                  path_of(request), clock.now())
        return JSONResponse(wire.success(sub.output(host.id)), status_code=201)

    @calcom_endpoint("GET /v2/webhooks", None, auth_required=True)
    async def list_webhooks(request: Request, host: Host) -> Response:
        return JSONResponse(wire.success([s.output(host.id) for s in hub.of(host.id)]))

    @calcom_endpoint("PATCH /v2/webhooks/{id}", None, auth_required=True)
    async def update_webhook(request: Request, host: Host) -> Response:
        sub = hub.update(request.path_params["webhook_id"], await subscription_body(request, partial=True),
                         owner=host.id)
        if sub is None:
            raise wire.not_found("Webhook not found", path_of(request), clock.now())
        return JSONResponse(wire.success(sub.output(host.id)))

    @calcom_endpoint("DELETE /v2/webhooks/{id}", None, auth_required=True)
    async def delete_webhook(request: Request, host: Host) -> Response:
        sub = hub.delete(request.path_params["webhook_id"], owner=host.id)
        if sub is None:
            raise wire.not_found("Webhook not found", path_of(request), clock.now())
        return JSONResponse(wire.success(sub.output(host.id)))

    @calcom_endpoint("GET /v2/bookings/{uid}", "bookings", auth_required=True)
    async def get_booking(request: Request, host: Host) -> Response:
        uid = request.path_params["uid"]
        occurrences = calendar.series(uid, host) if uid not in calendar.bookings else []
        if occurrences:  # a recurring series' uid answers its occurrences (REFERENCE §5.2)
            return JSONResponse(wire.success([shown(b) for b in occurrences]))
        booking = calendar.get_booking(uid, path_of(request), host)
        return JSONResponse(wire.success(shown(booking)))

    @calcom_endpoint("GET /v2/bookings", "bookings", auth_required=True)
    async def list_bookings(request: Request, host: Host) -> Response:
        items, pages = calendar.list_bookings(dict(request.query_params), path_of(request), host)
        return JSONResponse(wire.success([shown(b) for b in items], pagination=pages))

    @calcom_endpoint("GET /v2/event-types", "event_types", auth_required=False)
    async def list_event_types(request: Request, host: Host | None) -> Response:
        owner = host or calendar.host
        return JSONResponse(wire.success([et.output(owner) for et in calendar.event_types.values()
                                          if et.team_id is None]))  # the user's own, not the team's

    @calcom_endpoint("GET /v2/teams", None, auth_required=True)
    async def list_teams(request: Request, host: Host) -> Response:
        return JSONResponse(wire.success([{"id": TEAM["id"], "name": TEAM["name"], "slug": TEAM["slug"],
                                           "isOrganization": False}]))

    @calcom_endpoint("GET /v2/teams/{teamId}/event-types", None, auth_required=True)
    async def list_team_event_types(request: Request, host: Host) -> Response:
        if request.path_params["team_id"] != TEAM["id"]:
            # Cal.com answers 403 for a team you are not in.
            raise wire.nest_error(403, "ForbiddenException", "Not a member of this team",
                                  path_of(request), clock.now())
        return JSONResponse(wire.success([et.output(host) for et in calendar.event_types.values()
                                          if et.team_id == TEAM["id"]]))

    @calcom_endpoint("GET /v2/me", None, auth_required=True)
    async def me(request: Request, host: Host) -> Response:
        return JSONResponse(wire.success({
            "id": host.id, "username": host.username, "email": host.email, "name": host.name,
            "avatarUrl": None, "bio": None, "timeFormat": 12, "defaultScheduleId": None,
            "weekStart": "Monday", "timeZone": host.time_zone, "organizationId": None,
        }))

    @calcom_endpoint("GET /v2/slots", "slots", auth_required=False)
    async def slots(request: Request, host: Host | None) -> Response:
        return JSONResponse(wire.success(calendar.slots(dict(request.query_params), path_of(request),
                                                        host)))

    async def video_room(request: Request) -> Response:
        uid = request.path_params["uid"]
        booking = calendar.bookings.get(uid)
        if booking is None:
            return HTMLResponse("<h1>No such meeting</h1>", status_code=404)
        return HTMLResponse(
            f"<h1>Sandbox meeting room</h1><p>{html.escape(booking.title)}</p>"
            f"<p>{booking.start.isoformat()} – {booking.end.isoformat()}</p>")

    # --- controls -------------------------------------------------------------

    def control(handler: Callable[..., Awaitable[Response]], *, users_may_act: bool = False):
        """Only the control token opens a control (acting on any user); with ``users_may_act``
        a user's own key opens it too, for that user's bookings only."""
        expected = (settings.control_token or "").encode()

        async def guarded(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else ""
            if expected and hmac.compare_digest(token.encode(), expected):
                return await handler(request, None)
            if users_may_act and token.startswith("cal_") and token not in REVOKED_KEYS:
                return await handler(request, calendar.user(token))
            if not expected:
                return JSONResponse({"error": "the sandbox's controls are off: set sandbox.control_token "
                                              "(CALSYNC_SANDBOX_CONTROL_TOKEN) and send it as "
                                              "'Authorization: Bearer <token>'"}, status_code=403)
            return JSONResponse({"error": "the sandbox's controls need "
                                          "'Authorization: Bearer <sandbox.control_token>'"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})

        return guarded

    async def control_state(request: Request, _: None) -> Response:
        with calendar.lock:
            statuses: dict[str, int] = {}
            for booking in calendar.bookings.values():
                statuses[booking.status] = statuses.get(booking.status, 0) + 1
            state = {"bookings": len(calendar.bookings), "created": calendar.created_count,
                     "by_status": statuses}
        return JSONResponse({**state, "faults": faults.snapshot(), "injected": dict(faults.injected),
                             "rate_limit": {"limit": throttler.limit, "refused": throttler.refused,
                                            "enabled": throttler.enabled}})

    async def control_faults(request: Request, _: None) -> Response:
        if request.method == "DELETE":
            faults.clear()
            return JSONResponse({"faults": {}})
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("body must be an object of endpoint → rule")
            rules = {endpoint: FaultRule.from_json(rule) for endpoint, rule in body.items()}
        except (ValueError, TypeError, RecursionError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        for endpoint, rule in rules.items():
            faults.set(endpoint, rule)
        return JSONResponse({"faults": faults.snapshot()})

    async def act(request: Request, host: Host | None) -> Response:
        """Play the attendee (reschedule or cancel through their links, no-show) or the host
        (confirm, decline), with the webhooks Cal.com sends for each; or make a booking vanish
        (delete), which sends none. ``host`` limits it to that user's bookings."""
        uid, action = request.path_params["uid"], request.path_params["action"]
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError, RecursionError):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        path = path_of(request)
        try:
            held = calendar.get_booking(uid, path, host)
            # A seated booking's attendees act on their own seat ("attendee": whose; the first's).
            chosen = [a for a in held.attendees
                      if a.get("email", "").lower() == str(body.get("attendee", "")).lower()]
            person = chosen[0] if chosen else held.attendees[0]
            attendee = person["email"]
            seat = {"seatUid": person["seatUid"]} if held.seated else {}
            if action == "reschedule":
                booking = calendar.reschedule(uid, {"start": body.get("start"), "rescheduledBy": attendee,
                                                    **seat},
                                              path, meeting_base_of(request), via_link=True, host=host)
            elif action == "cancel" and body.get("all_remaining") and held.recurring_uid:
                # The link of a recurring booking cancels every remaining occurrence.
                calendar.cancel_remaining(uid, body.get("reason") or "", path, by_host=False, host=host)
                booking = held
            elif action == "cancel":
                booking = calendar.cancel(uid, {"cancellationReason": body.get("reason") or "", **seat},
                                          path, by_host=False, host=host)
            elif action == "confirm":
                booking = calendar.confirm(uid, path, host)
            elif action == "request-reschedule":
                booking = calendar.request_reschedule(uid, body.get("reason"), path, host)
            elif action == "decline":
                booking = calendar.decline(uid, body.get("reason"), path, host)
            elif action == "no-show":
                booking = calendar.mark_absent(uid, {"attendees": [
                    {"email": attendee, "absent": bool(body.get("absent", True))}]}, path, host)
            elif action == "delete":
                booking = calendar.delete(uid, path, host)
            else:
                return JSONResponse({"error": "action must be reschedule, cancel, confirm, decline, "
                                              "request-reschedule, no-show or delete"}, status_code=404)
        except wire.SandboxError as error:
            return fail(error)
        return JSONResponse(wire.success(shown(booking)))

    async def book_on_public_page(request: Request, host: Host | None) -> Response:
        """An attendee books on the user's public page (``host``: the key's user; for the control
        token, the first user): Cal.com's create rules and webhooks, without calsync's metadata. A
        recurring event type books its series, as the page's "repeats N times" does."""
        path = path_of(request)
        try:
            body = await json_body(request)
            refuse_unknown(body, {"start", "eventTypeId", "attendee", "recurrenceCount", "guests",
                                  "lengthInMinutes"}, path, clock.now())
            booking, seat_uid = calendar.book(body, path, meeting_base_of(request),
                                              host=host or calendar.host)
        except wire.SandboxError as error:
            return fail(error)
        if booking.recurring_uid:
            return JSONResponse(wire.success([shown(b) for b in calendar.series(booking.recurring_uid)]),
                                status_code=201)
        return JSONResponse(wire.success(shown(booking, seat_uid)), status_code=201)

    async def control_webhooks(request: Request, _: None) -> Response:
        if request.method == "PUT":
            try:
                body = json.loads(await request.body())
                rate = body["drop_rate"]
                if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise ValueError
            except (ValueError, KeyError, TypeError, RecursionError):
                return JSONResponse({"error": "send {\"drop_rate\": 0…1}"}, status_code=400)
            hub.drop_rate = float(rate)
        return JSONResponse({"drop_rate": hub.drop_rate, "sent": len(hub.sent), "dropped": hub.dropped,
                             "failed": hub.failed, "subscriptions": len(hub.subscriptions)})

    async def control_rate_limit(request: Request, _: None) -> Response:
        try:
            body = json.loads(await request.body())
            allowed = {"limit", "window_seconds", "block_seconds", "enabled"}
            if not isinstance(body, dict) or set(body) - allowed:
                raise ValueError(f"body must be an object with keys among {sorted(allowed)}")
            throttler.configure(**body)
        except (ValueError, TypeError, RecursionError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"limit": throttler.limit, "enabled": throttler.enabled})

    routes = [
        Route("/v2/bookings", create_booking, methods=["POST"]),
        Route("/v2/bookings", list_bookings, methods=["GET"]),
        Route("/v2/bookings/{uid}", get_booking, methods=["GET"]),
        Route("/v2/bookings/{uid}/reschedule", reschedule_booking, methods=["POST"]),
        Route("/v2/bookings/{uid}/cancel", cancel_booking, methods=["POST"]),
        Route("/v2/bookings/{uid}/mark-absent", mark_absent, methods=["POST"]),
        Route("/v2/bookings/{uid}/confirm", confirm_booking, methods=["POST"]),
        Route("/v2/bookings/{uid}/decline", decline_booking, methods=["POST"]),
        Route("/v2/bookings/{uid}/reassign", reassign_booking, methods=["POST"]),
        Route("/v2/bookings/{uid}/reassign/{user_id:int}", reassign_booking, methods=["POST"]),
        Route("/v2/webhooks", create_webhook, methods=["POST"]),
        Route("/v2/webhooks", list_webhooks, methods=["GET"]),
        Route("/v2/webhooks/{webhook_id}", update_webhook, methods=["PATCH"]),
        Route("/v2/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
        Route("/v2/event-types", list_event_types, methods=["GET"]),
        Route("/v2/teams", list_teams, methods=["GET"]),
        Route("/v2/teams/{team_id:int}/event-types", list_team_event_types, methods=["GET"]),
        Route("/v2/me", me, methods=["GET"]),
        Route("/v2/slots", slots, methods=["GET"]),
        Route("/video/{uid}", video_room, methods=["GET"]),
        Route("/_sandbox/state", control(control_state), methods=["GET"]),
        Route("/_sandbox/faults", control(control_faults), methods=["PUT", "DELETE"]),
        Route("/_sandbox/rate-limit", control(control_rate_limit), methods=["PUT"]),
        Route("/_sandbox/webhooks", control(control_webhooks), methods=["GET", "PUT"]),
        Route("/_sandbox/act/{uid}/{action}", control(act, users_may_act=True), methods=["POST"]),
        Route("/_sandbox/book", control(book_on_public_page, users_may_act=True), methods=["POST"]),
    ]
    app = _ThrottleMiddleware(Starlette(routes=routes), throttler, clock)
    return Sandbox(calendar=calendar, faults=faults, throttler=throttler, hub=hub, app=app)
