"""Fixtures for the sync core: a sandbox in-process, a converge context, an account."""

from __future__ import annotations

import pytest

from tests.support.factories import sandbox_clients, sync_context


@pytest.fixture
def ctx(db, clock, sandbox):
    return sync_context(db, clock, sandbox_clients(sandbox))


@pytest.fixture
def account(make_account):
    return make_account()[0]
