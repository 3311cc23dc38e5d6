"""Every malformed request gets a 4xx problem+json naming what is wrong, and writes nothing."""

from __future__ import annotations

import json

import pytest

from connector.core import accounts
from mappings.models import Appointment, AuditEvent, Booking, Job

GOOD = {
    "title": "Intro call",
    "attendee_name": "Alex Prospect",
    "attendee_email": "alex.prospect@example.org",
    "start_time": "2026-03-17T11:00:00+01:00",
}


def body(**changes) -> bytes:
    values = {**GOOD, **changes}
    return json.dumps({k: v for k, v in values.items() if v is not ...}).encode()


JSON = {"Content-Type": "application/json"}

# (id, path, raw body, extra headers, auth kind, status, field named in the answer)
CASES = [
    ("bad-json", "crm-1", b"{\"title\": ", JSON, "owner", 400, None),
    ("json-array", "crm-1", b"[1, 2]", JSON, "owner", 400, None),
    ("json-string", "crm-1", b"\"hello\"", JSON, "owner", 400, None),
    ("empty-body", "crm-1", b"", JSON, "owner", 400, None),
    ("not-utf8", "crm-1", b"\xff\xfe{}", JSON, "owner", 400, None),
    ("missing-title", "crm-1", body(title=...), JSON, "owner", 422, "title"),
    ("blank-title", "crm-1", body(title="   "), JSON, "owner", 422, "title"),
    ("title-wrong-type", "crm-1", body(title=5), JSON, "owner", 422, "title"),
    ("missing-start", "crm-1", body(start_time=...), JSON, "owner", 422, "start_time"),
    ("naive-start", "crm-1", body(start_time="2026-03-17T11:00:00"), JSON, "owner", 422, "start_time"),
    ("unparsable-start", "crm-1", body(start_time="next tuesday"), JSON, "owner", 422, "start_time"),
    ("start-as-number", "crm-1", body(start_time=1773741600), JSON, "owner", 422, "start_time"),
    ("bad-email", "crm-1", body(attendee_email="alex@"), JSON, "owner", 422, "attendee_email"),
    ("unknown-zone", "crm-1", body(attendee_time_zone="Mars/Olympus"), JSON, "owner", 422,
     "attendee_time_zone"),
    ("zone-abbreviation", "crm-1", body(attendee_time_zone="PST"), JSON, "owner", 422,
     "attendee_time_zone"),
    ("event-type-as-string", "crm-1", body(event_type_id="123456"), JSON, "owner", 422, "event_type_id"),
    ("event-type-zero", "crm-1", body(event_type_id=0), JSON, "owner", 422, "event_type_id"),
    ("event-type-huge", "crm-1", body(event_type_id=2**70), JSON, "owner", 422, "event_type_id"),
    ("start-year-9999", "crm-1", body(start_time="9999-12-31T23:59:59-12:00"), JSON, "owner", 422,
     "start_time"),
    ("start-year-1", "crm-1", body(start_time="0001-01-01T00:00:00+14:00"), JSON, "owner", 422,
     "start_time"),
    ("duration-fraction", "crm-1", body(duration_minutes=1.5), JSON, "owner", 422, "duration_minutes"),
    ("duration-bool", "crm-1", body(duration_minutes=True), JSON, "owner", 422, "duration_minutes"),
    ("unknown-field", "crm-1", body(atendee_name="typo"), JSON, "owner", 422, "atendee_name"),
    ("bad-guest", "crm-1", body(guests=["ok@example.org", "nope"]), JSON, "owner", 422, "guests.1"),
    ("guests-not-list", "crm-1", body(guests="a@example.org"), JSON, "owner", 422, "guests"),
    ("metadata-number", "crm-1", body(metadata={"deal": 5}), JSON, "owner", 422, "metadata.deal"),
    ("metadata-too-many", "crm-1", body(metadata={f"k{i}": "v" for i in range(51)}), JSON, "owner",
     422, "metadata"),
    ("phone-not-e164", "crm-1", body(attendee_phone="555-0100"), JSON, "owner", 422, "attendee_phone"),
    ("external-id-space", "crm%201", body(), JSON, "owner", 422, "external_id"),
    ("external-id-too-long", "x" * 129, body(), JSON, "owner", 422, "external_id"),
    ("external-id-unicode", "crm-%C3%A9", body(), JSON, "owner", 422, "external_id"),
    ("two-mebibytes", "crm-1", body(description="x" * (2 * 1024 * 1024)), JSON, "owner", 413, None),
    ("text-plain", "crm-1", body(), {"Content-Type": "text/plain"}, "owner", 415, None),
    ("no-token", "crm-1", body(), JSON, "none", 401, None),
    ("unknown-token", "crm-1", body(), JSON, "bogus", 401, None),
    ("basic-auth", "crm-1", body(), {**JSON, "Authorization": "Basic dXNlcjpwYXNz"}, "raw", 401, None),
    ("wrong-scope", "crm-1", body(), JSON, "reader", 403, None),
]


