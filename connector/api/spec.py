"""``GET /openapi.json``: calsync's own API as OpenAPI 3.1.

Request bodies come from the pydantic models that validate them (connector/inputs.py),
so the spec cannot drift from what the code accepts; response shapes are written
here and checked against real answers by tests/connector/api/test_openapi.py
(schemathesis, in CI).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.api import jobs as jobs_api
from connector.core import importer, listing
from connector.inputs import (
    MAX_PAGE,
    PER_PAGE_CHOICES,
    AppointmentInput,
    AttendanceInput,
    CancelInput,
    ConfirmInput,
    DeclineInput,
    ReassignInput,
    ReconcileInput,
    SettingsInput,
)
from connector.outputs import events

REF = "#/components/schemas/{model}"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _null(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
INSTANT = {"type": "string", "format": "date-time"}


def _object(properties: dict[str, Any], *, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


def _page_of(item: dict) -> dict:
    return _object({"items": {"type": "array", "items": item}, "total": INTEGER, "page": INTEGER,
                    "per_page": INTEGER, "pages": INTEGER})


OCCURRENCE = _object({"booking_uid": STRING, "start_time": INSTANT, "end_time": INSTANT,
                      "status": STRING})
APPOINTMENT = _object({
    "id": STRING, "external_id": STRING, "title": STRING, "attendee_name": STRING,
    "attendee_email": STRING, "attendee_time_zone": STRING, "attendee_phone": _null(STRING),
    "to_number": _null(STRING), "from_number": _null(STRING), "call_type": _null(STRING),
    "business_name": _null(STRING), "label": _null(STRING), "description": _null(STRING),
    "event_type_id": INTEGER, "start_time": INSTANT, "end_time": _null(INSTANT),
    "duration_minutes": _null(INTEGER), "guests": {"type": "array", "items": STRING},
    "metadata": {"type": "object", "additionalProperties": STRING},
    "status": {"enum": list(listing.STATUSES)},
    "attendance": {"enum": ["unknown", "attended", "no_show"]},
    "sync_state": {"enum": ["pending", "synced", "retrying", "dead"]},
    "booking_uid": _null(STRING), "meeting_url": _null(STRING), "location": _null(STRING),
    "cancellation_reason": _null(STRING), "cancelled_by": _null(STRING),
    "source": {"enum": list(listing.SOURCES)}, "last_error": _null(STRING),
    "occurrences": {"type": "array", "items": OCCURRENCE},
    "manage_links": _null(_object({"booking": STRING, "reschedule": STRING, "cancel": STRING})),
    "strategy": _null({"enum": ["individual", "round_robin", "collective", "group"]}),
    "seat_uid": _null(STRING),
    "attendee_count": _null(INTEGER),
    "recurring_booking_uid": _null(STRING),
    "reminders": _null({"type": "array", "items": _object(
        {"channel": {"enum": ["sms", "email", "voice", "push"]}, "minutes_before": INTEGER,
         "template": _null(STRING)}, required=["channel", "minutes_before"])}),
    "created_at": INSTANT, "updated_at": INSTANT, "version": INTEGER,
})
SCHEMAS: dict[str, dict] = {
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
        "type": STRING, "title": STRING, "status": INTEGER, "detail": STRING, "instance": STRING,
        "errors": {"type": "array", "items": _object({"field": STRING, "message": STRING})}}},
    "Appointment": APPOINTMENT,
    # A write's answer to a token without appointments:read (docs/api.md, "Scopes").
    "AppointmentReceipt": _object({"id": STRING, "external_id": STRING,
                                   "status": {"enum": list(listing.STATUSES)},
                                   "sync_state": {"enum": ["pending", "synced", "retrying", "dead"]},
                                   "version": INTEGER}),
    "AppointmentPage": {**_page_of(_ref("Appointment")), "required": [
        "items", "total", "page", "per_page", "pages", "links"]},
    "Calendar": _object({"month": STRING, "time_zone": STRING, "total": INTEGER, "days": {
        "type": "object", "additionalProperties": {"type": "array", "items": {
            "allOf": [_ref("Appointment"), _object({"local_start_time": STRING})]}}}}),
    "History": _object({"items": {"type": "array", "items": _object({
        "at": INSTANT, "actor": STRING, "action": STRING, "before": {}, "after": {}})}}),
    "EventType": _object({
        "id": INTEGER, "slug": STRING, "title": STRING, "length_minutes": INTEGER,
        "length_options": {"type": "array", "items": INTEGER}, "locations": {"type": "array"},
        "scheduling_type": _null(STRING), "seats_per_slot": _null(INTEGER),
        "requires_confirmation": BOOLEAN, "hidden": BOOLEAN, "team_id": _null(INTEGER),
        "active": BOOLEAN, "strategy": STRING, "has_meeting_address": BOOLEAN,
        "warnings": {"type": "array", "items": STRING}, "refreshed_at": INSTANT}),
    "RefreshResult": _object({name: {"type": "array", "items": INTEGER}
                              for name in ("added", "changed", "removed")}),
    "Slots": _object({"date": STRING, "time_zone": STRING, "event_type_id": INTEGER,
                      "slots": {"type": "array", "items": _object({"start": STRING,
                                                                    "end": _null(STRING)})},
                      "reason": STRING}, required=["date", "time_zone", "event_type_id", "slots"]),
    "ReconcileRun": _object({
        "id": INTEGER, "mode": STRING, "trigger": STRING, "status": STRING, "started_at": INSTANT,
        "finished_at": _null(INSTANT), "duration_ms": _null(INTEGER), "pages": INTEGER,
        "bookings_seen": INTEGER, "repairs": {"type": "object", "additionalProperties": INTEGER},
        "error": _null(STRING)}),
    "Job": _object({
        "id": INTEGER, "kind": STRING, "status": STRING, "attempts": INTEGER, "run_at": INSTANT,
        "last_error": _null(STRING), "payload": {"type": "object"}, "account_id": _null(STRING),
        "created_at": INSTANT, "updated_at": INSTANT, "finished_at": _null(INSTANT)}),
    "WebhookDelivery": _object({
        "id": INTEGER, "trigger": STRING, "booking_uid": _null(STRING), "received_at": INSTANT,
        "processed_at": _null(INSTANT), "outcome": STRING, "error": _null(STRING)}),
    "Settings": _object({
        "account_id": STRING, "name": STRING, "calcom_api_key_set": BOOLEAN,
        "default_event_type_id": _null(INTEGER), "time_zone": STRING,
        "duration_override_minutes": _null(INTEGER), "callback_url": _null(STRING),
        "callback_secret_set": BOOLEAN, "public_url": _null(STRING),
        "default_reminders": {"type": "array", "items": {"type": "object"}},
        "changes": {"type": "array", "items": _object({"at": INSTANT, "actor": STRING,
                                                        "before": {}, "after": {}})}}),
    "ImportReport": _object({
        "total": INTEGER,
        "counts": _object({outcome: INTEGER for outcome in importer.OUTCOMES}),
        "rows": {"type": "array", "items": _object({
            "row": INTEGER, "external_id": _null(STRING), "outcome": {"enum": list(importer.OUTCOMES)},
            "errors": {"type": "array", "items": _object({"field": STRING, "message": STRING})},
            "conflicts_with": STRING}, required=["row", "external_id", "outcome", "errors"])}}),
    "WebhookReceipt": _object({"status": STRING, "delivery_id": INTEGER}),
    "ImportRun": _object({
        "id": STRING, "status": {"enum": ["review", "queued", "running", "done", "failed"]},
        "total": INTEGER, "done": INTEGER, "override_conflicts": BOOLEAN,
        "report": _null(_ref("ImportReport")), "error": _null(STRING), "created_at": INSTANT,
        "finished_at": _null(INSTANT), "links": _object({"self": STRING})}),
}
SCHEMAS["AppointmentPage"]["properties"]["links"] = _object(
    {name: _null(STRING) for name in ("self", "first", "prev", "next", "last")})
for _model in (AppointmentInput, CancelInput, AttendanceInput, ConfirmInput, DeclineInput, ReassignInput,
               ReconcileInput, SettingsInput):
    SCHEMAS[_model.__name__] = _model.model_json_schema(ref_template=REF)

_ERRORS = {
    400: "The body is not JSON, or a header is malformed.",
    401: "No bearer token, or an unknown or revoked one.",
    403: "The token lacks the scope this operation needs.",
    404: "No such appointment or job.",
    409: "The operation conflicts with the resource's state.",
    413: "The body is too large.",
    415: "The body's Content-Type is not one this operation reads.",
    422: "A field, header or query parameter is invalid or unknown; `errors` names each one.",
    502: "Cal.com refused the call calsync made for this request.",
    503: "Cal.com did not answer, calsync is pacing its calls to keep within Cal.com's rate limit "
         "(`calcom-paced`), or Cal.com's limit is reached (`calcom-rate-limited`); `Retry-After` "
         "says when to try again where known.",
}


def _operation(summary: str, scope: str | None, ok: dict, *, errors: tuple[int, ...],
               parameters: list[dict] | None = None, body: dict | None = None,
               status: int = 200, extra_ok: dict | None = None) -> dict:
    responses: dict[str, Any] = {str(status): ok, **(extra_ok or {})}
    # 422 everywhere: a query parameter the operation does not declare (connector/api/parameters.py).
    for code in sorted({*errors, 405, 422} if scope is None else {401, 403, 422, *errors}):
        responses[str(code)] = _problem(code)
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    operation["security"] = [{"bearer": []}] if scope else []
    if scope:
        # x-scope: the scope a token needs; tests/connector/api/test_scopes.py holds every route to it.
        operation["x-scope"] = scope
        operation["description"] = f"Scope: `{scope}`."
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _problem(code: int) -> dict:
    return {"description": _ERRORS.get(code, "Method not allowed."),
            "content": {PROBLEM: {"schema": _ref("Problem")}}}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _json_body(model: str, media: str = "application/json", required: bool = True) -> dict:
    return {"required": required, "content": {media: {"schema": _ref(model)}}}


def _query(name: str, schema: dict, description: str = "", required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


EXTERNAL_ID = {"name": "external_id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"},
               "description": "The CRM's id of the appointment."}
PAGE = [_query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        _query("per_page", {"type": "integer", "enum": list(PER_PAGE_CHOICES)})]
WAIT = {"name": "Prefer", "in": "header", "required": False, "schema": STRING,
        "description": "`wait=N` (seconds, capped at 30): answer once synced, or after N seconds "
                       "(RFC 7240). A `wait` that is not a whole number is a 422."}
ICS = {"description": "An iCalendar document.", "content": {"text/calendar": {"schema": STRING}}}
READ, WRITE, ADMIN = "appointments:read", "appointments:write", "admin"
WRITE_ERRORS = (400, 404, 409, 413, 415, 422)


def document() -> dict:
    appointment = _json(_ref("Appointment"))
    written = _json({"anyOf": [_ref("Appointment"), _ref("AppointmentReceipt")]},
                    "The appointment, or a receipt to a token without appointments:read.")
    paths: dict[str, dict] = {
        "/v1/appointments": {"get": _operation(
            "Search, filter, sort and page the account's appointments", READ,
            _json(_ref("AppointmentPage")), errors=(422,), parameters=[
                _query("q", {"type": "string", "maxLength": listing.QUERY_MAX_LENGTH},
                       "Words in the title, attendee name, business name or label (any case)."),
                _query("status", STRING, "Statuses, comma-separated."),
                _query("label", {"type": "string", "maxLength": 100}),
                _query("source", STRING, "Where they came from, comma-separated: "
                                         "crm, calcom, import, console, assistant."),
                _query("recurring_booking_uid", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                       "The occurrences of one recurring series."),
                _query("from", INSTANT, "Start at or after (with an offset)."),
                _query("to", INSTANT, "Start before (with an offset)."),
                _query("sort", {"enum": sorted(listing.SORTABLE)}),
                _query("order", {"enum": ["asc", "desc"]}), *PAGE])},
        "/v1/appointments/{external_id}": {
            "parameters": [EXTERNAL_ID],
            "put": _operation("Create or replace an appointment's desired state", WRITE,
                              written, errors=WRITE_ERRORS, parameters=[WAIT],
                              body=_json_body("AppointmentInput"), extra_ok={"201": {
                                  **written, "description": "Created."}}),
            "patch": _operation("Change some fields (JSON merge patch)", WRITE, written,
                                errors=WRITE_ERRORS, parameters=[WAIT], body={"required": True, "content": {
                                    "application/merge-patch+json": {"schema": {"type": "object"}},
                                    "application/json": {"schema": {"type": "object"}}}}),
            "get": _operation("One appointment with its occurrences", READ, appointment,
                              errors=(404, 422))},
        "/v1/appointments/{external_id}/cancel": {"parameters": [EXTERNAL_ID], "post": _operation(
            "Cancel (final)", WRITE, written, errors=WRITE_ERRORS, parameters=[WAIT],
            body=_json_body("CancelInput", required=False))},
        "/v1/appointments/{external_id}/attendance": {"parameters": [EXTERNAL_ID], "post": _operation(
            "Record the attendee's attendance (past appointments)", WRITE, written,
            errors=WRITE_ERRORS, parameters=[WAIT], body=_json_body("AttendanceInput"))},
        "/v1/appointments/{external_id}/confirm": {"parameters": [EXTERNAL_ID], "post": _operation(
            "The host confirms a booking awaiting confirmation", WRITE, written, errors=WRITE_ERRORS,
            parameters=[WAIT], body=_json_body("ConfirmInput", required=False))},
        "/v1/appointments/{external_id}/decline": {"parameters": [EXTERNAL_ID], "post": _operation(
            "The host declines a booking awaiting confirmation", WRITE, written, errors=WRITE_ERRORS,
            parameters=[WAIT], body=_json_body("DeclineInput", required=False))},
        "/v1/appointments/{external_id}/reassign": {"parameters": [EXTERNAL_ID], "post": _operation(
            "Another host for a round-robin or managed booking (Cal.com picks, or `host`)", WRITE,
            written, errors=WRITE_ERRORS, parameters=[WAIT],
            body=_json_body("ReassignInput", required=False))},
        "/v1/appointments/{external_id}/history": {"parameters": [EXTERNAL_ID], "get": _operation(
            "Audit events, oldest first", READ, _json(_ref("History")), errors=(404, 422))},
        "/v1/appointments/{external_id}/invite.ics": {"parameters": [EXTERNAL_ID], "get": _operation(
            "RFC 5546 invite: METHOD:REQUEST, or METHOD:CANCEL once cancelled", READ, ICS,
            errors=(404, 409, 422))},
        "/v1/appointments/import": {"post": _operation(
            "Import appointments from CSV or JSON lines; a result per row", WRITE,
            _json(_ref("ImportReport"), "Imported (or, with dry_run, what each row would come to)."),
            errors=(413, 415, 422),
            parameters=[_query("override_conflicts", {"enum": ["true", "false", "1", "0"]}),
                        _query("dry_run", {"enum": ["true", "false", "1", "0"]},
                               "Validate and check conflicts, write nothing.")],
            body={"required": True, "content": {
                importer.CSV: {"schema": STRING}, importer.NDJSON: {"schema": STRING}}},
            extra_ok={"202": {**_json(_ref("ImportRun")),
                              "description": "A large file: imported in the background; poll Location."}})},
        "/v1/imports/{import_id}": {"parameters": [{
            "name": "import_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 40}}],
            "get": _operation("A background import: its progress, and its report once done", WRITE,
                              _json(_ref("ImportRun")), errors=(404,))},
        "/v1/calendar": {"get": _operation(
            "A month's days → appointments, in the account's time zone; cancelled hidden", READ,
            _json(_ref("Calendar")), errors=(422,),
            parameters=[_query("month", {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                               "YYYY-MM", required=True)])},
        "/v1/calendar.ics": {"get": {
            "summary": "The account's appointments as a subscribable calendar (METHOD:PUBLISH)",
            "description": "Authenticated by a `calendar:feed` token in the query.",
            "security": [{"feedToken": []}], "x-scope": "calendar:feed",
            "responses": {"200": ICS, **{str(code): _problem(code) for code in (401, 403, 422)}}}},
        "/v1/slots": {"get": _operation(
            "Free slots of a day from Cal.com", READ, _json(_ref("Slots")), errors=(422, 502, 503),
            parameters=[_query("date", {"type": "string", "format": "date"}, required=True),
                        _query("event_type_id", {"type": "integer", "minimum": 1}),
                        _query("time_zone", STRING)])},
        "/v1/event-types": {"get": _operation(
            "The cached event types, each flagged when it has no meeting address", READ,
            _json(_object({"items": {"type": "array", "items": _ref("EventType")}})), errors=())},
        "/v1/event-types/refresh": {"post": _operation(
            "Fetch event types from Cal.com now", ADMIN, _json(_ref("RefreshResult")),
            errors=(502, 503))},
        "/v1/settings": {
            "get": _operation("The account's settings (secrets only as set or not)", ADMIN,
                              _json(_ref("Settings")), errors=()),
            "put": _operation("Change settings; a new Cal.com key is checked first", ADMIN,
                              _json(_ref("Settings")), errors=(400, 413, 415, 422, 502, 503),
                              body=_json_body("SettingsInput"))},
        "/v1/jobs": {"get": _operation(
            "The queue, newest first", ADMIN, _json(_page_of(_ref("Job"))), errors=(422,),
            parameters=[_query("status", {"enum": list(jobs_api.job_admin.STATUSES)}), *PAGE])},
        "/v1/jobs/{job_id}/retry": {"post": _operation(
            "Replay a dead job", ADMIN, _json(_ref("Job")), errors=(404, 409, 422),
            parameters=[{"name": "job_id", "in": "path", "required": True, "schema": STRING}])},
        "/v1/reconcile": {"post": _operation(
            "Reconcile with Cal.com now", ADMIN, _json(_ref("ReconcileRun")),
            errors=(400, 409, 413, 415, 422, 502, 503), body=_json_body("ReconcileInput", required=False))},
        "/v1/webhook-deliveries": {"get": _operation(
            "Inbound Cal.com deliveries, newest first", ADMIN, _json(_page_of(_ref("WebhookDelivery"))),
            errors=(422,), parameters=[_query("outcome", {"enum": list(jobs_api.DELIVERY_OUTCOMES)}),
                                       *PAGE])},
        "/webhooks/calcom/{account_id}": {"post": {
            "summary": "Cal.com's subscriber URL (signed with X-Cal-Signature-256)",
            "security": [],
            "parameters": [{"name": "account_id", "in": "path", "required": True, "schema": STRING},
                           {"name": "X-Cal-Signature-256", "in": "header", "required": False,
                            "schema": STRING}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
            "responses": {"200": _json(_ref("WebhookReceipt")),
                          **{str(code): _problem(code) for code in (400, 401, 405, 413)}}}},
        "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {
            "200": _json(_object({"status": STRING})), "422": _problem(422)}}},
        "/readyz": {"get": {"summary": "Readiness (the database answers)", "security": [], "responses": {
            "200": _json(_object({"status": STRING, "database": STRING})),
            "422": _problem(422), "503": _problem(503)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {
            "200": {"description": "Text exposition format 0.0.4.",
                    "content": {"text/plain": {"schema": STRING}}}, "422": _problem(422)}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {
            "200": _json({"type": "object"}), "422": _problem(422)}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "calsync", "version": "1.0",
                 "description": "Keeps a CRM's appointments and Cal.com's bookings in sync. "
                                "Errors are RFC 9457 problem+json."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "webhooks": _crm_events(),
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "feedToken": {"type": "apiKey", "in": "query", "name": "token"}}},
    }


def _crm_events() -> dict:
    """The events calsync posts to the account's callback URL (docs/events.md), signed with
    Standard Webhooks headers."""
    headers = [{"name": name, "in": "header", "required": True, "schema": STRING}
               for name in ("webhook-id", "webhook-timestamp", "webhook-signature")]

    def event(name: str, data: dict, summary: str) -> dict:
        body = _object({"type": {"const": name}, "timestamp": INSTANT, "data": data})
        return {"post": {"summary": summary, "parameters": headers, "requestBody": {
            "required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"2XX": {"description": "Received; any other answer is retried."}}}}

    hooks = {name: event(name, _ref("Appointment"), f"{name}: the appointment right after the change")
             for name in events.APPOINTMENT_EVENTS}
    hooks[events.REMINDER_DUE] = event(events.REMINDER_DUE, {"allOf": [_ref("Appointment"), _object({
        "reminder": _object({"channel": STRING, "minutes_before": INTEGER, "template": _null(STRING),
                             "due_at": INSTANT})})]}, "A reminder is due: the CRM sends it")
    hooks[events.EVENT_TYPES_CHANGED] = event(events.EVENT_TYPES_CHANGED, _object({
        "added": {"type": "array", "items": INTEGER}, "changed": {"type": "array", "items": INTEGER},
        "removed": {"type": "array", "items": INTEGER}, "flagged": INTEGER}),
        "An event-type refresh found changes")
    return hooks


def routes() -> list[Route]:
    spec = document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    return [Route("/openapi.json", openapi, methods=["GET"])]
