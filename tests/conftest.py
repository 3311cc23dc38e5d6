"""Fixtures shared by the whole suite.

Every test that asks for ``db`` runs twice: on SQLite and on PostgreSQL. The
PostgreSQL run needs ``CALSYNC_TEST_POSTGRES_URL``; without it those tests skip
with a reason. With ``CALSYNC_REQUIRE_POSTGRES=1`` (set by .ci/run) a PostgreSQL
test that cannot connect fails, and the session fails if no PostgreSQL test ran.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from connector.app import create_app
from connector.clock import FakeClock
from connector.core import accounts, event_types
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings, Settings
from mappings.db import database, make_database, session
from mappings.migrations import migrate
from mappings.models import ALL_MODELS
from mappings.sealing import Sealer
from tests.support.asgi import SyncASGITransport
from tests.support.factories import CONTROL_TOKEN, SANDBOX_URL, SECRET_KEY

POSTGRES_URL = os.environ.get("CALSYNC_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("CALSYNC_REQUIRE_POSTGRES") == "1"
ENGINES = ["sqlite", "postgres"]
_engine_outcomes: Counter[tuple[str, str]] = Counter()


# PostgreSQL schemas migrated for an earlier test and emptied after it: making and migrating a
# schema costs about half a second a test, emptying one a few milliseconds. A test that changes
# the schema itself (marked alters_schema) gets a schema of its own, dropped after it.
_SPARE_SCHEMAS: list[str] = []
_ADMIN: list = []


def _admin():
    if not _ADMIN:
        _ADMIN.append(make_database(POSTGRES_URL, pool_size=2))
    return _ADMIN[0]


def _fresh_database(engine: str, tmp_path, *, reuse: bool):
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path}/calsync-test.db"
        return make_database(url), url, None
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need CALSYNC_TEST_POSTGRES_URL "
                    "(e.g. postgresql://postgres@127.0.0.1:5432/test)")
    if reuse and _SPARE_SCHEMAS:
        schema = _SPARE_SCHEMAS.pop()
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        try:
            with session(_admin()):
                _admin().execute_sql(f'CREATE SCHEMA "{schema}"')
        except Exception as exc:  # noqa: BLE001
            if REQUIRE_POSTGRES:
                pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required but unusable: {exc}")
            pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unusable: {exc}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-c%20search_path%3D{schema}"
    return make_database(url, pool_size=40), url, schema


def _emptied(schema: str) -> bool:
    """Every table of a spare schema emptied, ids restarted; False if the schema is not as migrated."""
    tables = [model._meta.table_name for model in ALL_MODELS]
    with session(_admin()):
        present = {row[0] for row in _admin().execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))}
        if not set(tables) <= present:
            return False
        _admin().execute_sql("TRUNCATE " + ", ".join(f'"{schema}"."{t}"' for t in tables)
                             + " RESTART IDENTITY CASCADE")
    return True


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def db(engine, tmp_path, request):
    """A migrated, empty database bound to the models, on each engine (its URL in ``.url``)."""
    reuse = request.node.get_closest_marker("alters_schema") is None
    database_, url, schema = _fresh_database(engine, tmp_path, reuse=reuse)
    database_.url = url
    database.initialize(database_)
    with session(database_):
        migrate(database_, datetime(2026, 1, 1, tzinfo=UTC))
        yield database_
    database_.close_all() if hasattr(database_, "close_all") else database_.close()
    if schema is not None:
        if reuse and _emptied(schema):
            _SPARE_SCHEMAS.append(schema)
        else:
            with session(_admin()):
                _admin().execute_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 16, 8, 0, tzinfo=UTC))  # a Monday


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings().replace(database={"url": f"sqlite:///{tmp_path}/unused.db"},
                              security={"secret_key": SECRET_KEY},  # the sealer's key
                              worker={"poll_interval_seconds": 0.02, "backoff_base_seconds": 0.05,
                                      "backoff_max_seconds": 0.5})


@pytest.fixture
def sealer(settings) -> Sealer:
    return Sealer(settings.security.secret_key)


@pytest.fixture
def make_account(db, clock, sealer):
    """Factory: an account and its all-scopes token."""

    def make(name: str = "Acme CRM", **changes):
        changes.setdefault("event_type_id", 123456)
        changes.setdefault("time_zone", "Europe/Berlin")
        return accounts.create_account(db, accounts.AccountChanges(name=name, **changes), sealer,
                                       now=clock.now())

    return make


@pytest.fixture
def sandbox(clock):
    return create_sandbox(clock, SandboxSettings(rate_limit=10_000, control_token=CONTROL_TOKEN))


@pytest.fixture
def app(settings, clock, db, sandbox):
    return create_app(settings, clock=clock, db=db, transport=SyncASGITransport(sandbox.app),
                      sandbox_url=SANDBOX_URL)


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


@pytest.fixture
def tenant(make_account):
    """An account and an all-scopes bearer header."""
    account, token = make_account()
    return account, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token_with(db, clock):
    def make(account, *scopes: str) -> dict[str, str]:
        _, token = accounts.create_token(db, account.id, "scoped", frozenset(scopes), now=clock.now())
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def run_jobs(app):
    """Run every due job now, as the worker would."""

    def run() -> int:
        worker = app.state.runtime.worker
        count = 0
        while worker.run_once():
            count += 1
        return count

    return run


@pytest.fixture
def fill_event_types(app, db, clock):
    def fill(account) -> None:
        event_types.refresh(db, clock, app.state.runtime.clients, account.id)

    return fill


@pytest.fixture
def statements(db, monkeypatch) -> list[str]:
    """Every SQL statement the database runs from now on, to catch an N+1 (STYLE rule 12)."""
    counted: list[str] = []
    engine_class = type(db.obj if hasattr(db, "obj") else db)
    original = engine_class.execute_sql

    def counting(self, sql, *args, **kwargs):
        counted.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(engine_class, "execute_sql", counting)
    return counted


def pytest_runtest_logreport(report):
    engine = next((e for e in ENGINES if f"[{e}" in report.nodeid or f"-{e}]" in report.nodeid
                   or f"-{e}-" in report.nodeid), None)
    if engine is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _engine_outcomes[(engine, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter):
    if not _engine_outcomes:
        return
    line = ", ".join(f"{engine}: {_engine_outcomes[(engine, 'passed')]} passed, "
                     f"{_engine_outcomes[(engine, 'skipped')]} skipped, "
                     f"{_engine_outcomes[(engine, 'failed')]} failed" for engine in ENGINES)
    terminalreporter.write_line(f"database tests by engine — {line}")


def _drop_spare_schemas() -> None:
    if not _ADMIN:
        return
    with session(_ADMIN[0]):
        for schema in _SPARE_SCHEMAS:
            _ADMIN[0].execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
    _SPARE_SCHEMAS.clear()
    _ADMIN[0].close_all()


def pytest_sessionfinish(session, exitstatus):
    _drop_spare_schemas()
    if not REQUIRE_POSTGRES or not _engine_outcomes:
        return
    passed = _engine_outcomes[("postgres", "passed")]
    skipped = _engine_outcomes[("postgres", "skipped")]
    if passed == 0 or skipped:
        print(f"\nCALSYNC_REQUIRE_POSTGRES=1 but {passed} PostgreSQL tests passed and "
              f"{skipped} were skipped")
        session.exitstatus = 1
