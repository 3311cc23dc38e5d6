"""POST /v1/appointments/import: CSV and JSON lines, a result per row, conflicts, idempotence."""

from __future__ import annotations

import json

import pytest

from connector.core import accounts, import_runs
from mappings.models import Appointment, AuditEvent, ImportRun, Job

CSV_FILE = (
    "external_id,title,attendee_name,attendee_email,start_time,label,guests,metadata.deal\n"
    "imp-1,Roof survey,Ana Díaz,ana@example.org,2026-03-20T09:00:00Z,hot,kim@example.org;lee@example.org,D-1\n"
    "imp-2,Intro,Bo,bo@example.org,2026-03-20T09:15:00Z,,,\n"  # overlaps imp-1 (30-minute type)
    "imp-3,Intro,Cy,not-an-email,2026-03-21T09:00:00,,,\n"  # two bad fields
    "imp-4,Follow-up,Di,di@example.org,2026-03-22T09:00:00+01:00,,,\n"
).encode()


def post(client, auth, body: bytes, media: str = "text/csv", query: str = ""):
    return client.post(f"/v1/appointments/import{query}", content=body,
                       headers={**auth, "Content-Type": media})


def by_row(answer) -> dict[int, dict]:
    assert answer.status_code == 200, answer.text
    return {item["row"]: item for item in answer.json()["rows"]}


@pytest.fixture
def tenant(tenant, fill_event_types):
    """An account whose event types are cached: imp-1's 30-minute length makes imp-2 overlap."""
    fill_event_types(tenant[0])
    return tenant


def test_a_csv_file_gives_a_result_per_row(client, tenant):
    _, auth = tenant
    answer = post(client, auth, CSV_FILE)
    rows = by_row(answer)
    assert answer.json()["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "conflict": 1,
                                       "invalid": 1}
    assert rows[1]["outcome"] == "created" and rows[1]["external_id"] == "imp-1"
    assert rows[2]["outcome"] == "conflict" and rows[2]["conflicts_with"] == "imp-1"
    assert rows[3]["outcome"] == "invalid"
    assert sorted(e["field"] for e in rows[3]["errors"]) == ["attendee_email", "start_time"]
    assert rows[4]["outcome"] == "created"
    shown = client.get("/v1/appointments/imp-1", headers=auth).json()
    assert shown["guests"] == ["kim@example.org", "lee@example.org"]
    assert shown["metadata"] == {"deal": "D-1"} and shown["label"] == "hot"
    assert Job.select().where(Job.kind == "converge").count() == 2


def test_the_same_file_twice_changes_nothing(client, tenant):
    _, auth = tenant
    post(client, auth, CSV_FILE)
    audits, jobs = AuditEvent.select().count(), Job.select().count()
    again = post(client, auth, CSV_FILE)
    assert again.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "conflict": 1,
                                      "invalid": 1}
    assert (AuditEvent.select().count(), Job.select().count()) == (audits, jobs)


def test_override_conflicts_books_the_overlapping_row(client, tenant):
    _, auth = tenant
    rows = by_row(post(client, auth, CSV_FILE, query="?override_conflicts=true"))
    assert rows[2]["outcome"] == "created"
    bad = post(client, auth, CSV_FILE, query="?override_conflicts=maybe")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "override_conflicts"


def test_json_lines_update_and_report_each_line(client, tenant):
    _, auth = tenant
    base = {"title": "Intro", "attendee_name": "Ed", "attendee_email": "ed@example.org",
            "start_time": "2026-03-23T09:00:00Z"}
    lines = [json.dumps({"external_id": "j-1", **base}), "", "not json", "[1]",
             json.dumps({"external_id": "j-2", **base, "start_time": "2026-03-24T09:00:00Z",
                         "duration_minutes": "30"}),
             json.dumps({**base, "start_time": "2026-03-25T09:00:00Z"}),
             json.dumps({"external_id": "j-1", **base, "title": "again"})]
    rows = by_row(post(client, auth, "\n".join(lines).encode(), "application/x-ndjson"))
    assert rows[1]["outcome"] == "created"
    assert rows[3]["outcome"] == "invalid" and rows[3]["errors"][0]["field"] == "row"
    assert rows[4]["errors"][0]["message"] == "must be a JSON object"
    assert rows[5]["errors"][0]["field"] == "duration_minutes"  # JSON keeps its types
    assert rows[6]["errors"][0]["field"] == "external_id"
    assert rows[7]["outcome"] == "invalid" and "repeats row 1" in rows[7]["errors"][0]["message"]
    changed = {"external_id": "j-1", **base, "title": "Renamed"}
    assert by_row(post(client, auth, json.dumps(changed).encode(), "application/x-ndjson"))[1][
        "outcome"] == "updated"


