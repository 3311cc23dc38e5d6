from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from connector import accounts, event_types
from connector.app import create_app
from tests.support.asgi import SyncASGITransport
from tests.support.factories import SANDBOX_URL


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
