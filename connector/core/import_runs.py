"""Imports that do not fit in one request: a large file runs as a background job, and the
console's import is held for review after its dry run until the operator confirms it.

An ``ImportRun`` keeps the file until it has been imported, the rows done so far (the
job writes them after every chunk), and the report. The job writes the rows as the token
that sent them, with source ``import``, so a revoked token's import fails instead of
writing in its name.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from peewee import Database

from connector import errors
from connector.clock import Clock
from connector.core import accounts, importer
from connector.jobs import queue
from mappings.db import write_transaction
from mappings.models import ImportRun, Job, new_id
from mappings.times import to_api

log = logging.getLogger("calsync.import")

IMPORT_FILE = "import_file"
SOURCE = "import"


def as_importer(principal: accounts.Principal) -> accounts.Principal:
    """The principal an import writes as: the same token, its rows marked ``source: import``."""
    return replace(principal, source=SOURCE)


def hold(db: Database, principal: accounts.Principal, text: str, media_type: str, *,
         override_conflicts: bool, total: int, now: datetime, report: dict[str, Any] | None = None,
         status: str = "queued") -> ImportRun:
    """Keep a file for later: ``queued`` (its job is queued with it) or ``review`` (a dry run's)."""
    with write_transaction(db):
        run = ImportRun.create(id=new_id("imp"), account=principal.account_id, token_id=principal.token_id,
                               status=status, media_type=media_type, override_conflicts=override_conflicts,
                               content=text, total=total, report=report, created_at=now, updated_at=now)
        if status == "queued":
            _enqueue(db, run, now)
    return run


def confirm(db: Database, account_id: str, run_id: str, *, now: datetime, background: bool) -> ImportRun:
    """A reviewed import goes ahead: queued for the worker (``background``), or ``running`` for
    the caller to ``execute`` now; anything but a reviewed import is a 409."""
    with write_transaction(db):
        run = get(account_id, run_id)
        if run.status != "review":
            raise errors.Conflict(f"Import {run.id} is {run.status}; only a reviewed import can be confirmed.")
        ImportRun.update_by_id(run.id, status="queued" if background else "running", report=None,
                               updated_at=now)
        if background:
            _enqueue(db, run, now)
    return ImportRun.get_by_id(run.id)


def _enqueue(db: Database, run: ImportRun, now: datetime) -> None:
    queue.enqueue(db, IMPORT_FILE, now=now, payload={"import_id": run.id}, account_id=run.account_id,
                  serial_key=f"import:{run.account_id}", dedupe_key=f"import:{run.id}")


def get(account_id: str, run_id: str) -> ImportRun:
    run = ImportRun.get_or_none((ImportRun.id == run_id) & (ImportRun.account == account_id))
    if run is None:
        raise errors.NotFound(f"There is no import {run_id} in this account.")
    return run


def describe(run: ImportRun, *, reveal: bool = True) -> dict[str, Any]:
    """``GET /v1/imports/{id}``: state and progress; the report once done."""
    report = run.report
    if report is not None and not reveal:
        report = {**report, "rows": [_hidden(row) for row in report.get("rows", [])]}
    return {"id": run.id, "status": run.status, "total": run.total, "done": run.done,
            "override_conflicts": run.override_conflicts, "report": report, "error": run.error,
            "created_at": to_api(run.created_at), "finished_at": to_api(run.finished_at),
            "links": {"self": f"/v1/imports/{run.id}"}}


def _hidden(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a token that may not read sees it: no other appointment's id (RowResult.as_dict)."""
    if "conflicts_with" not in row:
        return row
    shown = {k: v for k, v in row.items() if k != "conflicts_with"}
    shown["errors"] = [{"field": "start_time", "message": importer.HIDDEN_CONFLICT}]
    return shown


class ImportHandler:
    """The worker's handler for ``import_file`` jobs."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock

    def run(self, job: Job) -> None:
        run = ImportRun.find_by_id(job.payload["import_id"])
        if run is None or run.status in ("done", "failed", "review"):
            return
        self.execute(run)

    def execute(self, run: ImportRun) -> None:
        """Import the held file, its progress written after every chunk. Run again after a crash,
        the rows done already answer ``unchanged`` (an import is a PUT per row): nothing twice."""
        try:
            principal = as_importer(accounts.principal_of_token(self.db, run.token_id, source=SOURCE))
            rows = importer.parse_file(run.content.encode(), run.media_type)
        except (errors.Unauthorized, errors.ValidationFailed, errors.UnsupportedMediaType) as refused:
            self.fail(run.id, str(refused))  # the token was revoked, or the file cannot be read
            return
        with write_transaction(self.db):
            ImportRun.update_by_id(run.id, status="running", done=0, updated_at=self.clock.now())

        def progress(done: int, total: int) -> None:
            with write_transaction(self.db):
                ImportRun.update_by_id(run.id, done=done, total=total, updated_at=self.clock.now())

        report = importer.run(self.db, principal, rows, override_conflicts=run.override_conflicts,
                              now_of=self.clock.now, progress=progress)
        with write_transaction(self.db):
            ImportRun.update_by_id(run.id, status="done", report=report.as_dict(), content="",
                                   done=len(rows), finished_at=self.clock.now(),
                                   updated_at=self.clock.now())
        log.info("import done", extra={"action": "import.done", "import_id": run.id, **report.counts})

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        if final:
            self.fail(job.payload["import_id"], str(error))

    def fail(self, run_id: str, why: str) -> None:
        with write_transaction(self.db):
            ImportRun.update_by_id(run_id, status="failed", error=why[:1000],
                                   finished_at=self.clock.now(), updated_at=self.clock.now())
