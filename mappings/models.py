"""The data model of DESIGN §4, as peewee models bound to ``mappings.db.database``.

Desired state (what the CRM asked for) lives on ``Appointment``; observed state
(what Cal.com answered) lives on ``Booking`` rows, one per uid in the reschedule
chain. ``Job`` is the durable queue; its partial unique indexes give "at most one
queued job per dedupe key" (coalescing) and "at most one running job per serial
key" (no two jobs of one appointment at once).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast

from peewee import (
    SQL,
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DoubleField,
    Field,
    ForeignKeyField,
    IntegerField,
    Model,
    Node,
    TextField,
)

from mappings.db import bulk_insert, database
from mappings.fields import JSONField, UTCDateTimeField
from mappings.prepared import Prepared, Shaped


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as ``apt_k3j5…`` (26 base32 characters)."""
    return f"{prefix}_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


_M = TypeVar("_M", bound="BaseModel")


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False

    @classmethod
    def get_by_id(cls: type[_M], pk: Any) -> _M:
        """As peewee's, through ``find_by_id``."""
        row = cls.find_by_id(pk)
        if row is None:
            raise cast(Any, cls).DoesNotExist(f"{cls.__name__} {pk!r} does not exist")
        return row

    @classmethod
    def find_by_id(cls: type[_M], pk: Any) -> _M | None:
        """The row with this primary key, or None; its statement is built once per model and
        engine (mappings/prepared.py): the appointment alone is read by id about nine times
        in a PUT that waits for its booking."""
        primary_key = cls._meta.primary_key
        if not isinstance(primary_key, Field):  # a composite key: peewee's own way
            return cls.get_or_none(primary_key == pk)
        return cast(_M | None, _BY_ID(cls).first(id=pk))

    @classmethod
    def update_by_id(cls, pk: Any, **values: Any) -> int:
        """``UPDATE … SET values WHERE pk = pk``; the rows changed (0 or 1). Built once per model,
        engine and set of columns (mappings/prepared.py); a value that is an expression
        (``Job.attempts + 1``) goes through peewee as usual."""
        primary_key = cls._meta.primary_key
        if not values:
            return 0
        if not isinstance(primary_key, Field) or any(isinstance(value, Node) for value in values.values()):
            return int(cls.update(**values).where(primary_key == pk).execute())
        return _UPDATE_BY_ID((cls, tuple(sorted(values)))).execute(_pk=pk, **values)

    @classmethod
    def create(cls: type[_M], **values: Any) -> _M:
        """As peewee's, with the INSERT written out directly (mappings.db.bulk_insert): building
        it through peewee's query tree took longer than SQLite took to run it."""
        row = cls(**values)
        data = dict(row.__data__)
        primary_key: Any = cls._meta.primary_key
        auto = isinstance(primary_key, (AutoField, BigAutoField))
        if auto and data.get(primary_key.name) is None:
            data.pop(primary_key.name, None)
            (generated,), = bulk_insert(database, cls, [data], returning=(primary_key.name,))
            setattr(row, primary_key.name, generated)
        else:
            bulk_insert(database, cls, [data])
        cast(Any, row)._dirty.clear()
        return row


_BY_ID: Shaped[Any] = Shaped(lambda slot, model: model.select().where(
    model._meta.primary_key == slot("id")).limit(1))


def _update_by_id(slot: Callable[..., Node], shape: tuple[type[BaseModel], tuple[str, ...]]) -> Any:
    model, names = shape
    fields = model._meta.combined  # by field or column name, as peewee's update takes them
    return model.update({fields[name]: slot(name, fields[name]) for name in names}).where(
        model._meta.primary_key == slot("_pk"))


_UPDATE_BY_ID: Shaped[Any] = Shaped(_update_by_id)


