from __future__ import annotations

from datetime import UTC, datetime

import pytest
from peewee import IntegrityError, TextField
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_changes

from mappings.migrations import STEPS, Step, current_version, migrate
from mappings.models import ALL_MODELS, Booking

NOW = datetime(2026, 3, 16, tzinfo=UTC)
pytestmark = pytest.mark.alters_schema


def test_a_new_database_is_created_at_the_latest_version(db):
    assert current_version(db) == STEPS[-1].version
    tables = set(db.get_tables())
    assert {model._meta.table_name for model in ALL_MODELS} <= tables


def test_migrating_again_does_nothing(db):
    assert migrate(db, NOW) == []


def test_later_steps_upgrade_in_place_and_keep_data(db):
    db.execute_sql("INSERT INTO account (id, name, time_zone, created_at, updated_at) "
                   "VALUES ('acc_1', 'kept', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")

    def add_column(database):
        migrator = SchemaMigrator.from_database(database)
        apply_changes(migrator.add_column("account", "note", TextField(null=True)))

    steps = [*STEPS, Step(STEPS[-1].version + 1, "add account.note", add_column)]
    assert migrate(db, NOW, steps) == [steps[-1].version]
    assert current_version(db) == steps[-1].version
    assert [c.name for c in db.get_columns("account") if c.name == "note"] == ["note"]
    assert db.execute_sql("SELECT name FROM account WHERE id = 'acc_1'").fetchone()[0] == "kept"
    assert migrate(db, NOW, steps) == []


def test_a_database_newer_than_the_code_is_refused(db):
    steps = [*STEPS, Step(STEPS[-1].version + 1, "future", lambda database: None)]
    migrate(db, NOW, steps)
    with pytest.raises(RuntimeError, match="newer than this calsync"):
        migrate(db, NOW)


