"""Order does not matter: any permutation and duplication of one booking family's deliveries
ends in the appointment state of the in-order sequence (issue: Cal.com keeps no order).

Each example posts the deliveries, signed, through the subscriber URL to a fresh account
and runs their apply jobs one delivery at a time; a second fresh account gets the same
deliveries in order. Accounts are apart, so both may hold the same uids. Compared: the
appointment's status, times, current uid, attendance, cancellation, source and name, and
every occurrence (uid, status, start). Not compared: the invite's SEQUENCE, the audit
trail and the version counter, which count what calsync saw, not what holds.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.jobs.worker import Worker
from mappings.models import Appointment, Booking, Job
from webhooks.calcom import APPLY_WEBHOOK
from webhooks.dispatch import DISPATCH_WEBHOOKS

SECRET = "order-test-webhook-secret"
U1, U2, U3 = "famUidOne0000000000001", "famUidTwo0000000000002", "famUidThree00000000003"
DAY = "2026-03-18"
ATTENDEE = {"email": "pat@example.org", "name": "Pat Walk-in", "timeZone": "Europe/Berlin"}


def _booking(uid: str, hour: int, status: str, **extra) -> dict:
    return {"uid": uid, "bookingId": abs(hash(uid)) % 10**6, "eventTypeId": 123456, "title": "Walk-in call",
            "startTime": f"{DAY}T{hour:02d}:00:00Z", "endTime": f"{DAY}T{hour:02d}:30:00Z",
            "status": status, "iCalUID": f"{U1}@Cal.com", "attendees": [ATTENDEE],
            "location": f"https://video.example/{uid}", **extra}


def created(uid: str, hour: int, status: str = "ACCEPTED") -> tuple[str, dict]:
    return ("BOOKING_REQUESTED" if status == "PENDING" else "BOOKING_CREATED"), _booking(uid, hour, status)


def moved(uid: str, hour: int, old: str, old_hour: int, status: str = "ACCEPTED") -> tuple[str, dict]:
    trigger = "BOOKING_REQUESTED" if status == "PENDING" else "BOOKING_RESCHEDULED"
    return trigger, _booking(uid, hour, status, rescheduleUid=old, rescheduleStartTime=f"{DAY}T{old_hour:02d}:00:00Z",
                             rescheduleEndTime=f"{DAY}T{old_hour:02d}:30:00Z")


def cancelled(uid: str, hour: int) -> tuple[str, dict]:
    payload = _booking(uid, hour, "CANCELLED", cancellationReason="cannot come", cancelledBy=ATTENDEE["email"])
    payload["startTime"] = payload["startTime"].replace("Z", "+00:00")
    return "BOOKING_CANCELLED", payload


def rejected(uid: str, hour: int) -> tuple[str, dict]:
    return "BOOKING_REJECTED", _booking(uid, hour, "REJECTED", rejectionReason="fully booked")


def no_show(uid: str) -> tuple[str, dict]:
    return "BOOKING_NO_SHOW_UPDATED", {"message": "marked", "bookingUid": uid, "bookingId": 1,
                                       "attendees": [{"email": ATTENDEE["email"], "noShow": True}]}


FAMILIES = {
    "reschedule chain, then cancelled": [created(U1, 10), moved(U2, 11, U1, 10), moved(U3, 12, U2, 11),
                                         cancelled(U3, 12)],
    "requested, then confirmed": [created(U1, 10, "PENDING"), created(U1, 10)],
    "requested, then rejected": [created(U1, 10, "PENDING"), rejected(U1, 10)],
    "booked, then a no-show": [created(U1, 10), no_show(U1)],
    "rescheduled, then a no-show": [created(U1, 10), moved(U2, 11, U1, 10), no_show(U2)],
    "a reschedule awaiting the host, then confirmed": [created(U1, 10, "PENDING"),
                                                       moved(U2, 11, U1, 10, "PENDING"), created(U2, 11)],
}


@pytest.fixture
def post(client, app, db, clock):
    apply_only = Worker(db, clock, {kind: app.state.runtime.worker.handlers[kind]
                                    for kind in (DISPATCH_WEBHOOKS, APPLY_WEBHOOK)},
                        app.state.runtime.worker.policy)

    def send(account, trigger: str, payload: dict, sequence: int) -> None:
        body = ({"triggerEvent": trigger, **payload} if trigger == "MEETING_ENDED" else
                {"triggerEvent": trigger, "createdAt": f"2026-03-16T08:{sequence:02d}:00.000Z", "payload": payload})
        raw = json.dumps(body, separators=(",", ":")).encode()
        answer = client.post(f"/webhooks/calcom/{account.id}", content=raw, headers={
            "Content-Type": "application/json",
            "X-Cal-Signature-256": hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()})
        assert answer.status_code == 200, answer.text
        while apply_only.run_once():
            pass

    return send


def _state(account) -> tuple:
    rows = list(Appointment.select().where(Appointment.account == account.id))
    assert len(rows) == 1, [r.external_id for r in rows]  # one appointment, never two
    row = rows[0]
    occurrences = sorted((b.uid, b.status, b.start_time) for b in Booking.select().where(
        Booking.appointment == row.id))
    return (row.external_id, row.source, row.status, row.desired_status, row.start_time, row.end_time,
            row.booking_uid, row.meeting_url, row.attendance, row.cancelled_by, row.cancellation_reason,
            row.last_error, row.sync_state, occurrences)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(family=st.sampled_from(sorted(FAMILIES)), data=st.data())
def test_every_order_and_every_repeat_ends_as_the_in_order_sequence(make_account, post, family, data):
    deliveries = FAMILIES[family]
    order = data.draw(st.permutations(range(len(deliveries))), label="order")
    repeats = data.draw(st.lists(st.tuples(st.integers(0, len(deliveries) - 1),
                                           st.integers(0, len(deliveries))), max_size=2), label="repeats")
    sequence = list(order)
    for which, where in repeats:
        sequence.insert(where, which)
    _outcome(make_account, post, deliveries, sequence)


def _outcome(make_account, post, deliveries, sequence) -> None:
    in_order, shuffled = (make_account(name, calcom_webhook_secrets=(SECRET,))[0] for name in ("in", "out"))
    for number, index in enumerate(range(len(deliveries))):
        post(in_order, *deliveries[index], number)
    for number, index in enumerate(sequence):
        post(shuffled, *deliveries[index], number)
    assert _state(shuffled) == _state(in_order), sequence
    assert not Job.select().where((Job.kind == "converge") & (Job.status == "queued")).exists()


PERMUTATIONS = [(family, order) for family in sorted(FAMILIES)
                for order in itertools.permutations(range(len(FAMILIES[family])))]


@pytest.mark.parametrize(("family", "order"), PERMUTATIONS,
                         ids=[f"{family}: {''.join(map(str, order))}" for family, order in PERMUTATIONS])
def test_every_permutation_of_every_family(make_account, post, family, order):
    """Not left to chance: all 42 orders of the six families (duplications: the property above)."""
    _outcome(make_account, post, FAMILIES[family], list(order))
