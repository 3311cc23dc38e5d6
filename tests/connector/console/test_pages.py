"""The console's pages through the app: sessions, scopes, CSRF, hostile text, and every action
landing in the same core as the API's (source console, audited under the token's name)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from connector.core import accounts
from connector.jobs import queue
from mappings.models import Account, Appointment, AuditEvent, Job

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sign_in(client, token: str):
    answer = client.post("/console/sign-in", data={"token": token, "next": "/console/appointments"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


@pytest.fixture
def owner(make_account):
    account, token = make_account()
    return account, token


@pytest.fixture
def signed_in(client, owner):
    sign_in(client, owner[1])
    return client


def put_appointment(client, owner, external_id="crm-1", **fields):
    body = {"title": "Intro", "attendee_name": "Alex", "attendee_email": "alex@example.org",
            "start_time": "2026-03-17T11:00:00+01:00", **fields}
    answer = client.put(f"/v1/appointments/{external_id}", json=body,
                        headers={"Authorization": f"Bearer {owner[1]}"})
    assert answer.status_code in (200, 201), answer.text


def test_pages_need_a_session_and_the_cookie_is_strict_httponly_and_expiring(client, owner, clock):
    away = client.get("/console/appointments", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"].startswith("/console/sign-in?next=")
    wrong = client.post("/console/sign-in", data={"token": "csk_nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    answer = sign_in(client, owner[1])
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert owner[1] not in answer.headers["set-cookie"]  # the token itself never travels in it
    assert client.get("/console/appointments").status_code == 200
    clock.advance(hours=9)  # past the session's lifetime
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


def test_a_sign_in_posted_from_another_site_is_refused(client, owner):
    forged = client.post("/console/sign-in", data={"token": owner[1]}, headers={"Origin": "https://evil.example"},
                         follow_redirects=False)
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    assert sign_in(client, owner[1]).status_code == 303  # TestClient's own origin: no header


def test_sign_out_ends_the_session_and_revoking_the_token_ends_it_too(client, owner, db, clock):
    sign_in(client, owner[1])
    page = client.get("/console/appointments").text
    client.post("/console/sign-out", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303
    sign_in(client, owner[1])
    accounts.revoke_token(db, accounts.authenticate(db, owner[1], now=clock.now()).token_id, now=clock.now())
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(signed_in, owner):
    put_appointment(signed_in, owner)
    before = Appointment.get(Appointment.external_id == "crm-1").desired_version
    refused = signed_in.post("/console/appointments/crm-1/cancel", data={"reason": "forged"})
    assert refused.status_code == 403 and "security token" in refused.text
    stale = signed_in.post("/console/appointments/crm-1/cancel", data={"reason": "forged", "csrf": "0" * 64})
    assert stale.status_code == 403
    assert Appointment.get(Appointment.external_id == "crm-1").desired_version == before


def test_a_read_only_token_sees_no_action_and_its_forged_posts_are_refused(client, owner, db, clock,
                                                                           make_account):
    put_appointment(client, owner)
    _, reader = accounts.create_token(db, owner[0].id, "viewer", frozenset({accounts.READ}), now=clock.now())
    sign_in(client, reader)
    table = client.get("/console/appointments").text
    assert "New appointment" not in table and "Settings" not in table and "Operations" not in table
    detail = client.get("/console/appointments/crm-1").text
    for action in ("Reschedule", "Cancel appointment", "Mark attended", ">Edit<"):
        assert action not in detail
    token = csrf_of(detail)
    refused = client.post("/console/appointments/crm-1/cancel", data={"reason": "x", "csrf": token})
    assert refused.status_code == 403 and "appointments:write" in refused.text
    assert client.get("/console/settings").status_code == 403
    assert client.post("/console/operations/reconcile", data={"csrf": token}).status_code == 403
    assert Appointment.get(Appointment.external_id == "crm-1").desired_status == "active"


def test_hostile_text_is_shown_as_text_and_a_non_http_link_is_not_a_link(signed_in, owner):
    put_appointment(signed_in, owner, title=HOSTILE, attendee_name=HOSTILE, label="<b>hot</b>",
                    description=HOSTILE)
    Appointment.update(meeting_url="javascript:alert(1)").where(Appointment.external_id == "crm-1").execute()
    for page in (signed_in.get("/console/appointments?tab=all").text,
                 signed_in.get("/console/appointments/crm-1").text,
                 signed_in.get("/console/appointments/crm-1?tab=history").text):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert 'href="javascript:' not in page
    assert "&lt;script&gt;" in signed_in.get("/console/appointments/crm-1").text


def test_the_console_creates_through_the_core_with_source_console_audited_by_token(signed_in, owner,
                                                                                   fill_event_types, run_jobs):
    fill_event_types(owner[0])
    page = signed_in.get("/console/appointments/new?date=2026-03-17&event_type_id=123456").text
    slot = re.search(r'name="start_time" value="([^"]+)"', page).group(1)
    made = signed_in.post("/console/appointments/new", data={
        "csrf": csrf_of(page), "title": "Demo", "attendee_name": "Kim", "attendee_email": "kim@example.org",
        "event_type_id": "123456", "date": "2026-03-17", "start_time": slot, "label": "warm"},
        follow_redirects=False)
    assert made.status_code == 303 and "saved=1" in made.headers["location"]
    row = Appointment.get(Appointment.attendee_email == "kim@example.org")
    assert (row.source, row.label, row.start_time) == ("console", "warm", datetime.fromisoformat(slot))
    run_jobs()
    assert Appointment.get_by_id(row.id).status == "active"
    actors = {event.actor for event in AuditEvent.select().where(AuditEvent.appointment == row.id)}
    assert any(actor.startswith("console:") for actor in actors)


def test_bad_input_is_named_beside_its_field_never_a_500(signed_in, owner):
    page = signed_in.get("/console/appointments/new").text
    answer = signed_in.post("/console/appointments/new", data={
        "csrf": csrf_of(page), "title": "", "attendee_name": "Kim", "attendee_email": "not-an-email",
        "event_type_id": "abc", "start_time": "soon"})
    assert answer.status_code == 422
    assert 'id="e-attendee_email"' in answer.text and 'id="e-title"' in answer.text
    assert Appointment.select().count() == 0
    put_appointment(signed_in, owner)
    detail = signed_in.get("/console/appointments/crm-1").text
    long_reason = signed_in.post("/console/appointments/crm-1/cancel",
                                 data={"csrf": csrf_of(detail), "reason": "x" * 501})
    assert long_reason.status_code == 422 and "x" * 501 in long_reason.text  # kept as typed
    bad_time = signed_in.post("/console/appointments/crm-1/reschedule",
                              data={"csrf": csrf_of(detail), "start_local": "tomorrow"})
    assert bad_time.status_code == 422 and 'id="e-start_local"' in bad_time.text
    for path in ("/console/appointments?page=%D9%A3&per_page=7&sort=nope", "/console/appointments/%00",
                 "/console/appointments?view=calendar&month=9999-99", "/console/slots?date=x&event_type_id=1"):
        assert signed_in.get(path).status_code < 500


def test_reschedule_takes_the_viewers_offset_and_cancel_keeps_the_reason(signed_in, owner, run_jobs):
    put_appointment(signed_in, owner)
    run_jobs()
    detail = signed_in.get("/console/appointments/crm-1").text
    moved = signed_in.post("/console/appointments/crm-1/reschedule", data={
        "csrf": csrf_of(detail), "start_local": "2026-03-18T14:00", "offset": "-60", "message": "traffic"},
        follow_redirects=False)
    assert moved.status_code == 303
    row = Appointment.get(Appointment.external_id == "crm-1")
    assert row.start_time.isoformat().startswith("2026-03-18T13:00")  # 14:00 at UTC+1
    run_jobs()
    detail = signed_in.get("/console/appointments/crm-1").text
    signed_in.post("/console/appointments/crm-1/cancel", data={"csrf": csrf_of(detail), "reason": "moved away"})
    run_jobs()
    row = Appointment.get(Appointment.external_id == "crm-1")
    assert (row.status, row.cancellation_reason) == ("cancelled", "moved away")
    history = signed_in.get("/console/appointments/crm-1?tab=history").text
    assert "appointment.reschedule_message" in history and "traffic" in history


def test_settings_never_show_a_secret_and_refresh_reports_changes(signed_in, owner):
    page = signed_in.get("/console/settings").text
    saved = signed_in.post("/console/settings", data={
        "csrf": csrf_of(page), "time_zone": "Europe/Paris", "callback_url": "https://crm.example.test/h",
        "callback_secret": "whsec_" + "A" * 32}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    page = signed_in.get("/console/settings").text
    assert "whsec_" not in page and "Europe/Paris" in page
    refreshed = signed_in.post("/console/settings/refresh-event-types", data={"csrf": csrf_of(page)})
    assert refreshed.status_code == 200 and "Refreshed: added" in refreshed.text
    bad = signed_in.post("/console/settings", data={"csrf": csrf_of(page), "time_zone": "Mars/Base"})
    assert bad.status_code == 422 and "time zone" in bad.text


def test_operations_show_the_queue_and_replay_a_dead_job(signed_in, owner, db, clock):
    job_id = queue.enqueue(db, queue.CONVERGE, now=clock.now(), account_id=owner[0].id,
                           payload={"appointment_id": "apt_missing"})
    Job.update(status="dead", last_error="boom").where(Job.id == job_id).execute()
    page = signed_in.get("/console/operations?state=dead").text
    assert "boom" in page and "Replay" in page
    replayed = signed_in.post(f"/console/operations/jobs/{job_id}/retry", data={"csrf": csrf_of(page)},
                              follow_redirects=False)
    assert replayed.status_code == 303 and Job.get_by_id(job_id).status == "queued"
    again = signed_in.post(f"/console/operations/jobs/{job_id}/retry", data={"csrf": csrf_of(page)})
    assert again.status_code == 409


def test_the_calendar_lists_a_day_and_hides_cancelled(signed_in, owner, run_jobs):
    put_appointment(signed_in, owner, "crm-a", title="Visible")
    put_appointment(signed_in, owner, "crm-b", title="Gone", start_time="2026-03-17T15:00:00+01:00")
    run_jobs()
    signed_in.post("/v1/appointments/crm-b/cancel", json={}, headers={"Authorization": f"Bearer {owner[1]}"})
    run_jobs()
    page = signed_in.get("/console/appointments?view=calendar&month=2026-03&day=2026-03-17").text
    assert "Visible" in page and "Gone" not in page and "March 2026" in page
    # The view is kept for the session.
    assert "Calendar" in signed_in.get("/console/appointments").text
    assert 'class="calendar"' in signed_in.get("/console/appointments").text


IMPORT_CSV = (b"external_id,title,attendee_name,attendee_email,start_time\n"
              b"imp-1,Survey,Ana,ana@example.org,2026-03-20T09:00:00Z\n"
              b"imp-2,Intro,Bo,bo@example.org,2026-03-20T09:15:00Z\n"
              b"imp-3,Bad,Cy,not-an-email,2026-03-21T09:00:00Z\n")


def upload(client, csrf: str, body: bytes = IMPORT_CSV, name: str = "file.csv", **extra):
    return client.post("/console/import", data={"csrf": csrf, **extra},
                       files={"file": (name, body, "text/csv")}, follow_redirects=False)


def test_an_import_is_reviewed_before_anything_is_written_then_confirmed(signed_in, owner, fill_event_types):
    fill_event_types(owner[0])
    page = signed_in.get("/console/import").text
    answer = upload(signed_in, csrf_of(page))
    assert answer.status_code == 303
    review = signed_in.get(answer.headers["location"]).text
    assert "nothing is written yet" in review and "conflict 1" in review and "invalid 1" in review
    assert Appointment.select().count() == 0
    run_path = answer.headers["location"]
    rechecked = signed_in.post(run_path + "/recheck", data={"csrf": csrf_of(review), "override_conflicts": "on"},
                               follow_redirects=True)
    assert "created 2" in rechecked.text and "conflict 0" in rechecked.text
    done = signed_in.post(run_path + "/confirm", data={"csrf": csrf_of(rechecked.text)}, follow_redirects=True)
    assert "Imported" in done.text and "created 2" in done.text
    assert {row.source for row in Appointment.select()} == {"import"}
    again = signed_in.post(run_path + "/confirm", data={"csrf": csrf_of(done.text)})
    assert again.status_code == 409  # a confirmed import cannot run twice


def test_a_bad_file_is_named_and_writes_nothing(signed_in):
    page = signed_in.get("/console/import").text
    wrong = upload(signed_in, csrf_of(page), body=b"\xff\xfe", name="x.csv")
    assert wrong.status_code == 422 and "UTF-8" in wrong.text
    other = upload(signed_in, csrf_of(page), body=b"hello", name="x.txt")
    assert other.status_code == 422
    assert Appointment.select().count() == 0


def test_the_drawer_sets_reminders_and_names_a_bad_one(signed_in, owner, fill_event_types):
    fill_event_types(owner[0])
    page = signed_in.get("/console/appointments/new?date=2026-03-17&event_type_id=123456").text
    slot = re.search(r'name="start_time" value="([^"]+)"', page).group(1)
    form = {"csrf": csrf_of(page), "title": "Demo", "attendee_name": "Kim", "attendee_email": "kim@example.org",
            "event_type_id": "123456", "date": "2026-03-17", "start_time": slot}
    bad = signed_in.post("/console/appointments/new", data={**form, "reminder_channel_0": "sms",
                                                             "reminder_minutes_0": "soon"})
    assert bad.status_code == 422 and "reminders.0.minutes_before" in bad.text
    made = signed_in.post("/console/appointments/new", data={**form, "reminder_channel_0": "sms",
                                                              "reminder_minutes_0": "30"}, follow_redirects=False)
    assert made.status_code == 303
    row = Appointment.get(Appointment.attendee_email == "kim@example.org")
    assert row.reminders == [{"channel": "sms", "minutes_before": 30}]
    edit = signed_in.get(f"/console/appointments/{row.external_id}/edit").text
    assert 'value="30"' in edit and '<option value="sms" selected>' in edit


def test_settings_set_the_default_reminders(signed_in, owner):
    page = signed_in.get("/console/settings").text
    saved = signed_in.post("/console/settings", data={
        "csrf": csrf_of(page), "time_zone": "Europe/Berlin", "default_reminder_channel_0": "email",
        "default_reminder_minutes_0": "1440"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert Account.get_by_id(owner[0].id).default_reminders == [{"channel": "email", "minutes_before": 1440}]
    page = signed_in.get("/console/settings").text
    assert '<option value="email" selected>' in page and 'value="1440"' in page