def _counts() -> tuple[int, int, int, int]:
    return (Appointment.select().count(), Booking.select().count(), Job.select().count(),
            AuditEvent.select().count())


def _headers(kind: str, owner: str, reader: str, extra: dict[str, str]) -> dict[str, str]:
    auth = {"owner": f"Bearer {owner}", "reader": f"Bearer {reader}",
            "bogus": "Bearer csk_not-a-real-token"}.get(kind)
    return {**extra, **({"Authorization": auth} if auth else {})}


@pytest.mark.parametrize(("path", "raw", "extra", "auth", "status", "field"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_put(client, make_account, db, clock, path, raw, extra, auth, status, field):
    account, owner = make_account()
    _, reader = accounts.create_token(db, account.id, "reader", frozenset({accounts.READ}), now=clock.now())
    before = _counts()
    answer = client.put(f"/v1/appointments/{path}", content=raw,
                        headers=_headers(auth, owner, reader, extra))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["type"].startswith("/problems/")
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]]
        assert field in problem["detail"]
    assert _counts() == before


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_a_token_of_another_account_sees_nothing(client, make_account):
    _, owner = make_account("A")
    client.put("/v1/appointments/crm-1", content=body(), headers={**JSON, "Authorization": f"Bearer {owner}"})
    _, stranger = make_account("B")
    before = _counts()
    answer = client.get("/v1/appointments/crm-1", headers={"Authorization": f"Bearer {stranger}"})
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
    assert _counts() == before


