"""How close calsync gets to Cal.com's rate limit without going over it.

A bulk of appointments is booked through the sandbox, served by uvicorn on
127.0.0.1, which enforces a scaled limit (120 requests per 6 s, then a 6 s
block — Cal.com's 120 a minute and 60 s block, ten times faster). Printed:
achieved requests/s (served, not 429) ÷ allowed requests/s over the complete
windows of the run, and the 429s. The baseline, in the same run, is the same load with calsync's
limiter switched off.

    .venv/bin/python bench/sync_rate_limit.py [--appointments 480] [--workers 8] [--database-url URL]

A third phase runs calsync as a deployment would, on one key: ``calsync serve`` and three
``calsync worker`` processes on one database (SQLite, or ``--database-url`` for PostgreSQL),
each with its own limiter object and one allowance between them (the rate window lives in
the database). Target: >= 95 % of the allowed rate and <= 1 % 429s, in the same run as the
single-process figure.

Bounded: each phase stops when every appointment is booked or after --timeout s.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.app import build_runtime  # noqa: E402
from connector.clock import SystemClock  # noqa: E402
from connector.core import accounts, appointments  # noqa: E402
from connector.inputs import AppointmentInput  # noqa: E402
from connector.sandbox.app import create_sandbox  # noqa: E402
from connector.settings import SandboxSettings, Settings  # noqa: E402
from mappings.db import open_database, session  # noqa: E402
from mappings.migrations import migrate  # noqa: E402
from mappings.models import Appointment  # noqa: E402
from mappings.sealing import Sealer  # noqa: E402
from mappings.times import to_api  # noqa: E402
from tests.support.servers import ServerThread, free_port  # noqa: E402

LIMIT, WINDOW = 120, 6
SECRET = "bench-secret-key"


class Recorder:
    """Plain ASGI: the time and status of every /v2 request the sandbox answered."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[float, int]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v2/"):
            return await self.app(scope, receive, send)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                with self.lock:
                    self.seen.append((time.monotonic(), message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


def run_phase(label: str, count: int, workers: int, limit_per_window: int | None,
              timeout: float) -> dict:
    clock = SystemClock()
    sandbox, recorder = recorded_sandbox(clock)
    with tempfile.TemporaryDirectory() as folder, ServerThread(recorder) as calcom:
        settings = Settings().replace(
            database={"url": f"sqlite:///{folder}/bench.db"},
            calcom={"rate_limit_per_window": limit_per_window or LIMIT,
                    "rate_limit_window_seconds": WINDOW},
            worker={"concurrency": workers, "poll_interval_seconds": 0.01,
                    "backoff_base_seconds": 0.5, "backoff_max_seconds": 5},
            scheduler={"enabled": False}, security={"secret_key": SECRET})
        _seed(settings.database.url, count, clock)
        db = open_database(settings.database.url)
        runtime = build_runtime(settings, clock=clock, db=db, sandbox_url=calcom.url)
        if limit_per_window is None:
            runtime.clients.limiter = None  # the baseline: no pacing at all, not even from headers
        runtime.start_background()
        try:
            booked, failures = until_booked(db, count, timeout)
        finally:
            runtime.close()
    return _figures(label, recorder.seen, booked, count, failures)


def until_booked(db, count: int, timeout: float, pause: float = 0.2) -> tuple[int, list]:
    """Wait until every appointment is active or ``timeout`` passes; the count, and a few failures."""
    started = time.monotonic()
    booked = 0
    while time.monotonic() - started < timeout:
        with session(db):
            booked = Appointment.select().where(Appointment.status == "active").count()
        if booked == count:
            break
        time.sleep(pause)
    with session(db):
        failures = [row.last_error for row in Appointment.select().where(Appointment.status != "active").limit(3)]
    return booked, failures


def _seed(db_url: str, count: int, clock) -> None:
    db = open_database(db_url)
    with session(db):
        migrate(db, clock.now())
        put_bulk(db, count, clock, clock.now() + timedelta(days=1))
    db.close()


def put_bulk(db, count: int, clock, first, secret: str = SECRET) -> None:
    """An account and ``count`` appointments put half an hour apart from ``first``, each with its
    converge job (inside the caller's session)."""
    account, _ = accounts.create_account(
        db, accounts.AccountChanges(name="bench", event_type_id=123456), Sealer(secret), now=clock.now())
    principal = accounts.Principal(account.id, "tok", "bench", frozenset(accounts.SCOPES))
    for index in range(count):
        data = AppointmentInput.model_validate({
            "title": f"Bulk {index}", "attendee_name": "Bulk Attendee",
            "attendee_email": f"bulk{index}@example.org",
            "start_time": to_api(first + timedelta(minutes=30 * index))}, strict=False)
        appointments.put(db, principal, f"bulk-{index}", data, now=clock.now())


def recorded_sandbox(clock) -> tuple[Any, Recorder]:
    """The sandbox with Cal.com's limit of LIMIT a WINDOW, and the recorder of what it answered."""
    sandbox = create_sandbox(clock, SandboxSettings(
        weekly_hours="Mon-Sun 00:00-24:00", rate_limit=LIMIT, rate_limit_window_seconds=WINDOW,
        rate_limit_block_seconds=WINDOW))
    return sandbox, Recorder(sandbox.app)


def run_processes(label: str, count: int, threads: int, workers: int, timeout: float,
                  database_url: str | None) -> dict:
    """``calsync serve`` plus ``workers`` ``calsync worker`` processes on one database and key."""
    clock = SystemClock()
    sandbox, recorder = recorded_sandbox(clock)
    with tempfile.TemporaryDirectory() as folder, ServerThread(recorder) as calcom:
        url = database_url or f"sqlite:///{folder}/bench.db"
        if database_url:
            _reset(database_url)
        _seed(url, count, clock)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
        env.update(CALSYNC_DATABASE_URL=url, CALSYNC_SANDBOX_URL=calcom.url, CALSYNC_SECRET_KEY=SECRET,
                   CALSYNC_CALCOM_RATE_LIMIT_PER_WINDOW=str(LIMIT),
                   CALSYNC_CALCOM_RATE_LIMIT_WINDOW_SECONDS=str(WINDOW),
                   CALSYNC_WORKER_CONCURRENCY=str(threads), CALSYNC_WORKER_POLL_INTERVAL_SECONDS="0.01",
                   CALSYNC_WORKER_BACKOFF_BASE_SECONDS="0.5", CALSYNC_WORKER_BACKOFF_MAX_SECONDS="5",
                   CALSYNC_SCHEDULER_ENABLED="false", CALSYNC_LOG_LEVEL="error")
        command = [sys.executable, "-m", "connector.cli"]
        processes = [subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", str(free_port())],
                                      env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        processes += [subprocess.Popen([*command, "worker"], env=env, cwd=folder,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(workers)]
        db = open_database(url)
        try:
            booked, failures = until_booked(db, count, timeout)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)
    return _figures(label, recorder.seen, booked, count, failures)


def _reset(database_url: str) -> None:
    """An empty schema on a PostgreSQL given by URL (the bench owns it)."""
    db = open_database(database_url)
    with session(db):
        db.execute_sql("DROP SCHEMA public CASCADE")
        db.execute_sql("CREATE SCHEMA public")
    db.close()


def _figures(label: str, seen: list[tuple[float, int]], booked: int, count: int, failures: list) -> dict:
    t0, t_last = seen[0][0], seen[-1][0]
    windows = max(int((t_last - t0) // WINDOW), 1)
    # Served requests only: a refused one spends nothing useful.
    in_full_windows = sum(1 for at, status in seen if at < t0 + windows * WINDOW and status != 429)
    refused = sum(1 for _, status in seen if status == 429)
    achieved = in_full_windows / (windows * WINDOW)
    return {"label": label, "booked": booked, "failures": failures, "count": count, "requests": len(seen),
            "refused": refused, "seconds": t_last - t0, "achieved": achieved,
            "ratio": achieved / (LIMIT / WINDOW)}


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the figures are the output; failures are listed
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appointments", type=int, default=480)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without a limiter")
    parser.add_argument("--database-url", help="PostgreSQL for the many-process phase (its public "
                                               "schema is emptied); SQLite in a temporary folder if absent")
    args = parser.parse_args()
    allowed = LIMIT / WINDOW
    print(f"sync_rate_limit: {args.appointments} appointments, {args.workers} worker threads, "
          f"sandbox limit {LIMIT} requests / {WINDOW} s ({allowed:.1f}/s allowed) then a {WINDOW} s block")
    phases = [("calsync's limiter", LIMIT)]
    if not args.no_baseline:
        phases.append(("no limiter (baseline)", None))
    results = [run_phase(label, args.appointments, args.workers, limit, args.timeout) for label, limit in phases]
    results.append(run_processes("serve + 3 workers", args.appointments, max(1, args.workers // 4), 3,
                                 args.timeout, args.database_url))
    for result in results:
        label = result["label"]
        share = 100 * result["refused"] / max(result["requests"], 1)
        print(f"  {label:<22} booked {result['booked']}/{result['count']} in {result['seconds']:.1f} s; "
              f"{result['requests']} requests; achieved {result['achieved']:.2f}/s = "
              f"{result['ratio']:.3f} of allowed; 429s: {result['refused']} ({share:.2f} %)")
        if result["failures"]:
            print(f"    not booked, e.g.: {result['failures']}")


if __name__ == "__main__":
    main()
