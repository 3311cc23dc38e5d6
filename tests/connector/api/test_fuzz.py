"""A property-based fuzz of every route in /openapi.json, on both engines.

Generated paths, query strings, headers and bodies — with the classes a hostile review
found (non-ASCII digits, numbers past Python's int-string limit, deep nesting, NUL,
unpaired surrogates, a trailing newline, non-ASCII signatures) mixed into otherwise
valid requests, and Cal.com deliveries validly signed so the parser sees them too.

Two properties: no answer is ≥ 500, and a refused request (4xx) changes nothing. Each
accepted delivery is then applied by the worker, which must not fail on it either.
Bounded: ``EXAMPLES`` per engine, derandomised, so CI time stays fixed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peewee import fn

from connector.api import spec
from connector.core import accounts
from mappings.models import (
    Account,
    Appointment,
    AuditEvent,
    Booking,
    EventType,
    Job,
    ReconcileRun,
    WebhookDelivery,
)
from webhooks.calcom import APPLY_WEBHOOK
from webhooks.dispatch import DISPATCH_WEBHOOKS

EXAMPLES = 500  # across every route; the focused properties below add their own
SECRET = "fuzz-webhook-secret-0001"
OPERATIONS = [(path, method) for path, item in spec.document()["paths"].items()
              for method in item if method != "parameters"]

# The classes the hostile review found, and their neighbours.
HOSTILE = [
    "²", "٣", "1" * 5000, "9" * 30, "crm-1\n", "crm-1\r\nX-Evil: 1", "a\x00b", "\ud800", "\udfff\ud800",
    "", " ", "-1", "0", "1e9", "NaN", "Infinity", "null", "true", "[]", "{}", "é" * 300,
    "2026-13-45", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2026-03-17T10:00:00",
    "../../etc/passwd", "%00", "%ED%A0%80", "\u202e", "🙂" * 20, "Europe/Berlin\x00", "x" * 129,
]
NASTY = st.sampled_from(HOSTILE)
TEXT = st.one_of(NASTY, st.text(max_size=30))
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=True, allow_infinity=True), TEXT)


def _deep(depth: int) -> bytes:
    return b'{"label": ' + b"[" * depth + b"]" * depth + b"}"


GOOD_BODIES: dict[str, dict[str, Any]] = {
    "appointment": {"title": "Intro call", "attendee_name": "Alex Prospect",
                    "attendee_email": "alex@example.org", "start_time": "2026-03-18T11:00:00+01:00",
                    "metadata": {"deal": "42"}, "guests": ["kim@example.org"], "label": "hot"},
    "cancel": {"reason": "moved", "notify_attendee": False},
    "attendance": {"attendance": "no_show"},
    "settings": {"time_zone": "Europe/Berlin", "callback_url": "https://crm.example.org/hooks"},
    "reconcile": {"full": False},
    "delivery": {"triggerEvent": "BOOKING_CREATED", "createdAt": "2026-03-16T08:00:00Z", "payload": {
        "uid": "fuzzUid000000000000000", "bookingId": 7, "eventTypeId": 123456, "title": "Call",
        "startTime": "2026-03-19T10:00:00Z", "endTime": "2026-03-19T10:30:00Z", "status": "ACCEPTED",
        "attendees": [{"email": "kim@example.org", "name": "Kim", "timeZone": "UTC"}],
        "metadata": {"videoCallUrl": "https://video.example/x"}}},
}


@st.composite
def json_bodies(draw) -> bytes:
    """A good body with one field made hostile, or something that is hardly JSON at all."""
    kind = draw(st.sampled_from(sorted(GOOD_BODIES)))
    value = json.loads(json.dumps(GOOD_BODIES[kind]))
    target = value["payload"] if kind == "delivery" and draw(st.booleans()) else value
    field = draw(st.one_of(st.sampled_from(sorted(target)), TEXT))
    target[field] = draw(st.one_of(JSON_SCALAR, st.lists(JSON_SCALAR, max_size=3),
                                   st.dictionaries(TEXT, JSON_SCALAR, max_size=3)))
    # json.dumps escapes unpaired surrogates as "\ud800", which a JSON reader turns back into one.
    raw = json.dumps(value, allow_nan=True).encode()
    return draw(st.sampled_from([raw, raw[: max(1, len(raw) // 2)], _deep(50_000), _deep(200),
                                 b"\xff\xfe{}", b"[1, 2]", b"", b"{}", raw.replace(b"{", b"\xc0", 1)]))


# Good values of the declared query parameters, so requests get past the first check.
GOOD_VALUES = {"q": ["intro", "50%_off"], "status": ["active,cancelled"], "label": ["hot"],
               "from": ["2026-03-01T00:00:00Z"], "to": ["2026-04-01T00:00:00+02:00"],
               "sort": ["title", "start_time"], "order": ["desc"], "page": ["1", "2"],
               "per_page": ["10", "100"], "month": ["2026-03"], "date": ["2026-03-17"],
               "event_type_id": ["123456"], "time_zone": ["America/New_York"],
               "override_conflicts": ["true"], "outcome": ["applied"], "token": ["csk_x"]}
BODIES = st.one_of(st.none(), json_bodies(), json_bodies(), st.binary(max_size=200),
                   st.just(b"external_id,title\ncrm-9,\xff\n"),
                   st.just(b'{"external_id": "x", "title": "\\ud800"}\n'))


def _header_value(text: str) -> bytes:
    # What a client can put on the wire: no CR, LF or NUL; anything else, as UTF-8 bytes.
    raw = text.encode("utf-8", "surrogatepass")
    return bytes(b for b in raw if b not in (0, 10, 13)) or b"x"


@st.composite
def requests(draw, operations: list[tuple[str, str]] = OPERATIONS, *, trusted: bool = False) -> dict[str, Any]:
    """A request to one of ``operations``; ``trusted`` keeps the owner's token and a valid signature,
    so every example reaches the parsing and the writing."""
    path, method = draw(st.sampled_from(operations))
    operation = spec.document()["paths"][path][method]
    declared = [p["name"] for p in [*spec.document()["paths"][path].get("parameters", []),
                                    *operation.get("parameters", [])] if p["in"] == "query"]
    # Mostly what the operation declares, with good or hostile values; now and then a stranger.
    names = draw(st.lists(st.sampled_from(declared), max_size=3, unique=True)) if declared else []
    query = [(name, draw(st.one_of(st.sampled_from(GOOD_VALUES.get(name, ["1"])), TEXT))) for name in names]
    if draw(st.integers(0, 9)) == 0:
        query.append((draw(TEXT), draw(TEXT)))
    segments = {"external_id": draw(st.one_of(st.sampled_from(["crm-1", "crm-1", "crm-new"]), TEXT)),
                "job_id": draw(st.one_of(st.just("1"), TEXT)),
                "account_id": "{account}" if trusted else draw(st.one_of(st.just("{account}"), TEXT))}
    headers = {
        "authorization": "owner" if trusted else draw(st.sampled_from([
            "owner", "owner", "owner", "read", "write", "admin", "feed", "none", "bogus", "nasty"])),
        "content-type": draw(st.sampled_from([
            "application/json", "application/json; charset=utf-8", "application/merge-patch+json",
            "text/csv", "application/x-ndjson", "text/plain", "", "application/json\u00e9"])),
        "prefer": draw(st.sampled_from([None, "wait=0", "wait=\u0663", "wait=" + "9" * 5000 + "x",
                                        "wait=soon", "respond-async"])),
        "signature": "valid" if trusted else draw(st.sampled_from([
            "valid", "valid", "valid", "garbage", "non-ascii", "none"])),
        "nasty": draw(TEXT),
    }
    return {"path": path, "method": method.upper(), "query": query, "segments": segments,
            "headers": headers, "body": draw(BODIES)}


def _state() -> tuple:
    """Everything a request could store; the tokens' last-used stamps are bookkeeping, not input."""
    return (
        *(model.select().count() for model in (Appointment, Booking, Job, AuditEvent, WebhookDelivery,
                                               EventType, ReconcileRun)),
        Appointment.select(fn.SUM(Appointment.desired_version)).scalar(),
        Account.select(fn.MAX(Account.updated_at)).scalar(),
    )


