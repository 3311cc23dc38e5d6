"""Seated event types end to end: one appointment per seat, each acting on its own seat.

calsync, the sandbox (which seats attendees as Cal.com's handleSeats does) and its
signed webhooks through calsync's receiver, on one clock. Every test judges each
appointment against what the sandbox holds for its seat.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.core import accounts, appointments
from connector.inputs import CancelInput
from mappings.models import Appointment, Booking
from mappings.times import to_api
from tests.support.factories import put, sandbox_user
from tests.support.world import make_world

WORKSHOP = 124000  # the sandbox's seated event type: 3 seats, 60 minutes
PATH = "/seats-test"


@pytest.fixture
def world(db, clock, make_account, sealer):
    return make_world(db, clock, make_account, sealer)


@pytest.fixture
def start(clock):
    return clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=3)


def book_seat(db, clock, world, external_id: str, email: str, start):
    return put(db, world.account, external_id, now=clock.now(), start_time=to_api(start),
               attendee_email=email, event_type_id=WORKSHOP).appointment


def row(external_id: str) -> Appointment:
    return Appointment.get(Appointment.external_id == external_id)


def seat_held(world, appointment: Appointment) -> dict | None:
    """The sandbox's seat for the appointment: its attendee entry in its current booking."""
    booking = world.sandbox.calendar.bookings.get(appointment.booking_uid)
    if booking is None:
        return None
    return next((a for a in booking.attendees if a["email"] == appointment.attendee_email), None)


def principal(world) -> accounts.Principal:
    return accounts.Principal(world.account.id, "tok", "crm", frozenset(accounts.SCOPES))


