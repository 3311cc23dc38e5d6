from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mappings.from_calcom import parse_booking, parse_event_type, parse_me
from tests.fixtures import calcom_shapes
from tests.support.shared import fixture, needs_shared


def test_a_created_booking():
    booking = parse_booking(calcom_shapes.booking())
    assert booking.uid == "bk1uid0000000000000000"
    assert booking.status == "accepted"
    assert booking.start == datetime(2026, 3, 17, 14, 0, tzinfo=UTC)
    assert booking.meeting_url == "https://video.example.test/bk1uid0000000000000000"
    assert booking.metadata == {"calsync_appointment_id": "apt_1"}
    assert booking.attendees[0].email == "alex.prospect@example.org"
    assert booking.cancellation_reason is None  # "" means none (REFERENCE §6)
    assert not booking.was_rescheduled


def test_an_old_uid_of_a_reschedule():
    booking = parse_booking(calcom_shapes.booking(status="cancelled", rescheduledToUid="new0uid"))
    assert booking.was_rescheduled
    assert booking.rescheduled_to_uid == "new0uid"


def test_a_location_that_is_not_a_url_is_no_meeting_url():
    booking = parse_booking(calcom_shapes.booking(location="integrations:daily", meetingUrl=None))
    assert booking.location == "integrations:daily"
    assert booking.meeting_url is None


@pytest.mark.parametrize("missing", ["id", "uid", "status", "start", "end"])
def test_a_booking_without_a_required_field_is_refused(missing):
    payload = calcom_shapes.booking()
    del payload[missing]
    with pytest.raises(ValueError, match=missing):
        parse_booking(payload)


def test_event_types():
    plain = parse_event_type(calcom_shapes.event_type())
    assert (plain.id, plain.length_minutes, plain.requires_confirmation) == (123456, 30, False)
    confirm = parse_event_type(calcom_shapes.event_type(
        confirmationPolicy={"type": "always", "blockUnconfirmedBookingsInBooker": False}))
    assert confirm.requires_confirmation
    seated = parse_event_type(calcom_shapes.event_type(seats={"seatsPerTimeSlot": 4}))
    assert seated.seats_per_slot == 4


def test_me():
    me = parse_me({"id": 4201, "username": "dana-host", "email": "dana@example.com", "timeZone": "Europe/Berlin"})
    assert (me.id, me.time_zone) == (4201, "Europe/Berlin")


@needs_shared
@pytest.mark.parametrize("name", ["api-create-booking-response.json",
                                  "api-reschedule-booking-response.json"])
def test_the_reference_fixtures_parse(name):
    booking = parse_booking(fixture(name)["data"])
    assert booking.uid and booking.start < booking.end


@needs_shared
def test_the_reference_list_links_a_reschedule():
    old, new = (parse_booking(item) for item in fixture("api-list-bookings-response.json")["data"][:2])
    assert old.was_rescheduled and old.rescheduled_to_uid == new.uid
    assert new.rescheduled_from_uid == old.uid
