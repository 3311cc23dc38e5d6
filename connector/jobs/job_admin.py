"""The queue as an admin sees it, from the API or the CLI: list jobs, replay a dead one."""

from __future__ import annotations

from datetime import datetime

from peewee import Database

from connector import errors
from connector.jobs import queue
from mappings.db import write_transaction
from mappings.models import Appointment, Job
from mappings.times import to_api

STATUSES = ("queued", "running", "done", "dead")


def describe(job: Job) -> dict:
    payload = {k: v for k, v in (job.payload or {}).items() if k != "body"}
    return {
        "id": job.id, "kind": job.kind, "status": job.status, "attempts": job.attempts,
        "run_at": to_api(job.run_at), "last_error": job.last_error, "payload": payload,
        "account_id": job.account_id,
        "created_at": to_api(job.created_at), "updated_at": to_api(job.updated_at),
        "finished_at": to_api(job.finished_at),
    }


def listing(account_id: str | None, status: str | None):
    """Newest first; every account's jobs when ``account_id`` is None (the CLI's view)."""
    query = Job.select()
    if account_id is not None:
        query = query.where(Job.account_id == account_id)
    if status is not None:
        query = query.where(Job.status == status)
    return query.order_by(Job.id.desc())


def retry(db: Database, job_id: int, *, account_id: str | None, now: datetime) -> Job:
    """Queue a dead job again; its appointment shows ``pending`` instead of ``dead`` meanwhile."""
    query = Job.select().where(Job.id == job_id)
    if account_id is not None:
        query = query.where(Job.account_id == account_id)
    job = query.first()
    if job is None:
        raise errors.NotFound(f"No job {job_id}.")
    if job.status != "dead":
        raise errors.Conflict(f"Job {job.id} is {job.status}; only dead jobs are retried.")
    with write_transaction(db):
        replayed = queue.replay(db, job.id, now=now)
        if job.kind == queue.CONVERGE:
            Appointment.update(sync_state="pending").where(
                (Appointment.id == job.payload["appointment_id"])
                & (Appointment.sync_state == "dead")).execute()
    return replayed