def test_two_crm_appointments_in_one_slot_take_two_seats_of_one_booking(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    book_seat(db, clock, world, "crm-bob", "bob@example.org", start)
    world.run_all(clock)
    ann, bob = row("crm-ann"), row("crm-bob")
    assert ann.booking_uid == bob.booking_uid and ann.seat_uid != bob.seat_uid
    assert (ann.status, ann.sync_state, bob.status, bob.sync_state) == ("active", "synced", "active", "synced")
    assert seat_held(world, ann)["seatUid"] == ann.seat_uid and seat_held(world, bob)["seatUid"] == bob.seat_uid
    assert Appointment.select().count() == 2  # the webhooks of both seats were echoes
    rows = {b.seat: b for b in Booking.select()}
    assert set(rows) == {"ann@example.org", "bob@example.org"}


def test_cancelling_one_seat_leaves_the_other_appointment_booked(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    book_seat(db, clock, world, "crm-bob", "bob@example.org", start)
    world.run_all(clock)
    appointments.cancel(db, principal(world), "crm-bob", CancelInput(), now=clock.now())
    world.run_all(clock)
    ann, bob = row("crm-ann"), row("crm-bob")
    assert bob.status == "cancelled" and seat_held(world, bob) is None
    held = world.sandbox.calendar.bookings[ann.booking_uid]
    assert held.status == "accepted" and [a["email"] for a in held.attendees] == ["ann@example.org"]
    assert (ann.status, ann.sync_state) == ("active", "synced")  # its cancel webhook touched bob only


def test_a_crm_reschedule_moves_its_seat_only(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    book_seat(db, clock, world, "crm-bob", "bob@example.org", start)
    world.run_all(clock)
    shared = row("crm-ann").booking_uid
    later = start + timedelta(hours=3)
    appointments.patch(db, principal(world), "crm-bob", f'{{"start_time": "{to_api(later)}"}}'.encode(),
                       now=clock.now())
    world.run_all(clock)
    ann, bob = row("crm-ann"), row("crm-bob")
    assert bob.booking_uid != shared and bob.start_time == later and bob.status == "rescheduled"
    assert seat_held(world, bob) is not None and world.sandbox.calendar.bookings[bob.booking_uid].start == later
    assert (ann.booking_uid, ann.start_time, ann.status) == (shared, start, "active")
    assert [a["email"] for a in world.sandbox.calendar.bookings[shared].attendees] == ["ann@example.org"]
    assert bob.sync_state == ann.sync_state == "synced"


def test_a_walk_in_taking_a_seat_in_calcom_is_an_appointment_of_its_own(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    world.run_all(clock)
    world.sandbox.calendar.create_booking(
        {"start": to_api(start), "eventTypeId": WORKSHOP,
         "attendee": {"name": "Walk In", "email": "walk@example.org", "timeZone": "UTC"}},
        PATH, "http://sandbox.test", host=sandbox_user(world.sandbox, world.account))
    world.run_all(clock)
    walk_in = Appointment.get(Appointment.attendee_email == "walk@example.org")
    assert walk_in.source == "calcom" and walk_in.booking_uid == row("crm-ann").booking_uid
    assert walk_in.external_id.startswith(f"calcom:{walk_in.booking_uid}:")
    assert row("crm-ann").status == "active"


def test_the_attendee_leaving_their_seat_in_calcom_cancels_only_their_appointment(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    book_seat(db, clock, world, "crm-bob", "bob@example.org", start)
    world.run_all(clock)
    bob = row("crm-bob")
    world.sandbox.calendar.cancel(bob.booking_uid, {"seatUid": bob.seat_uid, "cancellationReason": "ill"},
                                  PATH, by_host=False)
    world.run_all(clock)
    ann, bob = row("crm-ann"), row("crm-bob")
    assert (bob.status, bob.cancelled_by, bob.cancellation_reason) == ("cancelled", "attendee", "ill")
    assert (ann.status, ann.sync_state) == ("active", "synced")
    assert world.sandbox.calendar.bookings[ann.booking_uid].status == "accepted"


def test_an_attendee_moving_their_seat_in_calcom_moves_only_their_appointment(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    book_seat(db, clock, world, "crm-bob", "bob@example.org", start)
    world.run_all(clock)
    bob, later = row("crm-bob"), start + timedelta(hours=5)
    world.sandbox.calendar.reschedule(bob.booking_uid, {"start": to_api(later), "seatUid": bob.seat_uid,
                                                        "rescheduledBy": bob.attendee_email},
                                      PATH, "http://sandbox.test", via_link=True)
    world.run_all(clock)
    ann, bob = row("crm-ann"), row("crm-bob")
    assert bob.start_time == later and seat_held(world, bob)["seatUid"] == bob.seat_uid
    assert (ann.start_time, ann.status) == (start, "active")
    assert Appointment.select().count() == 2


def test_the_host_moving_the_whole_group_moves_every_seat(db, clock, world, start):
    book_seat(db, clock, world, "crm-ann", "ann@example.org", start)
    book_seat(db, clock, world, "crm-bob", "bob@example.org", start)
    world.run_all(clock)
    uid, later = row("crm-ann").booking_uid, start + timedelta(days=1)
    world.sandbox.calendar.move_seated(uid, later, PATH)
    world.run_all(clock)
    for external_id in ("crm-ann", "crm-bob"):
        moved = row(external_id)
        assert (moved.booking_uid, moved.start_time, moved.sync_state) == (uid, later, "synced")


def test_the_reconciler_repairs_a_missed_seat_cancel_and_a_missed_seat_move(db, clock, world, start):
    for name in ("ann", "bob", "cy"):
        book_seat(db, clock, world, f"crm-{name}", f"{name}@example.org", start)
    world.run_all(clock)
    bob, cy = row("crm-bob"), row("crm-cy")
    later = start + timedelta(hours=6)
    world.sandbox.hub.drop_rate = 1.0  # neither webhook reaches calsync
    world.sandbox.calendar.cancel(bob.booking_uid, {"seatUid": bob.seat_uid}, PATH, by_host=False)
    world.sandbox.calendar.reschedule(cy.booking_uid, {"start": to_api(later), "seatUid": cy.seat_uid},
                                      PATH, "http://sandbox.test", via_link=True)
    world.sandbox.hub.drop_rate = 0.0
    run = world.reconciler.run(world.account.id, full=True, trigger="api")
    world.run_all(clock)
    ann, bob, cy = row("crm-ann"), row("crm-bob"), row("crm-cy")
    assert bob.status == "cancelled" and cy.start_time == later and seat_held(world, cy) is not None
    assert (ann.status, ann.start_time) == ("active", start)
    assert run.repairs == {"cancelled": 1, "reschedule": 1}
    assert Appointment.select().count() == 3
