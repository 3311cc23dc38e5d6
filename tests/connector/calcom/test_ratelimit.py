from __future__ import annotations

import random

import pytest

from connector import errors
from connector.calcom import RateLimitInfo
from connector.calcom.ratelimit import MARGIN, DatabaseWindows, RateLimiter
from connector.core.sync import ConvergeHandler
from connector.jobs import queue
from connector.jobs.retry import RetryPolicy
from connector.jobs.worker import Worker
from connector.sandbox.app import create_sandbox
from connector.sandbox.faults import FaultRule
from connector.settings import SandboxSettings
from mappings.models import Appointment, Job
from tests.support.factories import put, sandbox_clients, sync_context


def test_requests_pass_until_the_window_is_full(clock):
    limiter = RateLimiter(clock, limit=3, window_seconds=60, max_wait_seconds=0)
    for _ in range(3):
        limiter.acquire("a")
    with pytest.raises(errors.RateLimitDeferred) as caught:
        limiter.acquire("a")
    assert caught.value.retry_after == pytest.approx(60 * (1 + MARGIN))
    limiter.acquire("b")  # each account has its own allowance


def test_a_near_slot_is_waited_for_in_the_call(clock):
    limiter = RateLimiter(clock, limit=2, window_seconds=10, max_wait_seconds=5)
    limiter.acquire("a")
    clock.advance(seconds=7)
    limiter.acquire("a")
    limiter.acquire("a")  # the first slot frees 10.2 s after it was taken: 3.2 s from now
    assert clock.slept == [pytest.approx(3.2)]


def test_the_window_slides(clock):
    limiter = RateLimiter(clock, limit=2, window_seconds=10, max_wait_seconds=0)
    limiter.acquire("a")
    clock.advance(seconds=6)
    limiter.acquire("a")
    clock.advance(seconds=5)  # the first left the window, the second did not
    limiter.acquire("a")
    with pytest.raises(errors.RateLimitDeferred):
        limiter.acquire("a")


def test_calcoms_headers_pause_the_account_and_lower_the_limit(clock):
    limiter = RateLimiter(clock, limit=120, window_seconds=60, max_wait_seconds=0)
    limiter.observe("a", RateLimitInfo(limit=120, remaining=0, reset_seconds=42))
    with pytest.raises(errors.RateLimitDeferred) as caught:
        limiter.acquire("a")
    assert caught.value.retry_after == pytest.approx(42)
    clock.advance(seconds=42)
    limiter.acquire("a")
    limiter.observe("b", RateLimitInfo(limit=2, remaining=1, reset_seconds=30))
    limiter.acquire("b")
    limiter.acquire("b")
    with pytest.raises(errors.RateLimitDeferred):
        limiter.acquire("b")


def test_a_429_pauses_the_account_until_the_reset_without_spending_attempts(db, clock, make_account):
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=10_000, rate_limit_block_seconds=60))
    limiter = RateLimiter(clock, limit=120, window_seconds=60, max_wait_seconds=0)
    clients = sandbox_clients(sandbox)
    clients.limiter = limiter
    ctx = sync_context(db, clock, clients)
    account = make_account()[0]
    appointment = put(db, account, now=clock.now()).appointment
    worker = Worker(db, clock, {queue.CONVERGE: ConvergeHandler(ctx)}, RetryPolicy(jitter=0),
                    rng=random.Random(3))
    sandbox.faults.set("POST /v2/bookings", FaultRule(rate_limit_next=1))
    assert worker.run_once()
    job = Job.get()
    assert job.status == "queued" and job.attempts == 0
    assert (job.run_at - clock.now()).total_seconds() == pytest.approx(60)
    calls_before = sandbox.throttler.refused
    clock.advance(seconds=30)
    assert not worker.run_once()  # not due; and the limiter would hold it back anyway
    with pytest.raises(errors.RateLimitDeferred):
        limiter.acquire(clients.allowance(account))
    assert sandbox.throttler.refused == calls_before  # nothing was sent during the block
    clock.advance(seconds=31)
    assert worker.run_once()
    assert Appointment.get_by_id(appointment.id).status == "active"
    assert sandbox.calendar.created_count == 1


def test_processes_share_one_allowance_through_the_database(db, clock):
    """Each process has its own limiter; the window is the database's, per key: two processes
    together get the allowance once, and a process started later does not get a fresh one."""
    first, second = (RateLimiter(clock, limit=3, window_seconds=60, max_wait_seconds=0,
                                 windows=DatabaseWindows(db)) for _ in range(2))
    first.acquire("key-a")
    second.acquire("key-a")
    first.acquire("key-a")
    restarted = RateLimiter(clock, limit=3, window_seconds=60, max_wait_seconds=0, windows=DatabaseWindows(db))
    for limiter in (first, second, restarted):
        with pytest.raises(errors.RateLimitDeferred):
            limiter.acquire("key-a")
    restarted.acquire("key-b")  # another key, another allowance
    assert second.headroom("key-a")[:2] == (0, 3) and second.headroom("key-b")[:2] == (2, 3)
    clock.advance(seconds=60 * (1 + MARGIN) + 1)
    restarted.acquire("key-a")


def test_a_pause_cal_com_asks_for_holds_every_process(db, clock):
    first, second = (RateLimiter(clock, limit=120, window_seconds=60, max_wait_seconds=0,
                                 windows=DatabaseWindows(db)) for _ in range(2))
    first.acquire("key")
    first.observe("key", RateLimitInfo(limit=100, remaining=0, reset_seconds=30))
    with pytest.raises(errors.RateLimitDeferred) as held:
        second.acquire("key")
    assert held.value.retry_after == pytest.approx(30)
    assert second.headroom("key")[1] == 100  # the limit it learned too
    clock.advance(seconds=31)
    second.acquire("key")


def test_accounts_sharing_a_key_share_its_allowance(db, make_account, sealer):
    from connector.calcom.clients import allowance_of

    assert allowance_of("https://api.cal.com", "cal_a") == allowance_of("https://api.cal.com", "cal_a")
    assert allowance_of("https://api.cal.com", "cal_a") != allowance_of("https://api.cal.com", "cal_b")
    assert "cal_a" not in allowance_of("https://api.cal.com", "cal_a")
