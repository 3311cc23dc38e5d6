"""Schema versions, upgraded in place by ``calsync migrate`` (and by ``serve`` at start).

A new database gets the current schema from the models in one step and is stamped
with the latest version. An existing one runs each step above its version, in
order, each in its own transaction. Concurrent starts are serialised: an advisory
lock on PostgreSQL, the write lock on SQLite.

To change the schema: change the model, then append a ``Step`` whose ``apply``
brings a database of the previous version to the new shape (``playhouse.migrate``),
and keep tests/mappings/test_migrations.py green.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    Database,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_changes

from mappings.db import is_postgres, write_transaction
from mappings.fields import JSONField, UTCDateTimeField
from mappings.models import (
    ALL_MODELS,
    Account,
    ImportRun,
    PeriodicClaim,
    RateWindow,
    ReconcileCheckpoint,
    ReconcileRun,
    ReminderSent,
    WebhookDelivery,
    WebhookDigest,
)

log = logging.getLogger("calsync.migrations")

_ADVISORY_LOCK_ID = 0x63616C73  # "cals"


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    apply: Callable[[Database], None]


def _baseline(db: Database) -> None:
    _create_current(db)


def _lifecycle_intent(db: Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    apply_changes(
        migrator.add_column("appointment", "desired_cancellation_reason", TextField(null=True)),
        migrator.add_column("appointment", "notify_attendee", BooleanField(default=True)),
        migrator.add_column("appointment", "desired_attendance",
                            CharField(max_length=10, default="unknown")),
        migrator.add_column("appointment", "reschedule_attempted_at", UTCDateTimeField(null=True)),
    )


def _reconciler_and_scheduler(db: Database) -> None:
    new = [ReconcileRun, ReconcileCheckpoint, PeriodicClaim]
    with db.bind_ctx(new):
        db.create_tables(new)  # IF NOT EXISTS: a database made at v1 by the current models has them


def _label_index(db: Database) -> None:
    """The table view filters by label (GET /v1/appointments?label=…)."""
    db.execute_sql('CREATE INDEX IF NOT EXISTS "appointment_account_id_label_start_time" '
                   'ON "appointment" ("account_id", "label", "start_time")')


def _booking_per_account(db: Database) -> None:
    """A uid names a booking only within its account (mappings/bookings.py says why)."""
    migrator = SchemaMigrator.from_database(db)
    account = ForeignKeyField(Account, field=Account.id, null=True, index=False, on_delete="CASCADE")
    apply_changes(migrator.add_column("booking", "account_id", account))
    db.execute_sql('UPDATE "booking" SET "account_id" = (SELECT "appointment"."account_id" '
                   'FROM "appointment" WHERE "appointment"."id" = "booking"."appointment_id")')
    apply_changes(migrator.add_not_null("booking", "account_id"),
                  migrator.drop_index("booking", "booking_uid"),
                  migrator.add_index("booking", ("account_id", "uid"), unique=True))


def _sandbox_key(db: Database) -> None:
    """Accounts made before it get their key at first use (connector/accounts.sandbox_key)."""
    migrator = SchemaMigrator.from_database(db)
    apply_changes(migrator.add_column("account", "sandbox_api_key", TextField(null=True)))


def _waiting_index(db: Database) -> None:
    """Deliveries waiting for a booking are looked up by account each time one is recorded."""
    db.execute_sql('CREATE INDEX IF NOT EXISTS "webhook_delivery_account_id_outcome" '
                   'ON "webhook_delivery" ("account_id", "outcome")')


def _seats(db: Database) -> None:
    """A seated booking's attendees are appointments of their own (DESIGN §10)."""
    migrator = SchemaMigrator.from_database(db)
    apply_changes(migrator.add_column("appointment", "seat_uid", CharField(max_length=64, null=True)),
                  migrator.add_column("booking", "seat", CharField(max_length=320, default="")),
                  migrator.add_column("booking", "seat_uid", CharField(max_length=64, null=True)),
                  migrator.drop_index("booking", "booking_account_id_uid"),
                  migrator.add_index("booking", ("account_id", "uid", "seat"), unique=True))


def _host_actions(db: Database) -> None:
    """The host's answers and reassignments, asked for from the CRM (confirm, decline, reassign)."""
    migrator = SchemaMigrator.from_database(db)
    apply_changes(migrator.add_column("appointment", "desired_decision", CharField(max_length=10, null=True)),
                  migrator.add_column("appointment", "desired_decision_reason", TextField(null=True)),
                  migrator.add_column("appointment", "reassigns_asked", IntegerField(default=0)),
                  migrator.add_column("appointment", "desired_host_id", BigIntegerField(null=True)),
                  migrator.add_column("appointment", "reassigns_done", IntegerField(default=0)))


def _recurring(db: Database) -> None:
    """A recurring series' occurrences are appointments of their own, linked by the series' uid."""
    migrator = SchemaMigrator.from_database(db)
    apply_changes(
        migrator.add_column("appointment", "recurring_booking_uid", CharField(max_length=64, null=True)),
        migrator.add_index("appointment", ("account_id", "recurring_booking_uid"), unique=False))


def _import_runs(db: Database) -> None:
    """Large imports run in the background; a console import waits for review after its dry run."""
    with db.bind_ctx([ImportRun]):
        db.create_tables([ImportRun])


def _rate_windows(db: Database) -> None:
    """Each Cal.com key's allowance in the database, shared by every process."""
    with db.bind_ctx([RateWindow]):
        db.create_tables([RateWindow])


