from __future__ import annotations

import random
import threading
import time
from collections import Counter

from connector import errors
from connector.jobs import queue
from connector.jobs.retry import RetryPolicy
from connector.jobs.worker import Doorbell, Worker, WorkerConfig
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


class CountingWorker(Worker):
    """Counts the polls (``run_once``) its threads have finished."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.polls = 0
        self._count = threading.Lock()

    def run_once(self, worker_id=None):
        try:
            return super().run_once(worker_id)
        finally:
            with self._count:
                self.polls += 1


def _threads(db, clock, handler) -> CountingWorker:
    # Polls only when rung: a 60 s idle pause is longer than any test here.
    return CountingWorker(db, clock, {"converge": handler}, RetryPolicy(max_attempts=3),
                          WorkerConfig(concurrency=4, poll_interval_seconds=60, lease_seconds=60),
                          name="test")


def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_a_wake_with_nothing_due_costs_one_poll_not_one_per_thread(db, clock):
    worker = _threads(db, clock, Recorder())
    worker.start()
    try:
        assert _until(lambda: worker.polls == 4)  # each thread looks once as it starts
        worker.wake()
        assert _until(lambda: worker.polls >= 5)
        time.sleep(0.2)  # room for any other thread the wake might have stirred
        assert worker.polls == 5
    finally:
        worker.stop()


def test_one_wake_recruits_every_thread_for_a_burst(db, clock):
    """Four jobs that can only finish together: one wake must bring all four threads."""
    together = threading.Barrier(4, timeout=10)
    handler = Recorder()
    original = handler.run

    def run_together(job):
        together.wait()
        original(job)

    handler.run = run_together
    worker = _threads(db, clock, handler)
    worker.start()
    try:
        assert _until(lambda: worker.polls == 4)
        for index in range(4):
            queue.enqueue(db, "converge", now=clock.now(), serial_key=f"k{index}")
        worker.wake()
        assert _until(lambda: sum(handler.runs.values()) == 4)
    finally:
        worker.stop()
    assert not together.broken


def test_a_ring_with_no_thread_waiting_is_kept_for_the_next():
    doorbell = Doorbell()
    doorbell.ring()
    started = time.monotonic()
    assert doorbell.wait(5) is True
    assert time.monotonic() - started < 1
    assert doorbell.wait(0.01) is False  # one ring, one wake
