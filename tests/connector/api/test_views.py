"""The table, the month calendar, invites and the feed: GET /v1/appointments, /v1/calendar, *.ics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import vobject  # an independent iCalendar parser: the output is not checked by the library that wrote it

from connector.core import accounts
from mappings.models import Appointment, Booking, EventType

BODY = {
    "title": "Intro call",
    "attendee_name": "Alex Prospect",
    "attendee_email": "alex.prospect@example.org",
    "start_time": "2026-03-17T11:00:00+01:00",
}


def put(client, auth, external_id: str, **fields):
    answer = client.put(f"/v1/appointments/{external_id}", json={**BODY, **fields}, headers=auth)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


@pytest.fixture
def table(client, tenant):
    _, auth = tenant
    put(client, auth, "a-1", title="Roof survey", business_name="Zephyr Roofing", label="hot",
        start_time="2026-03-20T09:00:00Z")
    put(client, auth, "a-2", title="Intro", attendee_name="Björn Ångström", label="cold",
        start_time="2026-03-18T09:00:00Z")
    put(client, auth, "a-3", title="Follow-up", business_name="ACME roofs", label="hot",
        start_time="2026-03-19T09:00:00Z")
    put(client, auth, "a-4", title="Demo", attendee_name="Dana", start_time="2026-04-01T09:00:00Z")
    return auth


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["external_id"] for item in answer.json()["items"]]


def test_search_matches_title_name_business_and_label_ignoring_case(client, table):
    assert ids(client.get("/v1/appointments?q=ROOF", headers=table)) == ["a-3", "a-1"]
    assert ids(client.get("/v1/appointments?q=björn", headers=table)) == ["a-2"]
    assert ids(client.get("/v1/appointments?q=HOT", headers=table)) == ["a-3", "a-1"]
    assert ids(client.get("/v1/appointments?q=100%25", headers=table)) == []  # % is literal
    assert ids(client.get("/v1/appointments?q=_", headers=table)) == []  # so is _


def test_filters_combine(client, table):
    assert ids(client.get("/v1/appointments?label=hot&from=2026-03-19T10:00:00%2B01:00",
                          headers=table)) == ["a-3", "a-1"]
    assert ids(client.get("/v1/appointments?to=2026-03-19T09:00:00Z", headers=table)) == ["a-2"]
    assert ids(client.get("/v1/appointments?status=pending,cancelled", headers=table)) == [
        "a-2", "a-3", "a-1", "a-4"]
    assert ids(client.get("/v1/appointments?status=active", headers=table)) == []


def test_sort_by_any_column_either_way(client, table):
    assert ids(client.get("/v1/appointments?sort=title", headers=table)) == ["a-4", "a-3", "a-2", "a-1"]
    assert ids(client.get("/v1/appointments?sort=start_time&order=desc", headers=table)) == [
        "a-4", "a-1", "a-3", "a-2"]
    # NULL labels last whichever the order
    assert ids(client.get("/v1/appointments?sort=label&order=asc", headers=table))[-1] == "a-4"
    assert ids(client.get("/v1/appointments?sort=label&order=desc", headers=table))[-1] == "a-4"


def test_pages_carry_total_pages_and_links(client, tenant):
    _, auth = tenant
    start = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)
    for index in range(23):
        put(client, auth, f"p-{index:02d}", start_time=(start + timedelta(hours=index)).isoformat())
    first = client.get("/v1/appointments?per_page=10&label=&q=", headers=auth).json()
    assert (first["total"], first["pages"], first["page"], len(first["items"])) == (23, 3, 1, 10)
    assert first["links"]["prev"] is None
    last = client.get(first["links"]["last"], headers=auth).json()
    assert [i["external_id"] for i in last["items"]] == ["p-20", "p-21", "p-22"]
    assert last["links"]["next"] is None and "per_page=10" in last["links"]["prev"]
    seen = []
    link = first["links"]["self"]
    while link:
        page = client.get(link, headers=auth).json()
        seen += [i["external_id"] for i in page["items"]]
        link = page["links"]["next"]
    assert seen == [f"p-{i:02d}" for i in range(23)]
    beyond = client.get("/v1/appointments?per_page=10&page=9", headers=auth).json()
    assert beyond["items"] == [] and beyond["total"] == 23


@pytest.mark.parametrize("query, field", [
    ("per_page=20", "per_page"), ("per_page=0", "per_page"), ("page=0", "page"), ("page=x", "page"),
    ("sort=password", "sort"), ("order=up", "order"), ("status=booked", "status"),
    ("from=2026-03-17T10:00:00", "from"), ("to=yesterday", "to"), ("q=" + "x" * 201, "q"),
    ("colour=red", "colour"), ("q=%00", "q"),
])
def test_bad_parameters_are_422_naming_the_parameter(client, tenant, query, field):
    answer = client.get(f"/v1/appointments?{query}", headers=tenant[1])
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_a_page_costs_the_same_statements_whatever_its_size(client, tenant, statements, run_jobs):
    _, auth = tenant
    start = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)
    for index in range(30):
        put(client, auth, f"s-{index:02d}", start_time=(start + timedelta(hours=index)).isoformat())
    run_jobs()

    def cost(per_page: int) -> int:
        statements.clear()
        assert len(client.get(f"/v1/appointments?per_page={per_page}", headers=auth).json()["items"]) \
            == min(per_page, 30)
        return len(statements)

    assert cost(10) == cost(25) == cost(50)


def test_answers_carry_strategy_seats_and_manage_links(client, tenant, run_jobs, fill_event_types, db):
    account, auth = tenant
    fill_event_types(account)
    put(client, auth, "one")
    run_jobs()
    shown = client.get("/v1/appointments", headers=auth).json()["items"][0]
    assert shown["strategy"] == "individual" and shown["attendee_count"] is None
    uid = shown["booking_uid"]
    assert shown["manage_links"] == {
        "booking": f"https://cal.com/booking/{uid}?changes=true",
        "reschedule": f"https://cal.com/reschedule/{uid}?rescheduledBy=alex.prospect@example.org",
        "cancel": f"https://cal.com/booking/{uid}?cancel=true&allRemainingBookings=false"
                  "&cancelledBy=alex.prospect@example.org"}
    EventType.update(seats_per_slot=5).where(EventType.calcom_id == 123456).execute()
    first = Booking.get(Booking.uid == uid)
    Booking.update(seat="alex.prospect@example.org", seat_uid="seat-1").where(Booking.id == first.id).execute()
    Appointment.update(seat_uid="seat-1").where(Appointment.external_id == "one").execute()
    second = Appointment.create(**{**Appointment.get(Appointment.external_id == "one").__data__,
                                   "id": "apt_seat2", "external_id": "two", "seat_uid": "seat-2"})
    Booking.create(**{**first.__data__, "id": None, "appointment": second.id, "seat": "sam@example.org",
                      "seat_uid": "seat-2"})
    group = client.get("/v1/appointments/one", headers=auth).json()
    assert (group["strategy"], group["attendee_count"], group["seat_uid"]) == ("group", 2, "seat-1")
    assert group["manage_links"]["reschedule"].startswith("https://cal.com/reschedule/seat-1?")
    assert group["manage_links"]["cancel"].endswith("&seatReferenceUid=seat-1")


def test_an_ended_appointment_has_no_manage_links(client, tenant, run_jobs):
    account, auth = tenant
    put(client, auth, "one")
    run_jobs()
    assert client.get("/v1/appointments/one", headers=auth).json()["manage_links"] is not None
    client.post("/v1/appointments/one/cancel", json={}, headers=auth)
    run_jobs()
    assert client.get("/v1/appointments/one", headers=auth).json()["manage_links"] is None


def test_event_types_without_a_meeting_address_are_flagged(client, tenant, fill_event_types):
    account, auth = tenant
    fill_event_types(account)
    EventType.update(locations=[{"type": "unknown"}]).where(EventType.calcom_id == 123457).execute()
    items = {i["id"]: i for i in client.get("/v1/event-types", headers=auth).json()["items"]}
    assert items[123456]["has_meeting_address"] is True and items[123456]["warnings"] == []
    assert items[123457]["has_meeting_address"] is False
    assert "no location or video link" in items[123457]["warnings"][0]


# --- the month calendar -----------------------------------------------------------------


def test_calendar_groups_by_local_day_and_hides_cancelled(client, make_account, run_jobs):
    _, token = make_account(time_zone="America/Los_Angeles")
    auth = {"Authorization": f"Bearer {token}"}
    put(client, auth, "late", start_time="2026-03-01T06:30:00Z")  # 22:30 on Feb 28 in LA
    put(client, auth, "first", start_time="2026-03-01T08:30:00Z")  # 00:30 on Mar 1
    put(client, auth, "dst", start_time="2026-03-08T10:00:00Z")  # the day clocks spring forward
    put(client, auth, "last", start_time="2026-04-01T06:59:00Z")  # 23:59 on Mar 31 (PDT)
    put(client, auth, "gone", start_time="2026-03-10T17:00:00Z")
    client.post("/v1/appointments/gone/cancel", json={}, headers=auth)
    run_jobs()
    month = client.get("/v1/calendar?month=2026-03", headers=auth).json()
    assert (month["month"], month["time_zone"], month["total"]) == ("2026-03", "America/Los_Angeles", 3)
    assert len(month["days"]) == 31
    assert [i["external_id"] for i in month["days"]["2026-03-01"]] == ["first"]
    assert month["days"]["2026-03-01"][0]["local_start_time"] == "2026-03-01T00:30:00-08:00"
    assert [i["external_id"] for i in month["days"]["2026-03-08"]] == ["dst"]
    assert [i["external_id"] for i in month["days"]["2026-03-31"]] == ["last"]
    assert month["days"]["2026-03-10"] == []
    february = client.get("/v1/calendar?month=2026-02", headers=auth).json()
    assert [i["external_id"] for i in february["days"]["2026-02-28"]] == ["late"]


@pytest.mark.parametrize("query", ["", "month=2026-13", "month=2026-3", "month=0000-01",
                                   "month=9999-12", "month=2026-03&day=1"])
def test_calendar_refuses_a_bad_month(client, tenant, query):
    answer = client.get(f"/v1/calendar?{query}", headers=tenant[1])
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] in ("month", "day")


# --- invites ------------------------------------------------------------------------------


def parse_ics(answer):
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    return vobject.readOne(answer.text)


def test_an_invite_is_a_request_that_follows_reschedules_then_a_cancel(client, tenant, run_jobs):
    _, auth = tenant
    put(client, auth, "crm-9", guests=["kim@example.org"], description="Bring the floor plan")
    assert client.get("/v1/appointments/crm-9/invite.ics", headers=auth).status_code == 409  # not booked
    run_jobs()
    first = parse_ics(client.get("/v1/appointments/crm-9/invite.ics", headers=auth))
    shown = client.get("/v1/appointments/crm-9", headers=auth).json()
    event = first.vevent
    assert first.method.value == "REQUEST" and event.status.value == "CONFIRMED"
    assert event.uid.value == f"{shown['id']}@calsync"
    assert int(event.sequence.value) == 0
    assert event.dtstart.value == datetime(2026, 3, 17, 10, 0, tzinfo=UTC)
    assert event.dtend.value == datetime(2026, 3, 17, 10, 30, tzinfo=UTC)
    assert event.dtstamp.value.tzinfo is not None
    assert event.organizer.value == "mailto:dana.host@example.com"
    attendees = {a.value: a.params for a in event.attendee_list}
    assert attendees["mailto:alex.prospect@example.org"]["RSVP"] == ["TRUE"]
    assert attendees["mailto:alex.prospect@example.org"]["CN"] == ["Alex Prospect"]
    assert attendees["mailto:kim@example.org"]["ROLE"] == ["OPT-PARTICIPANT"]
    assert event.url.value == shown["meeting_url"] and event.location.value == shown["meeting_url"]
    assert "Bring the floor plan" in event.description.value
    assert shown["manage_links"]["reschedule"] in event.description.value

    client.patch("/v1/appointments/crm-9", json={"start_time": "2026-03-18T14:00:00+01:00"}, headers=auth)
    run_jobs()
    moved = parse_ics(client.get("/v1/appointments/crm-9/invite.ics", headers=auth)).vevent
    assert moved.uid.value == event.uid.value  # calsync's uid survives Cal.com's new booking uid
    assert int(moved.sequence.value) > int(event.sequence.value)
    assert moved.dtstart.value == datetime(2026, 3, 18, 13, 0, tzinfo=UTC)

    client.post("/v1/appointments/crm-9/cancel", json={"reason": "Client asked"}, headers=auth)
    run_jobs()
    cancel = parse_ics(client.get("/v1/appointments/crm-9/invite.ics", headers=auth))
    assert cancel.method.value == "CANCEL" and cancel.vevent.status.value == "CANCELLED"
    assert cancel.vevent.uid.value == event.uid.value
    assert int(cancel.vevent.sequence.value) > int(moved.sequence.value)
    again = client.get("/v1/appointments/crm-9/invite.ics", headers=auth)
    assert again.content == client.get("/v1/appointments/crm-9/invite.ics", headers=auth).content


def test_an_invite_needs_read_scope_and_a_known_appointment(client, tenant, token_with):
    account, auth = tenant
    assert client.get("/v1/appointments/nope/invite.ics", headers=auth).status_code == 404
    assert client.get("/v1/appointments/nope/invite.ics").status_code == 401
    feed_only = token_with(account, accounts.FEED)
    assert client.get("/v1/appointments/nope/invite.ics", headers=feed_only).status_code == 403


def test_the_feed_opens_only_with_a_feed_token(client, tenant, db, clock, run_jobs):
    account, auth = tenant
    put(client, auth, "f-1")
    put(client, auth, "f-2", start_time="2026-03-18T11:00:00+01:00")
    client.post("/v1/appointments/f-2/cancel", json={}, headers=auth)
    run_jobs()
    _, feed_token = accounts.create_token(db, account.id, "calendar", frozenset({accounts.FEED}),
                                          now=clock.now())
    feed = parse_ics(client.get(f"/v1/calendar.ics?token={feed_token}"))
    assert feed.method.value == "PUBLISH"
    events = feed.contents["vevent"]
    assert [e.summary.value for e in events] == ["Intro call"]
    assert not hasattr(events[0], "attendee")  # a shared feed does not list attendees' addresses
    owner_token = auth["Authorization"].split()[1]
    assert client.get(f"/v1/calendar.ics?token={owner_token}").status_code == 403
    assert client.get("/v1/calendar.ics").status_code == 401
    assert client.get("/v1/calendar.ics?token=csk_wrong").status_code == 401


def test_percent_and_underscore_match_themselves_on_every_engine(client, tenant):
    _, auth = tenant
    put(client, auth, "deal", title="50%_off deal")
    put(client, auth, "other", title="50 xoff deal", start_time="2026-03-18T11:00:00+01:00")
    assert ids(client.get("/v1/appointments?q=50%25_off", headers=auth)) == ["deal"]
    assert ids(client.get("/v1/appointments?q=0%25", headers=auth)) == ["deal"]


def test_every_change_an_invite_shows_moves_its_sequence_forward_even_within_one_second(
        client, tenant, run_jobs, sandbox):
    """RFC 5546 clients drop an update whose SEQUENCE and DTSTAMP are not later than the copy they
    hold. The clock stands still here: only SEQUENCE can carry the news."""
    _, auth = tenant
    put(client, auth, "crm-5", guests=["kim@example.org"])
    run_jobs()

    def invite() -> tuple[int, list[str]]:
        event = parse_ics(client.get("/v1/appointments/crm-5/invite.ics", headers=auth)).vevent
        content = sorted(line for line in event.serialize().splitlines()
                         if not line.startswith(("SEQUENCE", "DTSTAMP", "LAST-MODIFIED")))
        return int(event.sequence.value), content

    changes = [
        ("PATCH", {"title": "Renamed"}), ("PATCH", {"description": "Bring the plan"}),
        ("PATCH", {"guests": ["kim@example.org", "lee@example.org"]}), ("PATCH", {"attendee_name": "Alexa"}),
        ("PATCH", {"label": "not in an invite"}), ("PATCH", {"start_time": "2026-03-17T12:00:00Z"}),
        ("ACT", "reschedule"), ("POST", {"reason": "Client asked"}),
    ]
    previous = invite()
    for kind, change in changes:
        if kind == "PATCH":
            assert client.patch("/v1/appointments/crm-5", json=change, headers=auth).status_code == 200
        elif kind == "POST":
            assert client.post("/v1/appointments/crm-5/cancel", json=change, headers=auth).status_code == 200
        else:  # the attendee moves it in Cal.com; calsync hears of it from the reconciler
            uid = client.get("/v1/appointments/crm-5", headers=auth).json()["booking_uid"]
            sandbox.calendar.reschedule(uid, {"start": "2026-03-17T13:00:00Z"}, "/", "http://sandbox.test")
            assert client.post("/v1/reconcile", headers=auth).status_code == 200
        run_jobs()
        current = invite()
        if current[1] != previous[1]:
            assert current[0] > previous[0], (change, previous[0], current[0])
        previous = current