@pytest.fixture(name="settings")
def unpaced_settings(settings):
    """The fake clock never moves, so calsync's own pacing would soon answer 503 for Cal.com:
    lifted here, where the subject is input, not rate limits (tests/connector/calcom/test_ratelimit.py)."""
    return settings.replace(calcom={"rate_limit_per_window": 10**9})


@pytest.fixture
def world(client, make_account, db, clock, run_jobs, fill_event_types):
    account, owner = make_account(calcom_webhook_secrets=(SECRET,))
    tokens = {"owner": owner}
    for kind, scopes in (("read", {accounts.READ}), ("write", {accounts.WRITE}),
                         ("admin", {accounts.ADMIN}), ("feed", {accounts.FEED})):
        tokens[kind] = accounts.create_token(db, account.id, kind, frozenset(scopes), now=clock.now())[1]
    fill_event_types(account)
    good = GOOD_BODIES["appointment"]
    assert client.put("/v1/appointments/crm-1", json=good,
                      headers={"Authorization": f"Bearer {owner}"}).status_code == 201
    run_jobs()
    return account, tokens


def _send(client, account, tokens, request: dict[str, Any]):
    segments = {name: value.replace("{account}", account.id) for name, value in request["segments"].items()}
    url = request["path"]
    for name, value in segments.items():
        url = url.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
    if request["query"]:
        url += "?" + "&".join(quote(n.encode("utf-8", "surrogatepass"), safe="") + "="
                              + quote(v.encode("utf-8", "surrogatepass"), safe="")
                              for n, v in request["query"])
    given_headers = request["headers"]
    headers: dict[str, bytes] = {}
    who = given_headers["authorization"]
    if who in tokens:
        headers["Authorization"] = f"Bearer {tokens[who]}".encode()
    elif who == "bogus":
        headers["Authorization"] = b"Bearer csk_not-a-real-token"
    elif who == "nasty":
        headers["Authorization"] = b"Bearer " + _header_value(given_headers["nasty"])
    if given_headers["content-type"]:
        headers["Content-Type"] = _header_value(given_headers["content-type"])
    if given_headers["prefer"]:
        headers["Prefer"] = _header_value(given_headers["prefer"])
    body = request["body"]
    signature = given_headers["signature"]
    if signature == "valid" and body is not None:
        headers["X-Cal-Signature-256"] = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode()
    elif signature == "garbage":
        headers["X-Cal-Signature-256"] = _header_value(given_headers["nasty"])
    elif signature == "non-ascii":
        headers["X-Cal-Signature-256"] = "é".encode("latin-1") * 64
    return client.request(request["method"], url, content=body, headers=headers)


