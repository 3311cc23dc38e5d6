"""The CRM's side of an appointment: desired state written durably with its converge job.

``put`` never calls Cal.com (DESIGN §10): it validates against the account and
its cached event types, stores the desired state, bumps ``desired_version``,
audits the change and enqueues ``converge`` — all in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import Database, IntegrityError

from connector import errors
from connector.core.accounts import Principal
from connector.inputs import (
    AppointmentInput,
    AttendanceInput,
    CancelInput,
    check_external_id,
    parse,
    parse_object,
)
from connector.jobs import queue
from connector.outputs import audit
from mappings.db import write_transaction
from mappings.models import Account, Appointment, AuditEvent, EventType, new_id
from mappings.times import to_api

# Fields the CRM may not change once the appointment exists (DESIGN §6).
LOCKED_FIELDS = ("to_number", "from_number", "call_type")
# Fields calsync writes; a PATCH that names one is refused.
READ_ONLY_FIELDS = (
    "id", "external_id", "status", "attendance", "sync_state", "booking_uid", "meeting_url",
    "location", "end_time", "cancellation_reason", "cancelled_by", "source", "last_error",
    "occurrences", "manage_links", "created_at", "updated_at", "version",
)
DESIRED_FIELDS = (
    "title", "attendee_name", "attendee_email", "attendee_time_zone", "attendee_phone",
    "to_number", "from_number", "call_type", "business_name", "label", "description",
    "event_type_id", "start_time", "end_time", "duration_minutes", "guests", "metadata",
)


@dataclass(frozen=True)
class PutResult:
    appointment: Appointment
    created: bool
    changed: bool


def get(account_id: str, external_id: str) -> Appointment:
    check_external_id(external_id)
    appointment = Appointment.by_external_id(account_id, external_id)
    if appointment is None:
        raise errors.NotFound(f"No appointment with external_id {external_id!r}.")
    return appointment


EventTypeLookup = Callable[[str, int], "EventType | None"]


def desired_state(account: Account, data: AppointmentInput,
                  event_type_of: EventTypeLookup | None = None) -> dict[str, Any]:
    """The desired columns for ``data``, with account defaults applied and checked.

    ``event_type_of`` (default ``cached_event_type``) lets a bulk caller memoise the lookup."""
    event_type_id = data.event_type_id or account.default_event_type_id
    if event_type_id is None:
        raise errors.ValidationFailed.one(
            "event_type_id", "is required: the account has no default event type")
    event_type = (event_type_of or cached_event_type)(account.id, event_type_id)
    duration = data.duration_minutes or account.duration_override_minutes
    if event_type is not None:
        allowed = sorted({event_type.length_minutes, *event_type.length_options})
        if duration is None:
            duration = event_type.length_minutes
        elif duration not in allowed:
            field = "duration_minutes" if data.duration_minutes else "event_type_id"
            raise errors.ValidationFailed.one(
                field, f"event type {event_type_id} allows {', '.join(map(str, allowed))} minutes, "
                       f"not {duration}; Cal.com books only those lengths")
    return {
        "title": data.title,
        "attendee_name": data.attendee_name,
        "attendee_email": data.attendee_email,
        "attendee_time_zone": data.attendee_time_zone or account.time_zone,
        "attendee_phone": data.attendee_phone,
        "to_number": data.to_number,
        "from_number": data.from_number,
        "call_type": data.call_type,
        "business_name": data.business_name,
        "label": data.label,
        "description": data.description,
        "event_type_id": event_type_id,
        "start_time": data.start_time,
        "duration_minutes": duration,
        "end_time": data.start_time + timedelta(minutes=duration) if duration else None,
        "guests": list(data.guests),
        "metadata": dict(data.metadata),
        "reminders": None if data.reminders is None else [
            reminder.model_dump(exclude_none=True) for reminder in data.reminders],
    }


def cached_event_type(account_id: str, event_type_id: int) -> EventType | None:
    """The cached event type; None while the cache is empty (then Cal.com decides later)."""
    cached = EventType.of(account_id, event_type_id)
    if cached is not None:
        if not cached.active:
            raise errors.ValidationFailed.one(
                "event_type_id", f"event type {event_type_id} no longer exists in Cal.com")
        return cached
    if EventType.select().where(EventType.account == account_id).exists():
        raise errors.ValidationFailed.one(
            "event_type_id", f"event type {event_type_id} is not one of this account's event types")
    return None


def put(db: Database, principal: Principal, external_id: str, data: AppointmentInput, *,
        now: datetime, event_type_of: EventTypeLookup | None = None) -> PutResult:
    """Create or replace the desired state of one appointment."""
    check_external_id(external_id)
    for attempt in range(2):
        try:
            with write_transaction(db):
                account = Account.get_by_id(principal.account_id)
                desired = desired_state(account, data, event_type_of)
                existing = Appointment.by_external_id(account.id, external_id)
                if existing is None:
                    return PutResult(_create(db, account, external_id, desired, principal, now),
                                     created=True, changed=True)
                return _replace(db, existing, desired, principal, now)
        except IntegrityError:
            # Two first PUTs of one external_id raced; the loser replays as an update.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def _create(db: Database, account: Account, external_id: str, desired: dict[str, Any],
            principal: Principal, now: datetime) -> Appointment:
    appointment = Appointment.create(
        id=new_id("apt"), account=account.id, external_id=external_id, source=principal.source,
        desired_status="active", desired_version=1, status="pending", sync_state="pending",
        created_at=now, updated_at=now, **desired,
    )
    audit.record(account_id=account.id, appointment_id=appointment.id, actor=principal.actor,
                 action="appointment.created", now=now, after=desired)
    queue.enqueue_converge(db, appointment.id, account.id, now=now)
    return appointment


def planned_changes(appointment: Appointment, desired: dict[str, Any]) -> dict[str, Any]:
    """What a PUT of ``desired`` would change on ``appointment`` (empty: nothing), refused as PUT
    refuses it; writes nothing (an import's dry run asks this too)."""
    if appointment.desired_status == "cancelled":
        raise errors.Conflict("The appointment is cancelled; cancelled appointments are final.")
    changed = {name: value for name, value in desired.items()
               if getattr(appointment, name) != value}
    locked = [name for name in LOCKED_FIELDS if name in changed]
    if locked:
        raise errors.ValidationFailed([
            errors.FieldError(name, "is locked once the appointment exists") for name in locked])
    if not changed:
        return {}
    if appointment.status == "reschedule_requested" and {"start_time", "duration_minutes"} & set(changed):
        # Cal.com cancelled the booking for the attendee to pick a time; a second time from the CRM
        # would race their pick into two bookings.
        raise errors.Conflict("The host asked the attendee to pick a new time in Cal.com; the start "
                              "cannot change until they do (or cancel the appointment).")
    if appointment.booking_uid is not None:
        _check_booked_change(appointment, changed, desired)
    if "start_time" in changed:
        # Attendance belongs to an occurrence: a new start is a new occurrence.
        changed.update({name: "unknown" for name in ("desired_attendance", "attendance")
                        if getattr(appointment, name) != "unknown"})
    return changed


def _replace(db: Database, appointment: Appointment, desired: dict[str, Any],
             principal: Principal, now: datetime) -> PutResult:
    changed = planned_changes(appointment, desired)
    if not changed:
        return PutResult(appointment, created=False, changed=False)
    before = {name: getattr(appointment, name) for name in changed}
    version = appointment.desired_version + 1
    Appointment.update_by_id(appointment.id, desired_version=version, sync_state="pending",
                             updated_at=now, **changed)
    audit.record(account_id=appointment.account_id, appointment_id=appointment.id,
                 actor=principal.actor, action="appointment.updated", now=now,
                 before=before, after=changed)
    queue.enqueue_converge(db, appointment.id, appointment.account_id, now=now)
    return PutResult(Appointment.get_by_id(appointment.id), created=False, changed=True)


def _check_booked_change(appointment: Appointment, changed: dict[str, Any],
                         desired: dict[str, Any]) -> None:
    """What Cal.com cannot do to a booking that exists: refuse it now, not in the worker."""
    if "event_type_id" in changed:
        raise errors.ValidationFailed.one(
            "event_type_id", "cannot change once the appointment is booked in Cal.com; "
                             "cancel it and create a new appointment")
    if "start_time" not in changed and "duration_minutes" not in changed:
        return
    event_type = cached_event_type(appointment.account_id, desired["event_type_id"])
    duration = desired["duration_minutes"]
    if event_type is not None and duration != event_type.length_minutes:
        # A reschedule books the event type's default length (REFERENCE §5.4).
        raise errors.ValidationFailed.one(
            "duration_minutes",
            f"a booked appointment moves with its event type's default length "
            f"({event_type.length_minutes} minutes): Cal.com reschedules keep it; send "
            f"duration_minutes {event_type.length_minutes} with the new start_time")


def _desired_as_input(appointment: Appointment) -> dict[str, Any]:
    """The appointment's desired state in the shape a CRM writes it."""
    values = {name: getattr(appointment, name) for name in AppointmentInput.model_fields}
    values["start_time"] = to_api(appointment.start_time)
    return values


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patch(db: Database, principal: Principal, external_id: str, raw: bytes, *,
          now: datetime) -> PutResult:
    """Apply a JSON merge patch to the desired state; locked and read-only fields are refused."""
    body = parse_object(raw)
    refused = [errors.FieldError(name, "is locked once the appointment exists")
               for name in (*LOCKED_FIELDS, "booking_uid") if name in body]
    refused += [errors.FieldError(name, "is read-only") for name in READ_ONLY_FIELDS
                if name in body and name != "booking_uid"]
    if refused:
        raise errors.ValidationFailed(refused)
    with write_transaction(db):
        appointment = get(principal.account_id, external_id)
        merged = merge_patch(_desired_as_input(appointment), body)
        data = parse(AppointmentInput, json.dumps(merged).encode())
        account = Account.get_by_id(principal.account_id)
        return _replace(db, appointment, desired_state(account, data), principal, now)


def cancel(db: Database, principal: Principal, external_id: str, data: CancelInput, *,
           now: datetime) -> Appointment:
    """Ask for the appointment to be cancelled; final (DESIGN §5)."""
    with write_transaction(db):
        appointment = get(principal.account_id, external_id)
        if appointment.desired_status == "cancelled":
            raise errors.Conflict("The appointment is already cancelled; cancellation is final.")
        changes = {"desired_status": "cancelled", "desired_cancellation_reason": data.reason,
                   "notify_attendee": data.notify_attendee}
        return commit_change(db, appointment, changes, principal, now,
                              action="appointment.cancel_requested")


def set_attendance(db: Database, principal: Principal, external_id: str, data: AttendanceInput, *,
                   now: datetime) -> Appointment:
    """Record whether the attendee came; only once the start has passed (REFERENCE §5.6)."""
    with write_transaction(db):
        appointment = get(principal.account_id, external_id)
        if appointment.desired_status == "cancelled":
            raise errors.Conflict("The appointment is cancelled; attendance cannot be recorded.")
        if now < appointment.start_time:
            raise errors.Conflict(f"Attendance can be recorded only after the start "
                                  f"({to_api(appointment.start_time)}).")
        if appointment.booking_uid is None:
            raise errors.Conflict("The appointment has no Cal.com booking to record attendance on.")
        if appointment.desired_attendance == data.attendance:
            return appointment
        return commit_change(db, appointment, {"desired_attendance": data.attendance}, principal,
                              now, action="appointment.attendance_requested")


def commit_change(db: Database, appointment: Appointment, changes: dict[str, Any],
                   principal: Principal, now: datetime, *, action: str) -> Appointment:
    before = {name: getattr(appointment, name) for name in changes}
    Appointment.update_by_id(appointment.id, desired_version=appointment.desired_version + 1,
                             sync_state="pending", updated_at=now, **changes)
    audit.record(account_id=appointment.account_id, appointment_id=appointment.id,
                 actor=principal.actor, action=action, now=now, before=before, after=changes)
    queue.enqueue_converge(db, appointment.id, appointment.account_id, now=now)
    return Appointment.get_by_id(appointment.id)


def history(account_id: str, external_id: str) -> list[dict[str, Any]]:
    """The appointment's audit events, oldest first."""
    appointment = get(account_id, external_id)
    return [
        {"at": to_api(event.at), "actor": event.actor, "action": event.action,
         "before": event.before, "after": event.after}
        for event in AuditEvent.select().where(AuditEvent.appointment == appointment.id)
        .order_by(AuditEvent.id)
    ]
