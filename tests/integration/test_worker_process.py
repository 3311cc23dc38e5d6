"""`calsync worker` as a real process: it books what the API queued, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from connector.clock import SystemClock
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from mappings.db import session
from mappings.models import Appointment
from tests.support.factories import SECRET_KEY, put
from tests.support.servers import ServerThread, wait_for

pytestmark = pytest.mark.integration


def test_a_standalone_worker_books_through_an_external_sandbox(db, make_account, tmp_path):
    sandbox = create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000))
    account = make_account()[0]
    appointment = put(db, account, now=SystemClock().now(), start_time="2030-01-15T10:00:00Z").appointment
    with ServerThread(sandbox.app) as calcom:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
        # The worker opens the account's sealed sandbox key with the same secret key.
        env.update(CALSYNC_DATABASE_URL=db.url, CALSYNC_SANDBOX_URL=calcom.url, CALSYNC_SECRET_KEY=SECRET_KEY,
                   CALSYNC_WORKER_POLL_INTERVAL_SECONDS="0.05")
        process = subprocess.Popen([sys.executable, "-m", "connector.cli", "worker", "--concurrency", "2"],
                                   env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            def booked():
                with session(db):
                    row = Appointment.get_by_id(appointment.id)
                return row if row.status == "active" else None

            row = wait_for(booked, what="the worker to book the appointment")
            assert row.booking_uid in sandbox.calendar.bookings
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode()
    assert b"workers stopped" in output
