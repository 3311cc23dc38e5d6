"""The database, chosen late from a URL: SQLite (WAL) by default, PostgreSQL for many instances.

Models bind to ``database`` (a ``DatabaseProxy``); ``open_database(url)`` picks the
engine and initialises it. Every unit of work runs inside ``session(db)`` (a
connection for this thread, closed afterwards if we opened it) and writes inside
``write_transaction(db)`` — ``BEGIN IMMEDIATE`` on SQLite, because a deferred
transaction that reads and then writes fails with "database is locked" under
concurrency even in WAL mode (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from peewee import (
    CharField,
    Database,
    DatabaseProxy,
    Model,
    PostgresqlDatabase,
    SqliteDatabase,
    TextField,
)
from playhouse.pool import PooledPostgresqlDatabase

database = DatabaseProxy()

# Per connection. WAL mode is a property of the database file: it is set once, when the
# database is made (setting it on every connection is a write, and costs each request).
SQLITE_PRAGMAS = {
    "busy_timeout": 15_000,
    "foreign_keys": 1,
    "synchronous": "normal",
}


def is_postgres(db: Database | DatabaseProxy) -> bool:
    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def bound_database() -> Database:
    """The database the models are bound to (what ``database`` stands for)."""
    bound = database.obj
    if not isinstance(bound, Database):
        raise RuntimeError("the database is not initialised")
    return bound


def make_database(url: str, *, pool_size: int = 32) -> Database:
    """A peewee database for ``sqlite:///path`` or ``postgresql://user@host:port/name?opt=…``."""
    if url.startswith("sqlite:///"):
        path = unquote(url[len("sqlite:///") :].split("?", 1)[0])
        if not path:
            raise ValueError("sqlite URL needs a file path: sqlite:///calsync.db")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=15) as first:
            first.execute("PRAGMA journal_mode=wal")
        first.close()
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False, timeout=15)
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query))
        pooled: Database = PooledPostgresqlDatabase(
            unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            max_connections=pool_size,
            stale_timeout=300,
            timeout=30,
            **options,
        )
        return pooled
    raise ValueError(f"unsupported database URL scheme in {redact_url(url)!r}")


def dedicated_connection(db: Database) -> Any:
    """A PostgreSQL connection of its own, outside the pool (a LISTEN must keep its connection)."""
    import psycopg2

    target = getattr(db, "obj", db)
    params = {k: v for k, v in target.connect_params.items() if v is not None}
    return psycopg2.connect(dbname=target.database, **params)


def open_database(url: str, *, pool_size: int = 32) -> Database:
    """Create the database for ``url`` and bind the models to it."""
    db = make_database(url, pool_size=pool_size)
    database.initialize(db)
    return db


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


@contextlib.contextmanager
def session(db: Database) -> Iterator[Database]:
    """A connection for the current thread. PostgreSQL's goes back to the pool on exit if this call
    took it; SQLite's stays open with its thread (opening one, with its pragmas, cost about 1 ms
    a request: a third of a PUT's time)."""
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        yield db
    finally:
        if opened and not db.is_closed() and not isinstance(getattr(db, "obj", db), SqliteDatabase):
            db.close()


def refresh_statistics(db: Database) -> bool:
    """Give SQLite's planner fresh row statistics (PostgreSQL's autovacuum does this itself).

    Without them SQLite counts an account's appointments through the wrong index and a
    search of 100,000 rows takes 4× longer (docs/benchmarks.md). A full ANALYZE of 100,000
    appointments took 54 ms; a sampled one (``analysis_limit``) was too coarse to help.
    """
    target = getattr(db, "obj", db)
    if not isinstance(target, SqliteDatabase):
        return False
    with session(db):
        target.execute_sql("ANALYZE")
    return True


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[None]:
    """A transaction that will write: IMMEDIATE on SQLite so it takes the write lock first."""
    target = getattr(db, "obj", db)
    if isinstance(target, SqliteDatabase) and not target.in_transaction():
        with target.atomic(lock_type="IMMEDIATE"):
            yield
    else:
        with target.atomic():
            yield


_TEXT_FIELDS = (CharField, TextField)


def bulk_insert(db: Database | DatabaseProxy, model: type[Model], rows: list[dict[str, Any]], *,
                returning: tuple[str, ...] = (), skip_conflicts: bool = False) -> list[tuple[Any, ...]]:
    """Insert rows in one multi-row statement, bypassing per-row query building.

    For hot paths only (webhook ingest): values pass through each field's
    ``db_value``. ``skip_conflicts`` adds ON CONFLICT DO NOTHING; ``returning``
    names columns to get back for the rows actually inserted (SQLite ≥ 3.35 and
    PostgreSQL both support RETURNING).
    """
    if not rows:
        return []
    target = getattr(db, "obj", db)
    fields = model._meta.fields
    # peewee's defaults live in Python, not in the schema: fill the ones a row leaves out.
    defaults = {name: field.default for name, field in fields.items()
                if field.default is not None and name not in rows[0]}
    if defaults:
        rows = [{**{name: value() if callable(value) else value for name, value in defaults.items()},
                 **row} for row in rows]
    names = list(rows[0])
    columns = [fields[name].column_name for name in names]
    placeholder = "(" + ", ".join([target.param] * len(names)) + ")"
    quoted = ", ".join('"' + column + '"' for column in columns)
    values = ", ".join([placeholder] * len(rows))
    sql = 'INSERT INTO "' + model._meta.table_name + '" (' + quoted + ") VALUES " + values
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join('"' + fields[name].column_name + '"' for name in returning)
    # A str or None for a text field goes in as it is: what its db_value would give, without the calls.
    text = [type(fields[name]) in _TEXT_FIELDS for name in names]
    params = []
    for row in rows:
        for name, is_text in zip(names, text, strict=True):
            value = row[name]
            params.append(value if is_text and (value is None or type(value) is str)
                          else fields[name].db_value(value))
    cursor = target.execute_sql(sql, params)
    return cursor.fetchall() if returning else []