class Account(BaseModel):
    """A tenant: one CRM connected to one Cal.com user."""

    id = CharField(primary_key=True, max_length=40)
    name = CharField(max_length=200)
    calcom_api_key = TextField(null=True)  # sealed, see mappings/sealing.py
    calcom_base_url = CharField(max_length=500, null=True)  # None: the configured default
    default_event_type_id = BigIntegerField(null=True)
    time_zone = CharField(max_length=64, default="UTC")
    duration_override_minutes = IntegerField(null=True)
    calcom_webhook_secrets = TextField(null=True)  # sealed JSON list, newest first
    callback_url = TextField(null=True)
    callback_secret = TextField(null=True)  # sealed
    public_url = TextField(null=True)
    # Sealed: the account's own key for the built-in sandbox, so no account reaches another's there.
    sandbox_api_key = TextField(null=True)
    # The reminders of an appointment that names none: [{channel, minutes_before, template}].
    default_reminders = JSONField(null=True)  # None or []: none
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()


class ApiToken(BaseModel):
    """A bearer token of the CRM or an admin; only its SHA-256 is stored."""

    id = CharField(primary_key=True, max_length=40)
    account = ForeignKeyField(Account, backref="tokens", on_delete="CASCADE")
    account_id: str  # the foreign key's column, which peewee adds (typed here for the checker)
    name = CharField(max_length=100)
    token_hash = CharField(max_length=64, unique=True)
    scopes = CharField(max_length=200)  # space-separated
    created_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)


class Appointment(BaseModel):
    """One CRM appointment: the desired state, and what calsync observed of it."""

    id = CharField(primary_key=True, max_length=40)
    account = ForeignKeyField(Account, backref="appointments", on_delete="CASCADE")
    account_id: str
    external_id = CharField(max_length=128)
    source = CharField(max_length=10, default="crm")  # crm | calcom

    # desired state, written by the CRM
    title = CharField(max_length=500)
    attendee_name = CharField(max_length=200)
    attendee_email = CharField(max_length=320)
    attendee_time_zone = CharField(max_length=64)
    attendee_phone = CharField(max_length=32, null=True)
    to_number = CharField(max_length=64, null=True)
    from_number = CharField(max_length=64, null=True)
    call_type = CharField(max_length=64, null=True)
    business_name = CharField(max_length=200, null=True)
    label = CharField(max_length=100, null=True)
    description = TextField(null=True)
    event_type_id = BigIntegerField()
    start_time = UTCDateTimeField()
    # Unknown until Cal.com answers when the event-type cache is empty (DESIGN §10).
    end_time = UTCDateTimeField(null=True)
    duration_minutes = IntegerField(null=True)
    guests = JSONField(default=list)
    metadata = JSONField(default=dict)
    desired_status = CharField(max_length=20, default="active")  # active | cancelled
    desired_cancellation_reason = TextField(null=True)
    notify_attendee = BooleanField(default=True)
    desired_attendance = CharField(max_length=10, default="unknown")  # unknown | attended | no_show
    # The host's answer to a booking awaiting confirmation, asked for from the CRM (confirm | decline).
    desired_decision = CharField(max_length=10, null=True)
    desired_decision_reason = TextField(null=True)
    # Reassignments to another host (round-robin, managed): how many were asked for, to whom the
    # last (None: Cal.com picks), and up to which one Cal.com was asked; one is owed while asked > done.
    reassigns_asked = IntegerField(default=0)
    desired_host_id = BigIntegerField(null=True)
    reassigns_done = IntegerField(default=0)
    desired_version = IntegerField(default=1)

    # observed state and bookkeeping
    status = CharField(max_length=30, default="pending")
    attendance = CharField(max_length=10, default="unknown")
    sync_state = CharField(max_length=10, default="pending")
    synced_version = IntegerField(default=0)
    booking_uid = CharField(max_length=64, null=True)
    # A seated event type's booking holds several attendees, one appointment each (DESIGN §10):
    # Cal.com's seatUid for this appointment's seat, once known.
    seat_uid = CharField(max_length=64, null=True)
    # One appointment per occurrence of a recurring series (DESIGN §10): the series' uid, shared by
    # its occurrences (Cal.com's recurringBookingUid), once known.
    recurring_booking_uid = CharField(max_length=64, null=True)
    # [{channel, minutes_before, template}]; None: the account's default reminders.
    reminders = JSONField(null=True)
    meeting_url = TextField(null=True)
    location = TextField(null=True)
    cancellation_reason = TextField(null=True)
    cancelled_by = CharField(max_length=20, null=True)
    cancelled_by_email = CharField(max_length=320, null=True)
    ics_sequence = IntegerField(default=0)
    briefing_sent_at = UTCDateTimeField(null=True)
    # Set before a create is sent and cleared once its outcome is known: if it is
    # set, a booking may exist in Cal.com already (DESIGN §1 principle 3).
    create_attempted_at = UTCDateTimeField(null=True)
    # The same for a reschedule: the old uid may already point at a new booking.
    reschedule_attempted_at = UTCDateTimeField(null=True)
    last_error = TextField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        indexes = (
            (("account", "external_id"), True),
            (("account", "start_time"), False),
            (("account", "status"), False),
            (("account", "label", "start_time"), False),
            (("account", "recurring_booking_uid"), False),
            (("sync_state",), False),
        )

    @classmethod
    def by_external_id(cls, account_id: str, external_id: str) -> Appointment | None:
        """The account's appointment with the CRM's id, or None."""
        return _BY_EXTERNAL_ID.first(account_id=account_id, external_id=external_id)


