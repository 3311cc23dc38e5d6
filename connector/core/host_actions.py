"""The host's actions asked for from the CRM: confirm, decline, reassign (DESIGN §6).

Each is desired state like any other change: recorded with a new version, audited,
and carried to Cal.com by converge (connector/core/gaps.py says when each is owed), so it
survives restarts and outages and answers ``Prefer: wait`` like the rest. A request
that cannot apply to the appointment as it is answers 409 and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from peewee import Database

from connector import errors
from connector.core.accounts import Principal
from connector.core.appointments import commit_change, get
from connector.inputs import DeclineInput, ReassignInput
from mappings.db import write_transaction
from mappings.models import Appointment, EventType

AWAITING_HOST = "awaiting_confirmation"
BOOKED = ("active", "rescheduled")
# Event types whose bookings Cal.com can hand to another host (REFERENCE §5.9 schedulingType).
REASSIGNABLE = ("roundRobin", "managed")


def confirm(db: Database, principal: Principal, external_id: str, *, now: datetime) -> Appointment:
    return _decide(db, principal, external_id, "confirm", None, now)


def decline(db: Database, principal: Principal, external_id: str, data: DeclineInput, *,
            now: datetime) -> Appointment:
    return _decide(db, principal, external_id, "decline", data.reason, now)


def _decide(db: Database, principal: Principal, external_id: str, decision: str, reason: str | None,
            now: datetime) -> Appointment:
    with write_transaction(db):
        appointment = get(principal.account_id, external_id)
        if appointment.desired_decision == decision:
            return appointment  # asked already: the same answer again changes nothing
        if appointment.desired_decision is not None:
            raise errors.Conflict(f"The host's answer was given already: {appointment.desired_decision}.")
        if appointment.desired_status == "cancelled":
            raise errors.Conflict("The appointment is cancelled.")
        if appointment.status != AWAITING_HOST:
            raise errors.Conflict(f"Only an appointment awaiting the host's confirmation can be "
                                  f"{decision}d; this one is {appointment.status}.")
        return commit_change(db, appointment, {"desired_decision": decision,
                                               "desired_decision_reason": reason},
                             principal, now, action=f"appointment.{decision}_requested")


def reassign(db: Database, principal: Principal, external_id: str, data: ReassignInput, *,
             now: datetime) -> Appointment:
    with write_transaction(db):
        appointment = get(principal.account_id, external_id)
        if appointment.desired_status == "cancelled":
            raise errors.Conflict("The appointment is cancelled.")
        if appointment.status not in BOOKED or not appointment.booking_uid:
            raise errors.Conflict(f"Only a booked appointment can be reassigned; this one is "
                                  f"{appointment.status}.")
        if now >= appointment.start_time:
            raise errors.Conflict("The appointment has started; it can no longer be reassigned.")
        cached = EventType.of(appointment.account_id, appointment.event_type_id)
        if cached is not None and cached.scheduling_type not in REASSIGNABLE:
            # Before the cache is filled Cal.com decides, and a refusal is the appointment's last_error.
            raise errors.Conflict(f"Event type {appointment.event_type_id} is not round-robin or managed; "
                                  "only those bookings can go to another host.")
        return commit_change(db, appointment, {"reassigns_asked": appointment.reassigns_asked + 1,
                                               "desired_host_id": data.host},
                             principal, now, action="appointment.reassign_requested")