@pytest.mark.parametrize(("method", "path", "status"), [
    ("DELETE", "/v1/appointments/crm-1", 405),
    ("GET", "/v1/nothing-here", 404),
    ("POST", "/v1/appointments/crm-1", 405),
])
def test_unknown_routes_and_methods_are_problems(client, tenant, method, path, status):
    _, auth = tenant
    answer = client.request(method, path, headers=auth)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", "/v1/jobs?page=99999999999999999999", "page"),
    ("POST", "/v1/jobs/99999999999999999999/retry", "job_id"),
])
def test_numbers_too_large_for_the_database_are_refused(client, tenant, method, path, field):
    _, auth = tenant
    answer = client.request(method, path, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field


# --- classes found by the hostile review: each must be a 4xx naming the field, and write nothing ----

DEEP = b'{"label": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


@pytest.mark.parametrize(("method", "path", "headers", "raw", "status", "field"), [
    ("GET", "/v1/jobs?page=%D9%A3", {}, None, 422, "page"),                 # Arabic-Indic three
    ("GET", "/v1/jobs?page=%C2%B2", {}, None, 422, "page"),                 # superscript two
    ("GET", "/v1/appointments?per_page=" + "1" * 5000, {}, None, 422, "per_page"),
    ("GET", "/v1/webhook-deliveries?page=" + "9" * 5000, {}, None, 422, "page"),
    ("POST", "/v1/jobs/" + "9" * 5000 + "/retry", {}, None, 422, "job_id"),
    ("POST", "/v1/jobs/%C2%B2/retry", {}, None, 422, "job_id"),
    ("GET", "/v1/slots?date=2026-03-17&event_type_id=%D9%A3", {}, None, 422, "event_type_id"),
    ("GET", "/v1/calendar?month=%D9%A2%D9%A0%D9%A2%D9%A6-03", {}, None, 422, "month"),
    ("PUT", "/v1/appointments/crm-1", {"Prefer": "wait=\u0663".encode()}, body(), 422, "Prefer"),
    ("PUT", "/v1/appointments/crm-1", {"Prefer": "respond-async, wait=soon"}, body(), 422, "Prefer"),
    ("PUT", "/v1/appointments/crm-1%0A", {}, body(), 422, "external_id"),
    ("GET", "/v1/appointments/crm-1%0A", {}, None, 422, "external_id"),
    ("PUT", "/v1/appointments/crm-1?dry_run=true", {}, body(), 422, "dry_run"),
    ("POST", "/v1/appointments/crm-1/cancel?reason=x", {}, b"{}", 422, "reason"),
    ("PATCH", "/v1/appointments/crm-1", {}, DEEP, 400, None),
    ("PUT", "/v1/appointments/crm-1", {}, DEEP, 400, None),
    ("PATCH", "/v1/appointments/crm-1", {}, b'{"label": "\\ud800"}', 400, None),
    ("PUT", "/v1/settings", {}, b'{"callback_url": "https://crm.example.org:99999/h"}', 422,
     "callback_url"),
    ("PUT", "/v1/settings", {}, b'{"callback_url": "https://crm.example.org/h\\nx"}', 422, "callback_url"),
    ("PUT", "/v1/settings", {}, b'{"callback_url": "/relative/hooks"}', 422, "callback_url"),
    ("PUT", "/v1/settings", {}, b'{"public_url": "https://user:pw@calsync.example.org"}', 422,
     "public_url"),
])
def test_each_class_of_bad_input_is_refused_before_anything_is_written(
        client, tenant, run_jobs, method, path, headers, raw, status, field):
    _, auth = tenant
    client.put("/v1/appointments/crm-1", content=body(), headers={**JSON, **auth})
    run_jobs()
    before = _counts()
    answer = client.request(method, path, content=raw, headers={**JSON, **auth, **headers})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert field in [e["field"] for e in answer.json()["errors"]]
    assert _counts() == before


def test_a_huge_wait_is_capped_at_thirty_seconds():
    from starlette.requests import Request

    from connector.api import waiting

    def asked(value: str) -> int | None:
        return waiting.requested_wait(Request({"type": "http", "headers": [(b"prefer", value.encode())]}))

    assert asked("wait=" + "9" * 5000) == 30
    assert asked("wait=007") == 7 and asked("return=minimal") is None and asked("wait=0") == 0


def _string_cases():
    """Every free-text field of every request body, each carrying NUL."""
    from connector.inputs import AppointmentInput, CancelInput, SettingsInput

    cases = [("PUT", "/v1/appointments/crm-2", name, {**GOOD, name: "a\u0000b"})
             for name in AppointmentInput.model_fields if name not in ("event_type_id", "duration_minutes",
                                                                      "start_time", "guests", "metadata")]
    cases += [("PUT", "/v1/appointments/crm-2", "metadata.note", {**GOOD, "metadata": {"note": "a\u0000"}}),
              ("PUT", "/v1/appointments/crm-2", "metadata", {**GOOD, "metadata": {"no\u0000te": "a"}}),
              ("PUT", "/v1/appointments/crm-2", "guests.0", {**GOOD, "guests": ["a\u0000@example.org"]}),
              ("POST", "/v1/appointments/crm-1/cancel", "reason", {"reason": "a\u0000b"})]
    cases += [("PUT", "/v1/settings", name, {name: "https://x.example.org/a\u0000" if "url" in name
                                             else "a\u0000b"})
              for name in SettingsInput.model_fields if name not in (
                  "default_event_type_id", "duration_override_minutes")]
    assert {name for _, _, name, _ in cases} >= set(CancelInput.model_fields) - {"notify_attendee"}
    return cases


@pytest.mark.parametrize(("method", "path", "field", "values"), _string_cases(),
                         ids=[f"{case[0]} {case[1]} {case[2]}" for case in _string_cases()])
def test_nul_is_refused_in_every_text_field_on_both_engines(client, tenant, run_jobs, method, path, field,
                                                            values):
    _, auth = tenant
    client.put("/v1/appointments/crm-1", content=body(), headers={**JSON, **auth})
    run_jobs()
    before = _counts()
    answer = client.request(method, path, json=values, headers=auth)
    assert answer.status_code == 422, answer.text
    assert any(e["field"].startswith(field) for e in answer.json()["errors"]), answer.text
    assert _counts() == before