def _reminders(db: Database) -> None:
    """Reminders per appointment (and the account's defaults), each announced once."""
    migrator = SchemaMigrator.from_database(db)
    apply_changes(migrator.add_column("appointment", "reminders", JSONField(null=True)),
                  migrator.add_column("account", "default_reminders", JSONField(null=True)))
    with db.bind_ctx([ReminderSent]):
        db.create_tables([ReminderSent])


def _deliveries_as_queue(db: Database) -> None:
    """A delivery is its own queue entry until dispatched, with only the indexes that listings
    and the worker need; repeated bodies are found by the dispatcher in ``webhook_digest``.
    Deliveries stored before already have their jobs, and their bodies are the digests."""
    migrator = SchemaMigrator.from_database(db)
    apply_changes(migrator.add_column("webhook_delivery", "queued_at", UTCDateTimeField(null=True)))
    db.execute_sql('UPDATE "webhook_delivery" SET "queued_at" = "received_at"')
    with db.bind_ctx([WebhookDelivery, WebhookDigest]):
        db.create_tables([WebhookDigest])
        db.execute_sql('INSERT INTO "webhook_digest" ("account_id", "dedupe_key", "delivery_id") '
                       'SELECT "account_id", "dedupe_key", "id" FROM "webhook_delivery"')
        for name in ("webhook_delivery_account_id", "webhook_delivery_account_id_received_at",
                     "webhook_delivery_account_id_outcome", "webhook_delivery_account_id_dedupe_key"):
            db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
        db.create_tables([WebhookDelivery])  # the table is there: only its new indexes are made


STEPS: list[Step] = [
    Step(1, "initial schema: accounts, tokens, appointments, bookings, event types, jobs, "
            "webhook deliveries, audit events", _baseline),
    Step(2, "appointment: cancellation and attendance intent, reschedule outcome marker",
         _lifecycle_intent),
    Step(3, "reconcile runs and checkpoints; claims that run each periodic task once per period",
         _reconciler_and_scheduler),
    Step(4, "appointment: index by label for the table view", _label_index),
    Step(5, "booking: identity is (account, uid), not the uid alone", _booking_per_account),
    Step(6, "account: a key of its own for the built-in Cal.com sandbox", _sandbox_key),
    Step(7, "webhook deliveries: found by outcome (those waiting for a booking)", _waiting_index),
    Step(8, "seats: an appointment per attendee of a seated booking, a booking row per seat", _seats),
    Step(9, "appointment: the host's confirm, decline and reassign asked for from the CRM", _host_actions),
    Step(10, "appointment: the recurring series an occurrence belongs to", _recurring),
    Step(11, "import runs: large files in the background, console imports held for review", _import_runs),
    Step(12, "rate windows: one Cal.com allowance per key, whatever the number of processes", _rate_windows),
    Step(13, "reminders: per appointment and account defaults, each announced once", _reminders),
    Step(14, "webhook deliveries: each its own queue entry until dispatched, deduped by the "
             "dispatcher; fewer indexes",
         _deliveries_as_queue),
]


class SchemaVersion(Model):
    version = IntegerField(primary_key=True)
    description = TextField()
    applied_at = UTCDateTimeField()

    class Meta:
        table_name = "calsync_schema_version"


def current_version(db: Database) -> int | None:
    with SchemaVersion.bind_ctx(db):
        if not SchemaVersion.table_exists():  # type: ignore[no-untyped-call]
            return None
        row = SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).first()
        return row.version if row else None


def migrate(db: Database, now: datetime, steps: Sequence[Step] = STEPS) -> list[int]:
    """Bring ``db`` to the latest version; returns the versions applied (empty if current)."""
    applied: list[int] = []
    latest = steps[-1].version
    with SchemaVersion.bind_ctx(db), write_transaction(db):
        if is_postgres(db):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_ID,))
        db.create_tables([SchemaVersion])
        version = current_version(db)
        if version is None:
            if any(model._meta.table_name in db.get_tables() for model in ALL_MODELS):
                raise RuntimeError(
                    "the database has calsync tables but no schema version; refusing to guess"
                )
            _create_current(db)
            for step in steps:
                SchemaVersion.create(version=step.version, description=step.description, applied_at=now)
            log.info("created schema", extra={"action": "db.migrate", "version": latest})
            return [step.version for step in steps]
        if version > latest:
            raise RuntimeError(
                f"the database is at schema version {version}, newer than this calsync ({latest})"
            )
    for step in steps:
        if step.version <= version:
            continue
        with SchemaVersion.bind_ctx(db), _foreign_keys_held(db), write_transaction(db):
            if is_postgres(db):
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_ID,))
            if (current_version(db) or 0) >= step.version:
                continue  # another process applied it meanwhile
            step.apply(db)
            _check_foreign_keys(db)
            SchemaVersion.create(version=step.version, description=step.description, applied_at=now)
        log.info("applied migration", extra={"action": "db.migrate", "version": step.version})
        applied.append(step.version)
    return applied


@contextlib.contextmanager
def _foreign_keys_held(db: Database) -> Iterator[None]:
    """SQLite changes a column by copying its table and dropping the old one; with foreign keys
    on, that drop cascades (dropping ``appointment`` deletes every booking and audit event). So, as
    SQLite's own procedure says, they are off while a step runs, and checked before it commits.
    The pragma is a no-op inside a transaction: this wraps the step's transaction."""
    if is_postgres(db):
        yield
        return
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")


def _check_foreign_keys(db: Database) -> None:
    if is_postgres(db):
        return
    broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"a migration left rows pointing nowhere: {broken[:5]}")


def _create_current(db: Database) -> None:
    with db.bind_ctx(ALL_MODELS):
        db.create_tables(ALL_MODELS)
