"""Booking rows by their identity, which is (account, uid): the one place that looks them up.

A Cal.com uid is unique inside one Cal.com, not across calsync's tenants: two
accounts may connect the same Cal.com user, or two Cal.com instances, and a
tenant can make Cal.com sign any body it likes through its own webhook's payload
template. So no function here takes a uid without its account, and nothing
outside this module filters ``Booking.uid`` (tests/mappings/test_bookings.py
checks the source for it).

Recording a booking is an upsert on the unique (account, uid, seat) index, so two
paths that learn of the same booking at once (a webhook and the worker that
made it) cannot both insert it.

A seated booking has a row per seat (``seat``: the attendee's email in lower case,
models.Booking says why); every other booking has one row, ``seat`` "".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from peewee import fn

from mappings.models import Appointment, Booking
from mappings.prepared import Prepared, Shaped


def seat_key(email: str | None) -> str:
    """A seat's name within its booking: its attendee's email, in lower case."""
    return (email or "").strip().lower()


def find(account_id: str, uid: str | None, seat: str = "") -> Booking | None:
    """The account's row for ``uid`` (one seat of it, if seated), or None."""
    if not uid:
        return None
    return Booking.get_or_none((Booking.account == account_id) & (Booking.uid == uid)
                               & (Booking.seat == seat))


def seats(account_id: str, uid: str | None) -> list[Booking]:
    """Every row the account holds for ``uid``: one, or one per seat of a seated booking."""
    if not uid:
        return []
    return list(Booking.select().where((Booking.account == account_id) & (Booking.uid == uid))
                .order_by(Booking.id))


def of_appointment(appointment_id: str, uid: str | None) -> Booking | None:
    """The appointment's row for ``uid`` (its seat, if seated): an appointment holds one seat of
    a booking at most."""
    if not uid:
        return None
    return _OF_APPOINTMENT.first(appointment_id=appointment_id, uid=uid)


_OF_APPOINTMENT: Prepared[Booking] = Prepared(lambda slot: Booking.select().where(
    (Booking.appointment == slot("appointment_id")) & (Booking.uid == slot("uid"))).limit(1))


def with_appointments(account_id: str, uids: Iterable[str | None]) -> dict[str, Booking]:
    """The account's booking rows for ``uids`` by uid, each with its appointment loaded (one query)."""
    wanted = sorted({uid for uid in uids if uid})
    if not wanted:
        return {}
    rows = (Booking.select(Booking, Appointment).join(Appointment)
            .where((Booking.account == account_id) & Booking.uid.in_(wanted)).order_by(Booking.id))
    found: dict[str, Booking] = {}
    for row in rows:
        found.setdefault(row.uid, row)  # a seated booking: its first seat speaks for the slot
    return found


def by_seat(account_id: str, uids: Iterable[str | None]) -> dict[tuple[str, str], Booking]:
    """(uid, seat) → the account's row, each with its appointment loaded (one query)."""
    wanted = sorted({uid for uid in uids if uid})
    if not wanted:
        return {}
    rows = (Booking.select(Booking, Appointment).join(Appointment)
            .where((Booking.account == account_id) & Booking.uid.in_(wanted)))
    return {(row.uid, row.seat): row for row in rows}


def seats_taken(account_id: str, uids: Iterable[str | None], statuses: Iterable[str]) -> dict[str, int]:
    """uid → how many of its seats the account's rows hold in ``statuses`` (seated bookings only)."""
    wanted = sorted({uid for uid in uids if uid})
    if not wanted:
        return {}
    query = (Booking.select(Booking.uid, fn.COUNT(Booking.id).alias("taken"))
             .where((Booking.account == account_id) & Booking.uid.in_(wanted) & (Booking.seat != "")
                    & Booking.status.in_(list(statuses)))
             .group_by(Booking.uid))
    counts = cast("Iterable[tuple[str, int]]", query.tuples())
    return dict(counts)


def owners(account_id: str, uids: Iterable[str | None]) -> dict[str, str]:
    """uid → the appointment id it belongs to, for the account's bookings among ``uids`` (a
    seated booking's first seat)."""
    wanted = sorted({uid for uid in uids if uid})
    if not wanted:
        return {}
    query = Booking.select(Booking.uid, Booking.appointment).where(
        (Booking.account == account_id) & Booking.uid.in_(wanted)).order_by(Booking.id)
    found: dict[str, str] = {}
    for row in query:
        found.setdefault(row.uid, row.appointment_id)
    return found


def others_of(appointment_id: str, current_uid: str, statuses: Iterable[str]) -> list[Booking]:
    """The appointment's rows other than ``current_uid`` in ``statuses``, that no reschedule
    succeeded (an appointment belongs to one account, so its rows do too)."""
    return _OTHERS_OF(tuple(statuses)).rows(appointment_id=appointment_id, current_uid=current_uid)


_OTHERS_OF: Shaped[Booking] = Shaped(lambda slot, statuses: Booking.select().where(
    (Booking.appointment == slot("appointment_id")) & (Booking.uid != slot("current_uid"))
    & Booking.status.in_(list(statuses)) & Booking.rescheduled_to_uid.is_null()).order_by(Booking.id))


def record(account_id: str, appointment_id: str, uid: str, *, now: datetime, seat: str = "",
           **values: Any) -> None:
    """Insert or update the account's row for ``uid`` and ``seat`` (call inside the caller's
    transaction).

    ``values`` are Booking columns (status, start_time, …); the row belongs to
    ``appointment_id`` afterwards.
    """
    columns = {"appointment": appointment_id, "updated_at": now, **values}
    if seat:
        # Learnt late that the booking is seated: the appointment's row becomes its seat.
        Booking.update(seat=seat).where((Booking.account == account_id) & (Booking.uid == uid)
                                        & (Booking.seat == "")
                                        & (Booking.appointment == appointment_id)).execute()
    (Booking.insert(account=account_id, uid=uid, seat=seat, created_at=now, **columns)
     .on_conflict(conflict_target=[Booking.account, Booking.uid, Booking.seat],
                  preserve=[getattr(Booking, name) for name in columns])
     .execute())


def update(account_id: str, uid: str | None, seat: str | None = "", **values: Any) -> int:
    """Change columns of the account's row for ``uid`` and ``seat`` (``seat=None``: every seat of
    it); answers how many rows changed."""
    if not uid:
        return 0
    condition = (Booking.account == account_id) & (Booking.uid == uid)
    if seat is not None:
        condition &= Booking.seat == seat
    changed: int = Booking.update(**values).where(condition).execute()
    return changed