def _check(client, app, world, request: dict[str, Any]) -> None:
    account, tokens = world
    before = _state()
    answer = _send(client, account, tokens, request)
    assert answer.status_code < 500, (request, answer.text)
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json", answer.text
        assert _state() == before, (request, answer.status_code, answer.text)
    worker = app.state.runtime.worker
    webhook_work = Job.kind.in_([DISPATCH_WEBHOOKS, APPLY_WEBHOOK])
    while Job.select().where(webhook_work & (Job.status == "queued")).exists():
        assert worker.run_once()
    assert not WebhookDelivery.select().where(WebhookDelivery.outcome == "failed").exists()
    assert not Job.select().where((Job.kind == APPLY_WEBHOOK) & (Job.status != "done")).exists()


FUZZ = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
WRITES = [(path, method) for path, method in OPERATIONS
          if method in ("put", "patch", "post") and not path.startswith("/webhooks/")]


@settings(max_examples=EXAMPLES, **FUZZ)
@given(request=requests())
def test_no_route_answers_5xx_and_a_refused_request_changes_nothing(client, app, world, request):
    _check(client, app, world, request)


@settings(max_examples=200, **FUZZ)
@given(request=requests(WRITES, trusted=True))
def test_writes_with_a_good_token_answer_4xx_for_hostile_input_and_write_nothing(client, app, world,
                                                                                 request):
    _check(client, app, world, request)


@settings(max_examples=150, **FUZZ)
@given(request=requests([("/webhooks/calcom/{account_id}", "post")]))
def test_cal_coms_subscriber_url_refuses_any_stranger_without_a_5xx(client, app, world, request):
    _check(client, app, world, request)


@settings(max_examples=200, **FUZZ)
@given(request=requests([("/webhooks/calcom/{account_id}", "post")], trusted=True))
def test_validly_signed_hostile_deliveries_are_stored_and_applied_without_failing(client, app, world,
                                                                                  request):
    _check(client, app, world, request)



@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_every_known_hostile_value_in_every_slot_of_every_route(client, app, world, path, method):
    """Not left to chance: each hostile value in each path segment, query parameter and header."""
    operation = spec.document()["paths"][path][method]
    declared = [p["name"] for p in [*spec.document()["paths"][path].get("parameters", []),
                                    *operation.get("parameters", [])] if p["in"] == "query"]
    base = {"path": path, "method": method.upper(), "query": [],
            "segments": {"external_id": "crm-1", "job_id": "1", "account_id": "{account}"},
            "headers": {"authorization": "owner", "content-type": "application/json", "prefer": None,
                        "signature": "valid", "nasty": "x"},
            "body": json.dumps(GOOD_BODIES["delivery" if path.startswith("/webhooks/") else
                                          "appointment"]).encode() if method != "get" else None}
    for value in HOSTILE:
        variants = [{**base, "segments": {**base["segments"], name: value}}
                    for name in base["segments"] if "{" + name + "}" in path]
        variants += [{**base, "query": [(name, value)]} for name in declared]
        variants += [{**base, "headers": {**base["headers"], slot: value}}
                     for slot in ("content-type", "prefer")]
        variants += [{**base, "headers": {**base["headers"], "authorization": "nasty", "nasty": value}},
                     {**base, "headers": {**base["headers"], "signature": "garbage", "nasty": value}}]
        for request in variants:
            _check(client, app, world, request)
