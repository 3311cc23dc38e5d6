"""The durable job queue: the one owner of every Job state transition.

    enqueue ──▶ queued ──claim_next──▶ running ──finish──▶ done
                  ▲                      │ ──bury────▶ dead ──replay──▶ queued
                  └────────retry─────────┘
                  (an expired lease is claimed again by any worker)

Claiming takes the oldest due job whose serial key has no other running job and
no older queued job, so jobs of one appointment never run at once or out of
order. On PostgreSQL the row is taken with ``FOR UPDATE SKIP LOCKED``; on SQLite
the whole claim runs in an IMMEDIATE transaction, which serialises claimers.
A finished, retried or buried job is matched on its lease owner too: a worker
whose lease expired and was taken over cannot overwrite the new owner's result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from peewee import SQL, Database, Expression, IntegrityError, Node, fn

from mappings.db import bulk_insert, database, is_postgres, write_transaction
from mappings.models import Job
from mappings.prepared import Prepared, Shaped

log = logging.getLogger("calsync.queue")

CONVERGE = "converge"
REFRESH_EVENT_TYPES = "refresh_event_types"
RECONCILE = "reconcile"
RECONCILE_SERIES = "reconcile_series"
SERIES_CHECKS = ("link", "compare")


def enqueue(
    db: Database,
    kind: str,
    *,
    now: datetime,
    payload: dict[str, Any] | None = None,
    run_at: datetime | None = None,
    serial_key: str | None = None,
    dedupe_key: str | None = None,
    account_id: str | None = None,
) -> int:
    """Queue a job and return its id.

    With a ``dedupe_key``, a job already queued under that key absorbs this one
    (its ``run_at`` moves earlier if this one is due sooner) and its id is returned.
    Call it inside the caller's transaction so intent and job commit together.
    """
    run_at = run_at or now
    with write_transaction(db):
        if dedupe_key is not None:
            existing = _queued_with(dedupe_key)
            if existing is not None:
                _pull_forward(existing, run_at, now)
                return existing.id
        try:
            with db.atomic():  # a savepoint: a racing insert of the same key fails alone
                job = Job.create(
                    kind=kind,
                    account_id=account_id,
                    serial_key=serial_key,
                    dedupe_key=dedupe_key,
                    payload=payload or {},
                    status="queued",
                    run_at=run_at,
                    created_at=now,
                    updated_at=now,
                )
            return int(job.id)
        except IntegrityError:
            existing = _queued_with(dedupe_key) if dedupe_key else None
            if existing is None:
                raise
            _pull_forward(existing, run_at, now)
            return existing.id


def enqueue_many(db: Database, jobs: list[dict[str, Any]], *, now: datetime) -> None:
    """Queue several jobs without dedupe keys in one statement (inside the caller's transaction).

    Each dict has ``kind`` and may have ``payload``, ``serial_key``, ``account_id``, ``run_at``.
    """
    rows = [{"kind": job["kind"], "payload": job.get("payload") or {},
             "serial_key": job.get("serial_key"), "account_id": job.get("account_id"),
             "status": "queued", "run_at": job.get("run_at", now), "created_at": now, "updated_at": now}
            for job in jobs]
    if any("dedupe_key" in job for job in jobs):
        raise ValueError("enqueue_many takes no dedupe keys; use enqueue to coalesce")
    bulk_insert(db, Job, rows)


def ensure_queued(db: Database, kind: str, *, dedupe_key: str, serial_key: str, account_id: str | None,
                  payload: dict[str, Any], now: datetime) -> None:
    """A job under ``dedupe_key``, due now, that starts only after the caller's transaction
    commits, so it sees whatever the caller wrote: call it inside that transaction.

    Cheaper than ``enqueue`` on a hot path (one or two statements, built once). A queued job
    found is touched, which on PostgreSQL locks its row until the caller commits; the claim
    skips locked rows, so that job cannot start and miss the caller's rows. One claimed
    meanwhile no longer matches and a new one is queued. (On SQLite writers are serialised.)
    """
    if not db.in_transaction():
        raise RuntimeError("ensure_queued belongs inside the transaction whose rows the job is for")
    target = getattr(db, "obj", db)
    stamp = Job.run_at.db_value(now)
    row = {"kind": kind, "payload": payload, "serial_key": serial_key, "dedupe_key": dedupe_key,
           "account_id": account_id, "status": "queued", "run_at": now, "created_at": now,
           "updated_at": now}
    for _ in range(10):
        if target.execute_sql(_TOUCH_QUEUED.replace("?", target.param), (stamp, stamp, stamp, dedupe_key)).rowcount:
            return
        if bulk_insert(db, Job, [row], returning=("id",), skip_conflicts=True):
            return
        # Another transaction queued it between the two statements: touch that one.
    raise RuntimeError(f"could not queue or touch the job {dedupe_key!r}")


# Due now if it was due later, and touched: on PostgreSQL the row stays locked until commit.
_TOUCH_QUEUED = ('UPDATE "job" SET "run_at" = CASE WHEN "run_at" > ? THEN ? ELSE "run_at" END, '
                 '"updated_at" = ? WHERE "dedupe_key" = ? AND "status" = \'queued\'')


def enqueue_converge(db: Database, appointment_id: str, account_id: str, *, now: datetime,
                     run_at: datetime | None = None) -> int:
    """Ask for ``converge(appointment)``; coalesces with a converge already waiting."""
    return enqueue(
        db,
        CONVERGE,
        now=now,
        run_at=run_at,
        payload={"appointment_id": appointment_id},
        serial_key=f"appointment:{appointment_id}",
        dedupe_key=f"converge:{appointment_id}",
        account_id=account_id,
    )


def _queued_with(dedupe_key: str) -> Job | None:
    return _QUEUED_WITH.first(dedupe_key=dedupe_key)


_QUEUED_WITH: Prepared[Job] = Prepared(lambda slot: Job.select().where(
    (Job.dedupe_key == slot("dedupe_key")) & (Job.status == "queued")).limit(1))


def _pull_forward(job: Job, run_at: datetime, now: datetime) -> None:
    if run_at < job.run_at:
        Job.update_by_id(job.id, run_at=run_at, updated_at=now)


def claim_next(
    db: Database,
    worker_id: str,
    *,
    now: datetime,
    lease_seconds: float,
    kinds: Iterable[str] | None = None,
    dedupe_key: str | None = None,
) -> Job | None:
    """Take the next due job for ``worker_id`` with a lease, or None if none is due; with
    ``dedupe_key``, only the job queued under that key (by the same rules)."""
    candidates = _CANDIDATES((None if kinds is None else tuple(kinds), dedupe_key is not None))
    values = {"now": now, "dedupe_key": dedupe_key}
    if not is_postgres(db) and not db.in_transaction() and not candidates.tuples(**values):
        # SQLite: a read first, which takes no lock. An idle worker's poll must not take the one
        # write lock, and hold up the writes of a request running its own job, to find nothing.
        # (``tuples`` reads to the end: a statement left open would keep its read transaction,
        # and the write transaction below would then fail on a stale snapshot instead of waiting.)
        return None
    with write_transaction(db):
        found = candidates.tuples(**values)
        if not found:
            return None
        job_id = found[0][0]
        try:
            with db.atomic():
                _TAKE.execute(id=job_id, owner=worker_id, now=now,
                              lease_until=now + timedelta(seconds=lease_seconds))
        except IntegrityError:
            # Another job of this serial key became running between our read and
            # write (its lease had just expired and was reclaimed): try again later.
            return None
        return Job.get_by_id(job_id)


def _candidates_query(slot: Callable[..., Node], shape: tuple[tuple[str, ...] | None, bool]) -> Any:
    """The claim's SELECT of the next due job's id, for these kinds (or any), by dedupe key or not."""
    kinds, by_dedupe_key = shape
    now = slot("now")
    other = Job.alias("other")
    busy_elsewhere = other.select(SQL("1")).where(
        (other.serial_key == Job.serial_key)
        & (other.id != Job.id)
        & (
            ((other.status == "running") & (other.lease_expires_at >= now))
            | ((other.status == "queued") & (other.id < Job.id))
        )
    )
    due = ((Job.status == "queued") & (Job.run_at <= now)) | (
        (Job.status == "running") & (Job.lease_expires_at < now)
    )
    query = (
        Job.select(Job.id)
        .where(due & (Job.serial_key.is_null() | ~fn.EXISTS(busy_elsewhere)))
        .order_by(Job.run_at, Job.id)
        .limit(1)
    )
    if kinds is not None:
        query = query.where(Job.kind.in_(list(kinds)))
    if by_dedupe_key:
        query = query.where(Job.dedupe_key == slot("dedupe_key"))
    if is_postgres(database):  # built per engine: the row stays locked until commit
        query = query.for_update(skip_locked=True)
    return query


_CANDIDATES: Shaped[Job] = Shaped(_candidates_query)

_TAKE: Prepared[Job] = Prepared(lambda slot: Job.update(
    status="running",
    lease_owner=slot("owner", Job.lease_owner),
    lease_expires_at=slot("lease_until", Job.lease_expires_at),
    attempts=Job.attempts + 1,
    updated_at=slot("now", Job.updated_at),
).where(Job.id == slot("id")))


def _owned(job_id: int | Node, worker_id: str | Node) -> Expression:
    return (Job.id == job_id) & (Job.status == "running") & (Job.lease_owner == worker_id)


def finish(db: Database, job_id: int, worker_id: str, *, now: datetime) -> bool:
    """Mark a job done; False if this worker no longer holds its lease."""
    with write_transaction(db):
        changed = _FINISH.execute(id=job_id, owner=worker_id, now=now)
    return changed == 1


_FINISH: Prepared[Job] = Prepared(lambda slot: Job.update(
    status="done", finished_at=slot("now", Job.finished_at), updated_at=slot("now", Job.updated_at),
    lease_expires_at=None,
).where(_owned(slot("id"), slot("owner"))))


def retry(db: Database, job_id: int, worker_id: str, *, now: datetime, run_at: datetime,
          error: str, counts: bool = True) -> bool:
    """Put a job back in the queue for ``run_at``; False if this worker lost its lease.

    ``counts=False`` gives the attempt back (a rate-limit pause is not a failure).

    If a job with the same dedupe key was queued meanwhile (a newer request for
    the same work), that job carries on with this one's attempts and delay, and
    this one is closed as superseded.
    """
    with write_transaction(db):
        job = Job.get_or_none(_owned(job_id, worker_id))
        if job is None:
            return False
        attempts = job.attempts if counts else max(job.attempts - 1, 0)
        waiting = _queued_with(job.dedupe_key) if job.dedupe_key else None
        if waiting is None:
            Job.update_by_id(job_id, status="queued", run_at=run_at, last_error=error,
                             updated_at=now, lease_expires_at=None, attempts=attempts)
            return True
        Job.update_by_id(waiting.id, run_at=max(run_at, waiting.run_at),
                         attempts=max(waiting.attempts, attempts), last_error=error, updated_at=now)
        Job.update_by_id(job_id, status="done", finished_at=now, updated_at=now,
                         lease_expires_at=None,
                         last_error=f"{error} (superseded by job {waiting.id})")
        return True


def bury(db: Database, job_id: int, worker_id: str, *, now: datetime, error: str) -> bool:
    """Give up on a job: it stays ``dead``, visible and replayable."""
    with write_transaction(db):
        changed: int = Job.update(
            status="dead", last_error=error, finished_at=now, updated_at=now,
            lease_expires_at=None,
        ).where(_owned(job_id, worker_id)).execute()
    return changed == 1


def replay(db: Database, job_id: int, *, now: datetime) -> Job:
    """Queue a dead job again with a fresh attempt count (an admin's retry).

    If the same work is already queued, the dead job stays dead and the waiting
    job (due now) is returned instead.
    """
    with write_transaction(db):
        job = Job.get_by_id(job_id)
        if job.status != "dead":
            raise ValueError(f"job {job_id} is {job.status}, not dead")
        waiting = _queued_with(job.dedupe_key) if job.dedupe_key else None
        if waiting is not None:
            _pull_forward(waiting, now, now)
            return Job.get_by_id(waiting.id)
        Job.update_by_id(job_id, status="queued", attempts=0, run_at=now, updated_at=now,
                         finished_at=None)
        return Job.get_by_id(job_id)


def enqueue_event_type_refresh(db: Database, account_id: str, *, now: datetime) -> int:
    return enqueue(
        db,
        REFRESH_EVENT_TYPES,
        now=now,
        payload={"account_id": account_id},
        serial_key=f"account:{account_id}:event_types",
        dedupe_key=f"refresh_event_types:{account_id}",
        account_id=account_id,
    )


def enqueue_reconcile(db: Database, account_id: str, *, full: bool, now: datetime) -> int:
    mode = "full" if full else "incremental"
    return enqueue(
        db,
        RECONCILE,
        now=now,
        payload={"account_id": account_id, "full": full},
        serial_key=f"account:{account_id}:reconcile",
        dedupe_key=f"reconcile:{account_id}:{mode}",
        account_id=account_id,
    )


def enqueue_series_check(db: Database, account_id: str, uid: str, why: str, *, now: datetime) -> int:
    """Ask for the recurring series ``uid`` belongs to to be compared with Cal.com's
    (Reconciler.reconcile_series). ``why``: "link" (only to learn which series: done once the
    appointment names one) or "compare" (an occurrence was cancelled, or calsync booked a series:
    what became of each occurrence)."""
    if why not in SERIES_CHECKS:
        raise ValueError(f"a series check is for one of {SERIES_CHECKS}, not {why!r}")
    return enqueue(db, RECONCILE_SERIES, now=now,
                   payload={"account_id": account_id, "uid": uid, "why": why},
                   serial_key=f"account:{account_id}:series", account_id=account_id,
                   dedupe_key=f"reconcile_series:{account_id}:{uid}:{why}")


def enqueue_webhook_registration(db: Database, account_id: str, *, now: datetime) -> int:
    return enqueue(db, "register_webhook", now=now, payload={"account_id": account_id},
                   serial_key=f"account:{account_id}:webhook", account_id=account_id,
                   dedupe_key=f"register_webhook:{account_id}")