_BY_EXTERNAL_ID: Prepared[Appointment] = Prepared(lambda slot: Appointment.select().where(
    (Appointment.account == slot("account_id")) & (Appointment.external_id == slot("external_id"))).limit(1))


class Booking(BaseModel):
    """One Cal.com booking uid that belonged to an appointment; the chain is its history.

    A uid names a booking only within its account: two accounts may mirror the same
    Cal.com user, or Cal.com instances whose uids collide. Every lookup goes through
    mappings/bookings.py, which always names the account.

    A seated booking is shared by its attendees, each an appointment of their own: a row per
    seat, told apart by ``seat``, the attendee's email in lower case (Cal.com refuses the same
    attendee twice in one booking, and every delivery about a seat names its attendee, while
    not every one names the seat's uid). A booking that is not seated has ``seat`` "".
    """

    id = BigAutoField()
    # The unique (account, uid, seat) index serves lookups by account; no second index is needed.
    account = ForeignKeyField(Account, backref="bookings", on_delete="CASCADE", index=False)
    account_id: str
    appointment = ForeignKeyField(Appointment, backref="bookings", on_delete="CASCADE")
    appointment_id: str
    uid = CharField(max_length=64)
    seat = CharField(max_length=320, default="")
    seat_uid = CharField(max_length=64, null=True)  # Cal.com's seatUid, once known
    calcom_id = BigIntegerField(null=True)
    status = CharField(max_length=20)  # Cal.com's lower-case booking status (this seat's, if seated)
    start_time = UTCDateTimeField()
    end_time = UTCDateTimeField()
    meeting_url = TextField(null=True)
    location = TextField(null=True)
    rescheduled_from_uid = CharField(max_length=64, null=True)
    rescheduled_to_uid = CharField(max_length=64, null=True)
    raw = JSONField(null=True)
    calcom_updated_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        indexes = ((("account", "uid", "seat"), True), (("appointment", "start_time"), False))


class EventType(BaseModel):
    """An account's cached Cal.com event type; ``active`` is False once it vanished."""

    id = AutoField()
    account = ForeignKeyField(Account, backref="event_types", on_delete="CASCADE")
    account_id: str
    calcom_id = BigIntegerField()
    team_id = BigIntegerField(null=True)
    slug = CharField(max_length=200)
    title = CharField(max_length=500)
    length_minutes = IntegerField()
    length_options = JSONField(default=list)
    locations = JSONField(default=list)
    scheduling_type = CharField(max_length=20, null=True)
    seats_per_slot = IntegerField(null=True)
    requires_confirmation = BooleanField(default=False)
    hidden = BooleanField(default=False)
    active = BooleanField(default=True)
    refreshed_at = UTCDateTimeField()

    class Meta:
        indexes = ((("account", "calcom_id"), True),)

    @classmethod
    def of(cls, account_id: str, calcom_id: int | None) -> EventType | None:
        """The account's cached event type with Cal.com's id, if cached (active or not)."""
        if calcom_id is None:
            return None
        return _EVENT_TYPE_OF.first(account_id=account_id, calcom_id=calcom_id)


