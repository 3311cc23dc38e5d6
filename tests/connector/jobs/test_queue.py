from __future__ import annotations

from datetime import timedelta

import pytest

from connector.jobs import queue
from mappings.models import Job


def _enqueue(db, clock, key: str, **kw) -> int:
    return queue.enqueue(db, "converge", now=clock.now(), serial_key=f"appointment:{key}",
                         dedupe_key=f"converge:{key}", payload={"appointment_id": key}, **kw)


def test_a_queued_job_absorbs_later_requests_for_the_same_work(db, clock):
    first = _enqueue(db, clock, "a", run_at=clock.now() + timedelta(seconds=30))
    second = _enqueue(db, clock, "a")
    assert first == second
    job = Job.get_by_id(first)
    assert job.run_at == clock.now()  # pulled forward to the sooner request
    assert Job.select().count() == 1


def test_claims_take_due_jobs_oldest_first_with_a_lease(db, clock):
    later = _enqueue(db, clock, "late", run_at=clock.now() + timedelta(minutes=5))
    first = _enqueue(db, clock, "a")
    second = _enqueue(db, clock, "b")
    claimed = queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60)
    assert claimed.id == first and claimed.status == "running" and claimed.attempts == 1
    assert claimed.lease_expires_at == clock.now() + timedelta(seconds=60)
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60).id == second
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60) is None
    for job_id in (first, second):
        assert queue.finish(db, job_id, "w1", now=clock.now())
    clock.advance(minutes=5)
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60).id == later


def test_jobs_of_one_serial_key_never_run_at_once_or_out_of_order(db, clock):
    running = _enqueue(db, clock, "a")
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60).id == running
    follow_up = _enqueue(db, clock, "a")  # a new edit while the first converge runs
    assert follow_up != running
    assert queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60) is None
    queue.finish(db, running, "w1", now=clock.now())
    assert queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60).id == follow_up


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off(db, clock):
    job_id = _enqueue(db, clock, "a")
    queue.claim_next(db, "dead-worker", now=clock.now(), lease_seconds=60)
    assert queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60) is None
    clock.advance(seconds=61)
    taken = queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60)
    assert taken.id == job_id and taken.attempts == 2 and taken.lease_owner == "w2"
    assert not queue.finish(db, job_id, "dead-worker", now=clock.now())
    assert queue.finish(db, job_id, "w2", now=clock.now())
    assert Job.get_by_id(job_id).status == "done"


def test_retry_puts_the_job_back_for_later(db, clock):
    job_id = _enqueue(db, clock, "a")
    queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60)
    assert queue.retry(db, job_id, "w1", now=clock.now(), run_at=clock.now() + timedelta(seconds=10),
                       error="CalcomUnavailable: down")
    job = Job.get_by_id(job_id)
    assert (job.status, job.last_error) == ("queued", "CalcomUnavailable: down")
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60) is None
    clock.advance(seconds=10)
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60).attempts == 2


def test_a_retry_hands_over_to_newer_waiting_work(db, clock):
    job_id = _enqueue(db, clock, "a")
    queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60)
    newer = _enqueue(db, clock, "a")
    retry_at = clock.now() + timedelta(seconds=30)
    assert queue.retry(db, job_id, "w1", now=clock.now(), run_at=retry_at, error="boom")
    assert Job.get_by_id(job_id).status == "done"
    waiting = Job.get_by_id(newer)
    assert (waiting.status, waiting.run_at, waiting.attempts) == ("queued", retry_at, 1)


def test_bury_and_replay(db, clock):
    job_id = _enqueue(db, clock, "a")
    queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60)
    assert queue.bury(db, job_id, "w1", now=clock.now(), error="gave up")
    assert Job.get_by_id(job_id).status == "dead"
    replayed = queue.replay(db, job_id, now=clock.now())
    assert (replayed.id, replayed.status, replayed.attempts) == (job_id, "queued", 0)
    with pytest.raises(ValueError, match="not dead"):
        queue.replay(db, job_id, now=clock.now())


def test_only_the_asked_kinds_are_claimed(db, clock):
    queue.enqueue(db, "other", now=clock.now())
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60, kinds=["converge"]) is None
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60, kinds=["other"]) is not None


def test_enqueue_many_fills_defaults_and_keeps_order(db, clock):
    queue.enqueue_many(db, [{"kind": "apply_webhook", "payload": {"n": n}, "serial_key": "k"}
                            for n in range(3)], now=clock.now())
    jobs = list(Job.select().order_by(Job.id))
    assert [j.payload["n"] for j in jobs] == [0, 1, 2]
    assert all(j.attempts == 0 and j.status == "queued" for j in jobs)
    with pytest.raises(ValueError):
        queue.enqueue_many(db, [{"kind": "x", "dedupe_key": "d"}], now=clock.now())


def test_a_poll_that_finds_nothing_takes_no_write_lock(db, clock):
    """Another writer holds SQLite's write lock (on PostgreSQL: a transaction open): an idle
    worker's claim answers None at once rather than waiting for the lock to find nothing."""
    import threading
    import time

    from mappings.db import session

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with session(db), db.atomic() as transaction:
            queue.enqueue(db, "converge", now=clock.now(), payload={}, serial_key="k")  # uncommitted
            held.set()
            release.wait(10)
            transaction.rollback()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    try:
        started = time.monotonic()
        assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60) is None
        assert time.monotonic() - started < 1
    finally:
        release.set()
        thread.join(10)