def test_a_cancelled_appointment_is_reported_not_changed(client, tenant):
    _, auth = tenant
    post(client, auth, CSV_FILE)
    client.post("/v1/appointments/imp-4/cancel", json={}, headers=auth)
    changed = CSV_FILE.replace(b"Follow-up", b"Moved")
    row = by_row(post(client, auth, changed))[4]
    assert row["outcome"] == "invalid" and "cancelled" in row["errors"][0]["message"]


@pytest.mark.parametrize("body, media, status, field", [
    (b"external_id,title,colour\nx,y,z\n", "text/csv", 422, "header"),
    (b"title,attendee_name\nx,y\n", "text/csv", 422, "header"),
    (b"external_id,external_id\nx,y\n", "text/csv", 422, "header"),
    (b"", "text/csv", 422, "body"),
    (b"\xff\xfe\x00", "text/csv", 422, "body"),
    (b"external_id\n" + b"x\n" * 10_001, "text/csv", 422, "body"),
    (b'{"external_id": "x"}', "application/json", 415, None),
])
def test_a_bad_file_is_refused_whole_and_writes_nothing(client, tenant, body, media, status, field):
    answer = post(client, tenant[1], body, media)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if field:
        assert answer.json()["errors"][0]["field"] == field
    assert Appointment.select().count() == 0


def test_a_short_csv_row_is_invalid_and_the_rest_go_in(client, tenant):
    rows = by_row(post(client, tenant[1], CSV_FILE.replace(b",hot,kim", b",hot")))
    assert rows[1]["outcome"] == "invalid" and rows[1]["errors"][0]["field"] == "row"
    assert rows[4]["outcome"] == "created"


def test_import_needs_the_write_scope(client, tenant, token_with):
    reader = token_with(tenant[0], accounts.READ)
    assert post(client, reader, CSV_FILE).status_code == 403
    assert Appointment.select().count() == 0


def _bulk(count: int, first: str = "bulk") -> bytes:
    from datetime import UTC, datetime, timedelta

    start = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    lines = ["external_id,title,attendee_name,attendee_email,start_time"]
    lines += [f"{first}-{index},Call {index},Person {index},p{index}@example.org,"
              f"{(start + timedelta(minutes=30 * index)).isoformat()}" for index in range(count)]
    return "\n".join(lines).encode()


def test_a_large_file_runs_in_the_background_and_reports_its_progress(client, tenant, statements, run_jobs,
                                                                      db, clock):
    """1,200 rows (six chunks, past server.import_background_rows): 202 and a Location to poll;
    bench/import.py times the 10,000-row maximum."""
    statements.clear()
    answer = post(client, tenant[1], _bulk(1_200))
    assert answer.status_code == 202, answer.text
    location = answer.headers["location"]
    assert answer.json()["status"] == "queued" and answer.json()["total"] == 1_200
    assert Appointment.select().count() == 0  # nothing yet: the request did not hold the import
    job = Job.get(Job.kind == import_runs.IMPORT_FILE)
    statements.clear()
    import_runs.ImportHandler(db, clock).run(job)  # the worker's handler, alone, to count its statements
    assert len(statements) / 1_200 < 16  # a bounded number of statements per row, no N+1
    run_jobs()
    done = client.get(location, headers=tenant[1]).json()
    assert (done["status"], done["done"], done["report"]["counts"]["created"]) == ("done", 1_200, 1_200)
    assert Appointment.select().count() == 1_200
    assert {row.source for row in Appointment.select(Appointment.source)} == {"import"}
    assert client.get("/v1/imports/imp_nope", headers=tenant[1]).status_code == 404


