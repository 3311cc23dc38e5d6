"""Workers: threads that claim jobs, run their handler, and record the outcome.

A handler runs outside any transaction (it calls Cal.com). When it raises, the
retry policy decides: back to the queue at a later ``run_at``, or ``dead``. The
handler hears of both through ``failed`` so it can show the state on its
appointment. A worker killed mid-job loses nothing: the lease expires and
another worker claims the job again.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from peewee import Database

from connector import metrics
from connector.clock import Clock
from connector.jobs import queue
from connector.jobs.retry import GiveUp, RetryPolicy, describe
from mappings.db import session
from mappings.models import Job

log = logging.getLogger("calsync.worker")


class Handler(Protocol):
    def run(self, job: Job) -> None:
        """Do the job; raise to have it retried or buried."""

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        """Told after a failed attempt; ``final`` when the job is now dead."""


@dataclass
class WorkerConfig:
    concurrency: int = 4
    poll_interval_seconds: float = 0.5
    lease_seconds: float = 120.0


class Doorbell:
    """Wakes one idle worker thread per ring, where an event would wake them all.

    A ring that finds no work then costs one poll, not one per thread (each poll is a query
    that holds the GIL while the request that rang is still answering). A thread that claims
    a job rings again, so a burst recruits the idle threads one by one. A ring with no thread
    idle is kept, up to ``limit``, for the next thread that would idle, so none is lost.
    """

    def __init__(self, limit: int = 1) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._rings = 0
        self._limit = limit

    def ring(self) -> None:
        with self._condition:
            self._rings = min(self._rings + 1, self._limit)
            self._condition.notify()

    def ring_all(self) -> None:
        with self._condition:
            self._rings = self._limit
            self._condition.notify_all()

    def wait(self, timeout: float) -> bool:
        """Until a ring or ``timeout`` seconds; True if it was rung."""
        with self._condition:
            if not self._rings:
                self._condition.wait(timeout)
            if self._rings:
                self._rings -= 1
                return True
            return False


class Worker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        handlers: Mapping[str, Handler],
        policy: RetryPolicy,
        config: WorkerConfig | None = None,
        *,
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.handlers = dict(handlers)
        self.policy = policy
        self.config = config or WorkerConfig()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.rng = rng or random.Random()
        self._doorbell = Doorbell()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Called after every job, whatever its outcome: wakes requests waiting for it (jobs/settled.py).
        self.after_job: Callable[[], None] | None = None

    # --- one job --------------------------------------------------------------

    def run_once(self, worker_id: str | None = None) -> bool:
        """Claim and run one due job; False if none was due."""
        worker_id = worker_id or f"{self.name}:0"
        with session(self.db):
            job = queue.claim_next(
                self.db, worker_id, now=self.clock.now(),
                lease_seconds=self.config.lease_seconds, kinds=self.handlers.keys(),
            )
            if job is None:
                return False
            # Perhaps more is due: an idle thread looks too, and if it finds some, rings for the next.
            self._doorbell.ring()
            self._run(job, worker_id)
            if self.after_job is not None:
                self.after_job()
            return True

    def run_now(self, dedupe_key: str) -> bool:
        """Claim and run the job queued under ``dedupe_key`` in the calling thread, if it is due and
        no one holds it: a request that waits for its own change (``Prefer: wait``) does the work
        instead of waiting for a worker thread to. Claimed like any job, so it runs once."""
        worker_id = f"{self.name}:request:{threading.get_ident()}"
        with session(self.db):
            job = queue.claim_next(self.db, worker_id, now=self.clock.now(),
                                   lease_seconds=self.config.lease_seconds, kinds=self.handlers.keys(),
                                   dedupe_key=dedupe_key)
            if job is None:
                return False
            self._run(job, worker_id)
            if self.after_job is not None:
                self.after_job()
            return True

    def _run(self, job: Job, worker_id: str) -> None:
        metrics.job_queue_latency.labels(job.kind).observe(
            max(0.0, (self.clock.now() - job.run_at).total_seconds()))
        started = time.perf_counter()
        outcome = self._run_handler(job, worker_id)
        metrics.job_runs.labels(job.kind, outcome).observe(time.perf_counter() - started)

    def _run_handler(self, job: Job, worker_id: str) -> str:
        """Run the job's handler and settle the job; answers done, retry or dead."""
        handler = self.handlers[job.kind]
        context = {"action": "job.run", "job_id": job.id, "kind": job.kind,
                   "attempt": job.attempts, "serial_key": job.serial_key}
        if job.attempts > self.policy.max_attempts:
            # Its lease expired more often than it may be tried: a job that kills its worker.
            error = RuntimeError("the job's lease expired on every attempt")
            queue.bury(self.db, job.id, worker_id, now=self.clock.now(), error=describe(error))
            self._tell(handler, job, error, final=True)
            log.error("job dead", extra={**context, "action": "job.dead", "error": describe(error)})
            return "dead"
        try:
            handler.run(job)
        except Exception as error:  # noqa: BLE001 — every failure is retried or buried, never lost
            decision = self.policy.decide(error, job.attempts, self.clock.now(), self.rng)
            if isinstance(decision, GiveUp):
                queue.bury(self.db, job.id, worker_id, now=self.clock.now(), error=decision.reason)
                self._tell(handler, job, error, final=True)
                log.error("job dead", extra={**context, "action": "job.dead", "error": decision.reason})
                return "dead"
            queue.retry(self.db, job.id, worker_id, now=self.clock.now(), run_at=decision.at,
                        error=decision.reason, counts=decision.counts)
            self._tell(handler, job, error, final=False)
            log.info("job will retry", extra={**context, "action": "job.retry",
                                              "error": decision.reason,
                                              "run_at": decision.at.isoformat()})
            return "retry"
        if not queue.finish(self.db, job.id, worker_id, now=self.clock.now()):
            log.warning("lease lost before finish", extra={**context, "action": "job.lease_lost"})
            return "lease_lost"
        log.debug("job done", extra={**context, "action": "job.done"})
        return "done"

    def _tell(self, handler: Handler, job: Job, error: BaseException, final: bool) -> None:
        try:
            handler.failed(job, error, final)
        except Exception:  # noqa: BLE001 — the queue already holds the truth
            log.exception("failure hook raised", extra={"action": "job.hook_error", "job_id": job.id})

    # --- threads --------------------------------------------------------------

    def wake(self) -> None:
        """New work was queued: one idle thread looks now instead of at its next poll."""
        self._doorbell.ring()

    def start(self, concurrency: int | None = None) -> None:
        self._stop.clear()
        count = concurrency or self.config.concurrency
        # Rings kept while every thread is busy: one each is enough for them all to look again
        # (each thread looks as it starts, so rings from before start are not needed).
        self._doorbell = Doorbell(limit=count)
        for index in range(count):
            thread = threading.Thread(
                target=self._loop, args=(f"{self.name}:{index}",), name=f"calsync-worker-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info("workers started", extra={"action": "worker.start", "threads": len(self._threads)})

    def _loop(self, worker_id: str) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once(worker_id)
            except Exception:  # noqa: BLE001 — a database hiccup must not kill the thread
                log.exception("worker loop error", extra={"action": "worker.error"})
                ran = False
            if not ran:
                self._doorbell.wait(self.config.poll_interval_seconds)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._doorbell.ring_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        log.info("workers stopped", extra={"action": "worker.stop"})