_EVENT_TYPE_OF: Prepared[EventType] = Prepared(lambda slot: EventType.select().where(
    (EventType.account == slot("account_id")) & (EventType.calcom_id == slot("calcom_id"))).limit(1))


class Job(BaseModel):
    """The durable queue; connector/jobs/queue.py is the only writer of its state."""

    id = BigAutoField()
    kind = CharField(max_length=40)
    account_id = CharField(max_length=40, null=True)
    serial_key = CharField(max_length=100, null=True)  # jobs with one key never run at once
    dedupe_key = CharField(max_length=150, null=True)  # at most one queued job per key
    payload = JSONField(default=dict)
    status = CharField(max_length=10, default="queued")  # queued | running | done | dead
    attempts = IntegerField(default=0)
    run_at = UTCDateTimeField()
    lease_owner = CharField(max_length=100, null=True)
    lease_expires_at = UTCDateTimeField(null=True)
    last_error = TextField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = (
            (("status", "run_at"), False),
            (("serial_key", "status"), False),
            (("account_id", "status"), False),
        )


Job.add_index(
    Job.index(Job.dedupe_key, unique=True, name="job_one_queued_per_dedupe_key").where(
        SQL("status = 'queued'")
    )
)
Job.add_index(
    Job.index(Job.serial_key, unique=True, name="job_one_running_per_serial_key").where(
        SQL("status = 'running'")
    )
)


class WebhookDelivery(BaseModel):
    """Every inbound Cal.com delivery, kept with its raw body; an accepted one is also its own
    queue entry until dispatched (webhooks/dispatch.py): ``received`` with no ``queued_at``.
    A repeated body is found by the dispatcher (WebhookDigest), not by an index paid at the door."""

    id = BigAutoField()
    # No index of its own: (account, id) below serves the foreign key, the listings and cascades.
    account = ForeignKeyField(Account, backref="webhook_deliveries", on_delete="CASCADE", index=False)
    account_id: str
    dedupe_key = CharField(max_length=64)  # SHA-256 of the raw body
    trigger = CharField(max_length=60)
    booking_uid = CharField(max_length=64, null=True)
    raw_body = TextField()
    received_at = UTCDateTimeField()
    processed_at = UTCDateTimeField(null=True)
    outcome = CharField(max_length=20, default="received")
    error = TextField(null=True)
    queued_at = UTCDateTimeField(null=True)  # when its apply job was queued; None: not dispatched yet

    class Meta:
        # Every index is paid by each delivery stored before its answer: (account, id) for the
        # listings and cascades, and two small partial ones (a row leaves them once dispatched
        # or no longer waiting) for the worker's lookups. Dedupe is WebhookDigest's.
        indexes = ((("account", "id"), False),)


WebhookDelivery.add_index(
    WebhookDelivery.index(WebhookDelivery.account, WebhookDelivery.id,
                          name="webhook_delivery_to_dispatch").where(
        SQL("outcome = 'received' AND queued_at IS NULL")))
WebhookDelivery.add_index(
    WebhookDelivery.index(WebhookDelivery.account, name="webhook_delivery_waiting").where(
        SQL("outcome = 'waiting'")))


class WebhookDigest(BaseModel):
    """The first delivery of each body (SHA-256 of its raw bytes) per account. Written by the
    dispatcher, a batch at a time, off the request path: a body found here is a duplicate."""

    account = ForeignKeyField(Account, on_delete="CASCADE", index=False)
    account_id: str
    dedupe_key = CharField(max_length=64)
    delivery = ForeignKeyField(WebhookDelivery, on_delete="CASCADE", index=False)
    delivery_id: int

    class Meta:
        primary_key = CompositeKey("account", "dedupe_key")