def test_a_write_only_token_polling_its_import_sees_no_other_appointment(client, tenant, token_with, run_jobs):
    post(client, tenant[1], _bulk(1, first="held"))
    writer = token_with(tenant[0], accounts.WRITE)
    body = _bulk(600).replace(b"bulk-0,", b"clash,").replace(b"2027-01-04T08:00:00+00:00",
                                                             b"2027-01-04T08:10:00+00:00", 1)
    answer = post(client, writer, body)
    run_jobs()
    report = client.get(answer.headers["location"], headers=writer).json()["report"]
    clash = report["rows"][0]
    assert clash["outcome"] == "conflict" and "conflicts_with" not in clash
    assert "held-0" not in json.dumps(report)


def test_a_background_import_of_a_revoked_token_fails_and_writes_nothing(client, tenant, run_jobs, db, clock):
    answer = post(client, tenant[1], _bulk(600))
    token_id = accounts.authenticate(db, tenant[1]["Authorization"][7:], now=clock.now()).token_id
    accounts.revoke_token(db, token_id, now=clock.now())
    run_jobs()
    run = ImportRun.get_by_id(answer.json()["id"])
    assert run.status == "failed" and "revoked" in run.error
    assert Appointment.select().count() == 0


def test_a_dry_run_answers_what_the_import_would_do_and_writes_nothing(client, tenant):
    _, auth = tenant
    preview = post(client, auth, CSV_FILE, query="?dry_run=true")
    assert preview.status_code == 200
    assert (Appointment.select().count(), Job.select().count(), AuditEvent.select().count()) == (0, 0, 0)
    real = post(client, auth, CSV_FILE)
    assert preview.json() == real.json()  # every row's outcome, errors and conflicts alike
    again = post(client, auth, CSV_FILE, query="?dry_run=1")
    assert again.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "conflict": 1, "invalid": 1}
    changed = CSV_FILE.replace(b"Follow-up", b"Follow-up call")
    assert post(client, auth, changed, query="?dry_run=true").json()["counts"]["updated"] == 1
    bad = post(client, auth, CSV_FILE, query="?dry_run=perhaps")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "dry_run"


def test_a_dry_run_sees_conflicts_between_rows_of_the_same_file(client, tenant):
    """A real import writes row 1 before it checks row 300; a dry run must see row 1 too."""
    _, auth = tenant
    body = _bulk(300) + b"\nclash,Late,Zed,zed@example.org,2027-01-04T08:10:00+00:00"
    preview = post(client, auth, body, query="?dry_run=true")
    rows = by_row(preview)
    assert rows[301]["outcome"] == "conflict" and rows[301]["conflicts_with"] == "bulk-0"
    assert preview.json() == post(client, auth, body).json()


def test_unreadable_files_are_422_or_invalid_rows_never_500(client, tenant):
    huge_cell = b"external_id,title\nx," + b"a" * 200_000 + b"\n"
    answer = post(client, tenant[1], huge_cell)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body"
    deep = b"[" * 100_000 + b"\n"
    row = by_row(post(client, tenant[1], deep, "application/x-ndjson"))[1]
    assert row["outcome"] == "invalid" and row["errors"][0]["message"].startswith(
        "is not valid JSON: recursion limit exceeded")
    lone = b'{"external_id": "x-1", "title": "\\ud800", "attendee_name": "A", '\
           b'"attendee_email": "a@example.org", "start_time": "2026-03-17T10:00:00Z"}\n'
    row = by_row(post(client, tenant[1], lone, "application/x-ndjson"))[1]
    assert row["outcome"] == "invalid" and row["errors"][0]["message"].startswith("is not valid JSON")
    assert Appointment.select().count() == 0


def test_a_csv_row_names_its_reminders(client, tenant):
    _, auth = tenant
    body = (b"external_id,title,attendee_name,attendee_email,start_time,reminders\n"
            b"rem-1,Call,Ann,ann@example.org,2026-03-20T09:00:00Z,sms:30;email:1440:See you: bring notes\n"
            b"rem-2,Call,Bo,bo@example.org,2026-03-21T09:00:00Z,fax:ten\n")
    rows = by_row(post(client, auth, body))
    assert rows[1]["outcome"] == "created"
    assert client.get("/v1/appointments/rem-1", headers=auth).json()["reminders"] == [
        {"channel": "sms", "minutes_before": 30},
        {"channel": "email", "minutes_before": 1440, "template": "See you: bring notes"}]
    assert rows[2]["outcome"] == "invalid"
    assert {e["field"] for e in rows[2]["errors"]} == {"reminders.0.channel", "reminders.0.minutes_before"}
