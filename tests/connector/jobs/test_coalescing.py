"""Ten quick edits: at most two Cal.com calls, never two converges of one appointment at once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from connector.core.sync import ConvergeHandler, converge
from connector.jobs import queue
from connector.jobs.retry import RetryPolicy
from connector.jobs.worker import Worker, WorkerConfig
from connector.sandbox.app import create_sandbox
from connector.sandbox.faults import FaultRule
from connector.settings import SandboxSettings
from mappings.db import session
from mappings.models import Appointment
from mappings.times import to_api
from tests.support.asgi import SyncASGITransport
from tests.support.factories import put, sandbox_clients, sync_context
from tests.support.servers import wait_for


class CountingTransport(httpx.BaseTransport):
    def __init__(self, inner):
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def handle_request(self, request):
        if request.method == "POST":
            with self.lock:
                self.calls[request.url.path.rsplit("/", 1)[-1]] += 1
        return self.inner.handle_request(request)


class WatchedHandler(ConvergeHandler):
    """Records how many converges of one appointment run at the same moment, and their order."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.running: Counter[str] = Counter()
        self.most_at_once = 0
        self.versions_seen: list[int] = []
        self.lock = threading.Lock()

    def run(self, job):
        key = job.payload["appointment_id"]
        with self.lock:
            self.running[key] += 1
            self.most_at_once = max(self.most_at_once, self.running[key])
            self.versions_seen.append(Appointment.get_by_id(key).desired_version)
        try:
            super().run(job)
        finally:
            with self.lock:
                self.running[key] -= 1


def test_ten_quick_edits_make_at_most_two_calls(db, clock, make_account):
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=10_000))
    counting = CountingTransport(SyncASGITransport(sandbox.app))
    ctx = sync_context(db, clock, sandbox_clients(sandbox, transport=counting))
    account = make_account()[0]
    appointment = put(db, account, now=clock.now()).appointment
    assert converge(ctx, appointment.id) == "created"
    sandbox.faults.set("POST /v2/bookings/{uid}/reschedule", FaultRule(latency_ms=150))

    handler = WatchedHandler(ctx)
    worker = Worker(db, clock, {queue.CONVERGE: handler}, RetryPolicy(),
                    WorkerConfig(concurrency=4, poll_interval_seconds=0.005))
    worker.start()
    try:
        first = datetime(2026, 3, 18, 8, 0, tzinfo=UTC)
        starts = [first + timedelta(minutes=30 * index) for index in range(10)]
        for start in starts:  # quick edits, each bumping desired_version and waking the workers
            put(db, account, now=clock.now(), start_time=to_api(start))
            worker.wake()

        def synced():
            with session(db):
                row = Appointment.get_by_id(appointment.id)
            return row.sync_state == "synced" and row.synced_version == row.desired_version

        wait_for(synced, timeout=20, what="the last edit to be synced")
    finally:
        worker.stop()
    row = Appointment.get_by_id(appointment.id)
    assert row.desired_version == 11
    assert counting.calls["reschedule"] <= 2, counting.calls
    assert sandbox.calendar.bookings[row.booking_uid].start == starts[-1]
    # Coalescing: the edits waited as one job behind the running one (10 jobs without it).
    assert len(handler.versions_seen) <= 3, handler.versions_seen
    assert handler.most_at_once == 1
    assert handler.versions_seen == sorted(handler.versions_seen)  # never an older state after a newer
