"""How converge work scales with worker processes on one PostgreSQL.

    .venv/bin/python bench/queue_scale.py --database-url postgresql://…/calsync_bench
        [--appointments 300] [--threads 4] [--latency-ms 100] [--processes 1,2,4]

I/O-bound jobs: each appointment's converge makes one create that the sandbox answers after
``--latency-ms`` (its rate limit lifted, calsync's too). For each process count, in the
same run: a fresh schema, the appointments put, then that many ``calsync worker``
processes with ``--threads`` threads each drain the queue; jobs/s is appointments booked
÷ the time from the moment the jobs fall due (the processes are up by then) to the last
booking. The ideal of one process is
threads ÷ latency. The database's public schema is emptied before each phase (give the
bench a database of its own). Target (issue 15): 1→4 processes ≥ 3×.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from sync_rate_limit import put_bulk, until_booked  # noqa: E402

from connector.clock import SystemClock  # noqa: E402
from connector.sandbox.app import create_sandbox  # noqa: E402
from connector.settings import SandboxSettings  # noqa: E402
from mappings.db import open_database, session  # noqa: E402
from mappings.migrations import migrate  # noqa: E402
from mappings.models import Job  # noqa: E402
from tests.support.servers import ServerThread  # noqa: E402

SECRET = "bench-secret-key"
STARTUP_SECONDS = 4  # the workers start (Python and imports) before the jobs fall due
CONTROL = "bench-control"


def seed(url: str, count: int, release_at) -> None:
    """The appointments put, their converge jobs due at ``release_at`` (the workers start first)."""
    clock = SystemClock()
    db = open_database(url)
    with session(db):
        db.execute_sql("DROP SCHEMA public CASCADE")
        db.execute_sql("CREATE SCHEMA public")
        migrate(db, clock.now())
        put_bulk(db, count, clock, clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1),
                 secret=SECRET)
        Job.update(run_at=release_at).where(Job.kind == "converge").execute()
    db.close()


def drain(url: str, calcom_url: str, processes: int, threads: int, count: int, timeout: float,
          release_at) -> float:
    """Jobs/s from the moment the jobs fall due (the workers are up by then) to the last booking."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    env.update(CALSYNC_DATABASE_URL=url, CALSYNC_SANDBOX_URL=calcom_url, CALSYNC_SECRET_KEY=SECRET,
               CALSYNC_CALCOM_RATE_LIMIT_PER_WINDOW="1000000", CALSYNC_WORKER_CONCURRENCY=str(threads),
               CALSYNC_WORKER_POLL_INTERVAL_SECONDS="0.05", CALSYNC_SCHEDULER_ENABLED="false",
               CALSYNC_LOG_LEVEL="error")
    db = open_database(url)
    with tempfile.TemporaryDirectory() as folder:
        workers = [subprocess.Popen([sys.executable, "-m", "connector.cli", "worker"], env=env, cwd=folder,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(processes)]
        try:
            time.sleep(max(0.0, (release_at - SystemClock().now()).total_seconds()))
            started = time.monotonic()
            booked, _ = until_booked(db, count, timeout, pause=0.05)
            elapsed = time.monotonic() - started
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
    db.close()
    if booked != count:
        raise SystemExit(f"only {booked}/{count} booked in {timeout} s with {processes} processes")
    return count / elapsed


def _release(url: str, release_at) -> None:
    db = open_database(url)
    with session(db):
        Job.update(run_at=release_at).where(Job.kind == "converge").execute()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database the bench may empty")
    parser.add_argument("--appointments", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    sandbox = create_sandbox(SystemClock(), SandboxSettings(weekly_hours="Mon-Sun 00:00-24:00",
                                                            rate_limit=1_000_000, control_token=CONTROL))
    ideal = args.threads / (args.latency_ms / 1000)
    print(f"queue_scale: {args.appointments} appointments, {args.threads} threads a process, "
          f"Cal.com latency {args.latency_ms} ms (one process's ideal {ideal:.0f} jobs/s)")
    rates: dict[int, float] = {}
    with ServerThread(sandbox.app) as calcom:
        httpx.put(f"{calcom.url}/_sandbox/faults", headers={"Authorization": f"Bearer {CONTROL}"},
                  json={"*": {"latency_ms": args.latency_ms}})
        for processes in (int(p) for p in args.processes.split(",")):
            release_at = SystemClock().now() + timedelta(seconds=30)  # a bound; moved nearer below
            seed(args.database_url, args.appointments, release_at)
            release_at = SystemClock().now() + timedelta(seconds=STARTUP_SECONDS)
            _release(args.database_url, release_at)
            rates[processes] = drain(args.database_url, calcom.url, processes, args.threads,
                                     args.appointments, args.timeout, release_at)
            print(f"  {processes} process{'es' if processes > 1 else ''}: {rates[processes]:6.1f} jobs/s "
                  f"({rates[processes] / (ideal * processes):.0%} of {processes} × ideal)")
    if 1 in rates and 4 in rates:
        print(f"  1→4 processes: {rates[4] / rates[1]:.2f}× (target ≥ 3×)")


if __name__ == "__main__":
    main()
