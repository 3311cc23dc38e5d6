from __future__ import annotations

import random
import threading
from collections import Counter

from connector import errors
from connector.jobs import queue
from connector.jobs.retry import RetryPolicy
from connector.jobs.worker import Worker, WorkerConfig
from mappings.db import session
from mappings.models import Job


class Recorder:
    def __init__(self, fail_times: int = 0, error: Exception | None = None):
        self.runs: Counter[int] = Counter()
        self.failures: list[tuple[int, bool]] = []
        self.fail_times = fail_times
        self.error = error or errors.CalcomUnavailable("down")
        self.lock = threading.Lock()

    def run(self, job):
        with self.lock:
            self.runs[job.id] += 1
            attempt = self.runs[job.id]
        if attempt <= self.fail_times:
            raise self.error

    def failed(self, job, error, final):
        self.failures.append((job.id, final))


def _worker(db, clock, handler, **policy) -> Worker:
    return Worker(db, clock, {"converge": handler}, RetryPolicy(**{"max_attempts": 3, **policy}),
                  WorkerConfig(poll_interval_seconds=0.01, lease_seconds=60),
                  name="test", rng=random.Random(7))


def test_a_failing_job_is_retried_with_backoff_then_succeeds(db, clock):
    handler = Recorder(fail_times=1)
    worker = _worker(db, clock, handler, base_seconds=10, jitter=0)
    job_id = queue.enqueue(db, "converge", now=clock.now())
    assert worker.run_once()
    job = Job.get_by_id(job_id)
    assert job.status == "queued" and "CalcomUnavailable" in job.last_error
    assert (job.run_at - clock.now()).total_seconds() == 10  # base · 2^0, no jitter
    assert not worker.run_once()  # not due yet
    clock.advance(seconds=10)
    assert worker.run_once()
    assert Job.get_by_id(job_id).status == "done"
    assert handler.failures == [(job_id, False)]


def test_a_job_is_dead_after_the_configured_attempts(db, clock):
    handler = Recorder(fail_times=99)
    worker = _worker(db, clock, handler, base_seconds=1, max_seconds=1, jitter=0)
    job_id = queue.enqueue(db, "converge", now=clock.now())
    for _ in range(3):
        assert worker.run_once()
        clock.advance(seconds=2)
    job = Job.get_by_id(job_id)
    assert job.status == "dead" and job.last_error.startswith("gave up after 3 attempts")
    assert handler.failures[-1] == (job_id, True)


def test_rate_limits_wait_at_least_until_the_reset(db, clock):
    handler = Recorder(fail_times=1, error=errors.CalcomRateLimited("slow down", retry_after=45))
    worker = _worker(db, clock, handler, base_seconds=1, jitter=0)
    job_id = queue.enqueue(db, "converge", now=clock.now())
    worker.run_once()
    job = Job.get_by_id(job_id)
    assert 45 <= (job.run_at - clock.now()).total_seconds() <= 45 * 1.2
    assert job.attempts == 0  # a rate-limit pause does not spend an attempt


def test_a_killed_worker_loses_nothing(db, clock):
    handler = Recorder()
    job_id = queue.enqueue(db, "converge", now=clock.now())
    queue.claim_next(db, "killed-worker", now=clock.now(), lease_seconds=60)  # then it dies
    worker = _worker(db, clock, handler)
    assert not worker.run_once()
    clock.advance(seconds=61)
    assert worker.run_once()
    assert Job.get_by_id(job_id).status == "done" and handler.runs[job_id] == 1


def test_many_workers_never_run_one_job_twice(db, clock):
    """Hundreds of jobs, eight worker threads with their own connections."""
    handler = Recorder()
    total = 300
    for index in range(total):
        key = f"k{index % 120}"  # several jobs share a serial key
        queue.enqueue(db, "converge", now=clock.now(), serial_key=key, payload={"n": index})
    workers = [_worker(db, clock, handler) for _ in range(8)]
    concurrent_per_key: Counter[str] = Counter()
    overlap = []
    guard = threading.Lock()

    original = handler.run

    def tracking_run(job):
        with guard:
            concurrent_per_key[job.serial_key] += 1
            if concurrent_per_key[job.serial_key] > 1:
                overlap.append(job.serial_key)
        try:
            original(job)
        finally:
            with guard:
                concurrent_per_key[job.serial_key] -= 1

    handler.run = tracking_run

    def drain(worker: Worker, index: int) -> None:
        idle = 0
        while idle < 20:
            if worker.run_once(f"w{index}"):
                idle = 0
            else:
                idle += 1

    threads = [threading.Thread(target=drain, args=(w, i)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with session(db):
        statuses = Counter(job.status for job in Job.select())
    assert statuses == {"done": total}
    assert sum(handler.runs.values()) == total and max(handler.runs.values()) == 1
    assert overlap == []


def test_a_waiting_request_runs_its_own_job_once_and_only_its_own(db, clock):
    """run_now: the request that waits for its change claims that job (by its dedupe key) like
    any worker would; it is run once, a second claim finds nothing, and other jobs are left."""
    handler = Recorder()
    worker = _worker(db, clock, handler)
    mine = queue.enqueue(db, "converge", now=clock.now(), payload={"appointment_id": "apt_1"},
                         serial_key="appointment:apt_1", dedupe_key="converge:apt_1")
    other = queue.enqueue(db, "converge", now=clock.now(), payload={"appointment_id": "apt_2"},
                          serial_key="appointment:apt_2", dedupe_key="converge:apt_2")
    assert worker.run_now("converge:apt_1") is True
    assert worker.run_now("converge:apt_1") is False
    assert handler.runs == {mine: 1}
    assert (Job.get_by_id(mine).status, Job.get_by_id(other).status) == ("done", "queued")
    held = queue.claim_next(db, "elsewhere", now=clock.now(), lease_seconds=60)  # a worker took it
    assert held is not None and held.id == other
    assert worker.run_now("converge:apt_2") is False  # running elsewhere: the request just waits
