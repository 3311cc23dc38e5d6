"""Fixtures for the sync core: a sandbox in-process, a converge context, an account."""

from __future__ import annotations

import pytest

from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from tests.support.factories import sandbox_clients, sync_context


@pytest.fixture
def sandbox(clock):
    return create_sandbox(clock, SandboxSettings(rate_limit=10_000))


@pytest.fixture
def ctx(db, clock, sandbox):
    return sync_context(db, clock, sandbox_clients(sandbox))


@pytest.fixture
def account(make_account):
    return make_account()[0]
