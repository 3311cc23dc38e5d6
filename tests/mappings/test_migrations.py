from __future__ import annotations

from datetime import UTC, datetime

import pytest
from peewee import TextField
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_changes

from mappings.migrations import STEPS, Step, current_version, migrate
from mappings.models import ALL_MODELS

NOW = datetime(2026, 3, 16, tzinfo=UTC)


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