class ImportRun(BaseModel):
    """A file of appointments imported in the background (too large for one request), or held
    for review after a dry run (the console's import): its rows, its progress, its report."""

    id = CharField(primary_key=True, max_length=40)
    account = ForeignKeyField(Account, backref="imports", on_delete="CASCADE")
    account_id: str
    token_id = CharField(max_length=40)  # whose import it is: rows are written as that token
    status = CharField(max_length=10)  # review | queued | running | done | failed
    media_type = CharField(max_length=40)
    override_conflicts = BooleanField(default=False)
    content = TextField()  # the file as sent (UTF-8 text), until it has been imported
    total = IntegerField(default=0)
    done = IntegerField(default=0)
    report = JSONField(null=True)  # ImportReport.as_dict(), once done (or the dry run's)
    error = TextField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("account", "created_at"), False),)


class RateWindow(BaseModel):
    """One Cal.com key's request allowance, shared by every process (connector/calcom/ratelimit.py):
    its limit, the times of its requests still in the window, a pause Cal.com asked for."""

    bucket = CharField(primary_key=True, max_length=64)  # a hash of the key and where it is used
    limit = IntegerField()
    sent = JSONField(default=list)  # epoch seconds
    paused_until = DoubleField(null=True)  # epoch seconds (PostgreSQL real would round to minutes)


class ReminderSent(BaseModel):
    """A reminder announced to the CRM: one row per appointment, reminder and start, so each is
    sent once (connector/jobs/reminders.py); a reschedule's new start is a new one."""

    id = BigAutoField()
    appointment = ForeignKeyField(Appointment, backref="reminders_sent", on_delete="CASCADE")
    appointment_id: str
    key = CharField(max_length=200)  # channel, lead and the start it was for
    sent_at = UTCDateTimeField()

    class Meta:
        indexes = ((("appointment", "key"), True),)


class AuditEvent(BaseModel):
    """Append-only history: who changed what, with before and after values."""

    id = BigAutoField()
    account = ForeignKeyField(Account, backref="audit_events", on_delete="CASCADE")
    account_id: str
    appointment = ForeignKeyField(Appointment, backref="audit_events", null=True, on_delete="CASCADE")
    appointment_id: str | None
    at = UTCDateTimeField()
    actor = CharField(max_length=150)
    action = CharField(max_length=60)
    before = JSONField(null=True)
    after = JSONField(null=True)

    class Meta:
        indexes = ((("appointment", "id"), False),)


class ReconcileRun(BaseModel):
    """One pass of the reconciler over an account, with its figures."""

    id = BigAutoField()
    account = ForeignKeyField(Account, backref="reconcile_runs", on_delete="CASCADE")
    account_id: str
    mode = CharField(max_length=12)  # incremental | full
    trigger = CharField(max_length=20)  # schedule | api | cli
    status = CharField(max_length=10, default="running")  # running | done | failed | abandoned
    started_at = UTCDateTimeField()
    heartbeat_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)
    pages = IntegerField(default=0)
    bookings_seen = IntegerField(default=0)
    repairs = JSONField(default=dict)  # kind → count
    duration_ms = IntegerField(null=True)
    error = TextField(null=True)

    class Meta:
        indexes = ((("account", "id"), False),)


ReconcileRun.add_index(
    ReconcileRun.index(ReconcileRun.account, unique=True, name="reconcile_one_running_per_account")
    .where(SQL("status = 'running'"))
)


class ReconcileCheckpoint(BaseModel):
    """Where the account's incremental pass resumes: Cal.com's ``updatedAt`` last seen."""

    account = ForeignKeyField(Account, primary_key=True, on_delete="CASCADE")
    updated_after = UTCDateTimeField()
    saved_at = UTCDateTimeField()


class PeriodicClaim(BaseModel):
    """A periodic task's next due time; the process that moves it forward runs the task."""

    name = CharField(primary_key=True, max_length=100)
    next_due_at = UTCDateTimeField()
    claimed_by = CharField(max_length=100, null=True)
    claimed_at = UTCDateTimeField(null=True)


ALL_MODELS: list[type[BaseModel]] = [
    Account,
    ApiToken,
    Appointment,
    Booking,
    EventType,
    Job,
    WebhookDelivery,
    WebhookDigest,
    AuditEvent,
    ReconcileRun,
    ReconcileCheckpoint,
    PeriodicClaim,
    ImportRun,
    RateWindow,
    ReminderSent,
]