def test_a_version_1_database_is_upgraded_in_place(db):
    """Step 2 adds the lifecycle columns to an existing appointment table and keeps its rows."""
    _as_at_version_8(db)
    step2 = ["desired_cancellation_reason", "notify_attendee", "desired_attendance",
             "reschedule_attempted_at"]
    db.execute_sql("INSERT INTO account (id, name, time_zone, created_at, updated_at) "
                   "VALUES ('acc_1', 'A', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    db.execute_sql(
        "INSERT INTO appointment (id, account_id, external_id, source, title, attendee_name, "
        "attendee_email, attendee_time_zone, event_type_id, start_time, guests, metadata, "
        "desired_status, desired_cancellation_reason, notify_attendee, desired_attendance, "
        "desired_version, status, attendance, sync_state, synced_version, ics_sequence, "
        "created_at, updated_at) VALUES ('apt_1', 'acc_1', 'crm-1', 'crm', 't', 'n', 'a@b.co', "
        "'UTC', 1, '2026-03-17 10:00:00', '[]', '{}', 'active', NULL, TRUE, 'unknown', 1, "
        "'active', 'unknown', 'synced', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    for column in step2:  # back to the version-1 shape
        db.execute_sql(f"ALTER TABLE appointment DROP COLUMN {column}")
    _as_at_version_4(db)
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 2")
    assert current_version(db) == 1
    assert migrate(db, NOW) == [step.version for step in STEPS if step.version >= 2]
    columns = {c.name for c in db.get_columns("appointment")}
    assert set(step2) <= columns
    row = db.execute_sql("SELECT external_id, notify_attendee, desired_attendance FROM appointment").fetchone()
    assert row[0] == "crm-1" and bool(row[1]) is True and row[2] == "unknown"


def test_planner_statistics_refresh_on_sqlite_and_do_nothing_on_postgres(db):
    from mappings.db import is_postgres, refresh_statistics

    def analysed() -> bool:
        return bool(db.execute_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                    .fetchone()[0])

    if is_postgres(db):
        refresh_statistics(db)  # autovacuum's job there: nothing to do, nothing to fail
        return
    assert not analysed()
    refresh_statistics(db)
    assert analysed()


def _as_at_version_4(db) -> None:
    """The tables as schema 4 had them: the booking's uid unique on its own, no sandbox keys,
    no seats."""
    from mappings.db import is_postgres

    db.execute_sql('ALTER TABLE "account" DROP COLUMN "sandbox_api_key"')
    db.execute_sql('ALTER TABLE "appointment" DROP COLUMN "seat_uid"')
    _as_at_version_8(db)
    db.execute_sql('DROP TABLE "booking"')
    key = "BIGSERIAL PRIMARY KEY" if is_postgres(db) else "INTEGER PRIMARY KEY"
    db.execute_sql(
        f'CREATE TABLE "booking" ("id" {key}, "appointment_id" VARCHAR(40) NOT NULL '
        'REFERENCES "appointment" ("id") ON DELETE CASCADE, "uid" VARCHAR(64) NOT NULL, '
        '"calcom_id" BIGINT, "status" VARCHAR(20) NOT NULL, "start_time" TIMESTAMP NOT NULL, '
        '"end_time" TIMESTAMP NOT NULL, "meeting_url" TEXT, "location" TEXT, '
        '"rescheduled_from_uid" VARCHAR(64), "rescheduled_to_uid" VARCHAR(64), "raw" TEXT, '
        '"calcom_updated_at" TIMESTAMP, "created_at" TIMESTAMP NOT NULL, "updated_at" TIMESTAMP NOT NULL)')
    db.execute_sql('CREATE UNIQUE INDEX "booking_uid" ON "booking" ("uid")')
    db.execute_sql('CREATE INDEX "booking_appointment_id_start_time" ON "booking" '
                   '("appointment_id", "start_time")')


def test_schema_5_gives_each_booking_its_account_and_keys_uids_per_account(db):
    _as_at_version_8(db)
    db.execute_sql("INSERT INTO account (id, name, time_zone, created_at, updated_at) VALUES "
                   "('acc_1', 'A', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00'), "
                   "('acc_2', 'B', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    for appointment, account in (("apt_1", "acc_1"), ("apt_2", "acc_2")):
        db.execute_sql(
            "INSERT INTO appointment (id, account_id, external_id, source, title, attendee_name, "
            "attendee_email, attendee_time_zone, event_type_id, start_time, guests, metadata, "
            "desired_status, notify_attendee, desired_attendance, desired_version, status, attendance, "
            "sync_state, synced_version, ics_sequence, created_at, updated_at) VALUES "
            f"('{appointment}', '{account}', 'crm-1', 'crm', 't', 'n', 'a@b.co', 'UTC', 1, "
            "'2026-03-17 10:00:00', '[]', '{}', 'active', TRUE, 'unknown', 1, 'active', 'unknown', "
            "'synced', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    _as_at_version_4(db)
    db.execute_sql("INSERT INTO booking (appointment_id, uid, status, start_time, end_time, "
                   "created_at, updated_at) VALUES ('apt_1', 'u1', 'accepted', '2026-03-17 10:00:00', "
                   "'2026-03-17 10:30:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 5")

    assert migrate(db, NOW) == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert [(b.uid, b.account_id) for b in Booking.select()] == [("u1", "acc_1")]
    values = dict(status="accepted", start_time=NOW, end_time=NOW, created_at=NOW, updated_at=NOW)
    Booking.create(account="acc_2", appointment="apt_2", uid="u1", **values)  # the same uid elsewhere
    with pytest.raises(IntegrityError), db.atomic():
        Booking.create(account="acc_1", appointment="apt_1", uid="u1", **values)
    indexes = {index.name: (index.columns, index.unique) for index in db.get_indexes("booking")}
    assert indexes["booking_account_id_uid_seat"] == (["account_id", "uid", "seat"], True)
    assert "booking_uid" not in indexes and "booking_account_id_uid" not in indexes
    assert [b.seat for b in Booking.select()] == ["", ""]  # not seated: one row, seat ""
    assert not [c for c in db.get_columns("booking") if c.name == "account_id" and c.null]


HOST_ACTIONS = ("desired_decision", "desired_decision_reason", "reassigns_asked",
                "desired_host_id", "reassigns_done")


def _as_at_version_13(db) -> None:
    """Before deliveries were their own queue entries: no ``queued_at``, the old indexes."""
    if "queued_at" not in {c.name for c in db.get_columns("webhook_delivery")}:
        return
    for name in ("webhook_delivery_to_dispatch", "webhook_delivery_waiting", "webhook_delivery_account_id_id"):
        db.execute_sql(f'DROP INDEX "{name}"')
    db.execute_sql('ALTER TABLE "webhook_delivery" DROP COLUMN "queued_at"')
    db.execute_sql('DROP TABLE "webhook_digest"')
    db.execute_sql('CREATE UNIQUE INDEX "webhook_delivery_account_id_dedupe_key" '
                   'ON "webhook_delivery" ("account_id", "dedupe_key")')
    for name, columns in (("webhook_delivery_account_id", '"account_id"'),
                          ("webhook_delivery_account_id_received_at", '"account_id", "received_at"'),
                          ("webhook_delivery_account_id_outcome", '"account_id", "outcome"')):
        db.execute_sql(f'CREATE INDEX "{name}" ON "webhook_delivery" ({columns})')


def _as_at_version_12(db) -> None:
    """Before reminders."""
    _as_at_version_13(db)
    db.execute_sql('DROP TABLE IF EXISTS "reminder_sent"')
    for table, column in (("appointment", "reminders"), ("account", "default_reminders")):
        if column in {c.name for c in db.get_columns(table)}:
            db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')


def _as_at_version_11(db) -> None:
    """Before rate windows in the database."""
    _as_at_version_12(db)
    db.execute_sql('DROP TABLE IF EXISTS "rate_window"')


def _as_at_version_10(db) -> None:
    """Before import runs."""
    _as_at_version_11(db)
    db.execute_sql('DROP TABLE IF EXISTS "import_run"')


def _as_at_version_9(db) -> None:
    """Before recurring series: no series column on the appointment."""
    _as_at_version_10(db)
    if "recurring_booking_uid" in {column.name for column in db.get_columns("appointment")}:
        db.execute_sql('DROP INDEX "appointment_account_id_recurring_booking_uid"')
        db.execute_sql('ALTER TABLE "appointment" DROP COLUMN "recurring_booking_uid"')


def _as_at_version_8(db) -> None:
    """Before the host's actions from the CRM (whose counters a raw INSERT could not leave out)."""
    _as_at_version_9(db)
    present = {column.name for column in db.get_columns("appointment")}
    for column in HOST_ACTIONS:
        if column in present:
            db.execute_sql(f'ALTER TABLE "appointment" DROP COLUMN "{column}"')


def _as_at_version_7(db) -> None:
    """Before seats: no seat columns, the booking unique by (account, uid)."""
    _as_at_version_8(db)
    db.execute_sql('DROP INDEX "booking_account_id_uid_seat"')
    for table, column in (("appointment", "seat_uid"), ("booking", "seat"), ("booking", "seat_uid")):
        db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    db.execute_sql('CREATE UNIQUE INDEX "booking_account_id_uid" ON "booking" ("account_id", "uid")')


def test_schema_7_indexes_deliveries_by_outcome(db):
    _as_at_version_7(db)
    db.execute_sql('DROP INDEX "webhook_delivery_account_id_outcome"')
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 7")
    assert migrate(db, NOW, [step for step in STEPS if step.version < 14]) == [7, 8, 9, 10, 11, 12, 13]
    indexes = {index.name: index.columns for index in db.get_indexes("webhook_delivery")}
    assert indexes["webhook_delivery_account_id_outcome"] == ["account_id", "outcome"]


def test_schema_8_gives_a_seated_booking_a_row_per_seat(db):
    _as_at_version_8(db)
    db.execute_sql("INSERT INTO account (id, name, time_zone, created_at, updated_at) VALUES "
                   "('acc_1', 'A', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    for appointment in ("apt_1", "apt_2"):
        db.execute_sql(
            "INSERT INTO appointment (id, account_id, external_id, source, title, attendee_name, "
            "attendee_email, attendee_time_zone, event_type_id, start_time, guests, metadata, "
            "desired_status, notify_attendee, desired_attendance, desired_version, status, attendance, "
            "sync_state, synced_version, ics_sequence, created_at, updated_at) VALUES "
            f"('{appointment}', 'acc_1', '{appointment}', 'crm', 't', 'n', 'a@b.co', 'UTC', 1, "
            "'2026-03-17 10:00:00', '[]', '{}', 'active', TRUE, 'unknown', 1, 'active', 'unknown', "
            "'synced', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    _as_at_version_7(db)
    db.execute_sql("INSERT INTO booking (account_id, appointment_id, uid, status, start_time, end_time, "
                   "created_at, updated_at) VALUES ('acc_1', 'apt_1', 'u1', 'accepted', "
                   "'2026-03-17 10:00:00', '2026-03-17 10:30:00', '2026-01-01 00:00:00', "
                   "'2026-01-01 00:00:00')")
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 8")
    assert migrate(db, NOW) == [8, 9, 10, 11, 12, 13, 14]
    assert [(b.uid, b.seat, b.seat_uid) for b in Booking.select()] == [("u1", "", None)]
    values = dict(status="accepted", start_time=NOW, end_time=NOW, created_at=NOW, updated_at=NOW)
    Booking.create(account="acc_1", appointment="apt_2", uid="u1", seat="b@c.co", **values)  # a seat
    with pytest.raises(IntegrityError), db.atomic():
        Booking.create(account="acc_1", appointment="apt_2", uid="u1", seat="b@c.co", **values)


def test_schema_9_adds_the_host_actions_and_keeps_appointments(db):
    _as_at_version_8(db)
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 9")
    assert migrate(db, NOW) == [9, 10, 11, 12, 13, 14]
    assert set(HOST_ACTIONS) <= {c.name for c in db.get_columns("appointment")}


def test_schema_10_links_occurrences_of_a_series(db):
    _as_at_version_9(db)
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 10")
    assert migrate(db, NOW) == [10, 11, 12, 13, 14]
    indexes = {index.name: index.columns for index in db.get_indexes("appointment")}
    assert indexes["appointment_account_id_recurring_booking_uid"] == ["account_id",
                                                                       "recurring_booking_uid"]


def test_schema_11_adds_import_runs(db):
    _as_at_version_10(db)
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 11")
    assert migrate(db, NOW) == [11, 12, 13, 14]
    assert "import_run" in db.get_tables()


def test_schema_12_adds_rate_windows(db):
    _as_at_version_11(db)
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 12")
    assert migrate(db, NOW) == [12, 13, 14]
    assert "rate_window" in db.get_tables()


def test_schema_13_adds_reminders(db):
    _as_at_version_12(db)
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 13")
    assert migrate(db, NOW) == [13, 14]
    assert "reminder_sent" in db.get_tables()
    assert "reminders" in {c.name for c in db.get_columns("appointment")}


def test_schema_14_makes_deliveries_queue_entries_without_dispatching_or_forgetting_old_ones(db):
    _as_at_version_13(db)
    db.execute_sql("INSERT INTO account (id, name, time_zone, created_at, updated_at) VALUES "
                   "('acc_1', 'A', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    db.execute_sql("INSERT INTO webhook_delivery (account_id, dedupe_key, trigger, raw_body, received_at, "
                   "outcome) VALUES ('acc_1', 'k1', 'BOOKING_CREATED', '{}', '2026-01-01 00:00:00', "
                   "'received')")  # its apply job was queued with it, as schema 13 did
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 14")
    assert migrate(db, NOW) == [14]
    from webhooks.dispatch import undispatched_accounts

    assert undispatched_accounts() == []
    # Its body is known: the same body again is a duplicate of it.
    assert db.execute_sql('SELECT "account_id", "dedupe_key" FROM "webhook_digest"').fetchall() == [
        ("acc_1", "k1")]
    indexes = {index.name for index in db.get_indexes("webhook_delivery")}
    assert {"webhook_delivery_to_dispatch", "webhook_delivery_waiting",
            "webhook_delivery_account_id_id"} <= indexes
    assert not indexes & {"webhook_delivery_account_id", "webhook_delivery_account_id_received_at",
                          "webhook_delivery_account_id_outcome", "webhook_delivery_account_id_dedupe_key"}


def test_no_step_loses_rows_that_point_at_a_changed_table(db):
    """SQLite changes a column by copying the table: with foreign keys on, dropping the old
    ``appointment`` cascaded to every booking and audit event. Every row survives every step."""
    _as_at_version_8(db)
    db.execute_sql("INSERT INTO account (id, name, time_zone, created_at, updated_at) VALUES "
                   "('acc_1', 'A', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    db.execute_sql(
        "INSERT INTO appointment (id, account_id, external_id, source, title, attendee_name, "
        "attendee_email, attendee_time_zone, event_type_id, start_time, guests, metadata, "
        "desired_status, notify_attendee, desired_attendance, desired_version, status, attendance, "
        "sync_state, synced_version, ics_sequence, created_at, updated_at) VALUES "
        "('apt_1', 'acc_1', 'crm-1', 'crm', 't', 'n', 'a@b.co', 'UTC', 1, '2026-03-17 10:00:00', '[]', "
        "'{}', 'active', TRUE, 'unknown', 1, 'active', 'unknown', 'synced', 1, 0, "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    _as_at_version_4(db)
    db.execute_sql("INSERT INTO booking (appointment_id, uid, status, start_time, end_time, created_at, "
                   "updated_at) VALUES ('apt_1', 'u1', 'accepted', '2026-03-17 10:00:00', "
                   "'2026-03-17 10:30:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    db.execute_sql("INSERT INTO audit_event (account_id, appointment_id, at, actor, action, before, after) "
                   "VALUES ('acc_1', 'apt_1', '2026-01-01 00:00:00', 'system', 'x', '{}', '{}')")
    db.execute_sql("DELETE FROM calsync_schema_version WHERE version >= 5")
    assert migrate(db, NOW) == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    counts = [db.execute_sql(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("appointment", "booking", "audit_event")]
    assert counts == [1, 1, 1]
