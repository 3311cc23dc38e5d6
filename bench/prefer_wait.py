"""How long ``PUT`` + ``Prefer: wait`` takes to answer ``active``, against the bare sandbox create it makes.

    .venv/bin/python bench/prefer_wait.py [--repeats 30] [--latency-ms 0,300]

The sandbox and calsync (API, worker and scheduler in one process, as ``calsync serve``
runs) each on a loopback port. For each simulated Cal.com latency, in the same run: the
baseline is ``POST /v2/bookings`` sent straight to the sandbox; then ``PUT
/v1/appointments/{id}`` with ``Prefer: wait=10`` until it answers ``active``. Prints the
medians, the ratio and the time calsync adds. Targets (issue 15): median ≤ 1.1× the baseline
at 300 ms, and ≤ 15 ms added at 0 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector import logs  # noqa: E402
from connector.app import create_app  # noqa: E402
from connector.clock import SystemClock  # noqa: E402
from connector.core import accounts  # noqa: E402
from connector.sandbox.app import create_sandbox  # noqa: E402
from connector.serve import freeze_startup_heap  # noqa: E402
from connector.settings import SandboxSettings, Settings  # noqa: E402
from mappings.db import open_database, session  # noqa: E402
from mappings.migrations import migrate  # noqa: E402
from mappings.sealing import Sealer  # noqa: E402
from tests.support.servers import ServerThread  # noqa: E402

CONTROL = "bench-control"
# The baseline books as another sandbox user: calsync's reconciler would import its bookings
# into the account being measured, work no CRM create causes.
BASELINE_KEY = accounts.SANDBOX_KEY_PREFIX + "bench-baseline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--latency-ms", default="0,300")
    args = parser.parse_args()
    settings = Settings()
    logs.configure(settings.log.level, settings.log.format)  # as `calsync serve` logs, before the MCP SDK's rich handler
    clock = SystemClock()
    sandbox = create_sandbox(clock, SandboxSettings(weekly_hours="Mon-Sun 00:00-24:00", rate_limit=100_000,
                                                    control_token=CONTROL))
    with tempfile.TemporaryDirectory() as folder, ServerThread(sandbox.app) as calcom:
        settings = settings.replace(database={"url": f"sqlite:///{folder}/bench.db"},
                                      calcom={"rate_limit_per_window": 100_000})
        db = open_database(settings.database.url)
        with session(db):
            migrate(db, clock.now())
            account, token = accounts.create_account(
                db, accounts.AccountChanges(name="bench", event_type_id=123456), Sealer(None), now=clock.now())
        app = create_app(settings, clock=clock, db=db, sandbox_url=calcom.url, run_background=True)
        freeze_startup_heap()  # as calsync serve does
        with ServerThread(app) as calsync, httpx.Client(timeout=30) as http:
            slot = [clock.now().replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)]

            def next_start() -> str:  # a day apart: never a taken slot, never across midnight
                slot[0] += timedelta(days=1)
                return slot[0].isoformat()

            def bare() -> None:
                answer = http.post(f"{calcom.url}/v2/bookings", headers={
                    "Authorization": f"Bearer {BASELINE_KEY}", "cal-api-version": "2024-08-13"}, json={
                    "start": next_start(), "eventTypeId": 123456,
                    "attendee": {"name": "Bench", "email": "bench@example.org", "timeZone": "UTC"}})
                assert answer.status_code == 201, answer.text

            counter = [0]

            def through_calsync() -> None:
                counter[0] += 1
                answer = http.put(f"{calsync.url}/v1/appointments/bench-{counter[0]}", headers={
                    "Authorization": f"Bearer {token}", "Prefer": "wait=10"}, json={
                    "title": "Bench", "attendee_name": "Bench", "attendee_email": "bench@example.org",
                    "start_time": next_start()})
                assert answer.status_code == 201 and answer.json()["status"] == "active", answer.text

            print(f"{'latency':>8} {'bare create ms':>15} {'PUT+wait ms':>12} {'ratio':>6} {'added ms':>9}")
            for latency in (int(value) for value in args.latency_ms.split(",")):
                http.put(f"{calcom.url}/_sandbox/faults", headers={"Authorization": f"Bearer {CONTROL}"},
                         json={"POST /v2/bookings": {"latency_ms": latency}})
                medians = []
                for run in (bare, through_calsync):
                    run()  # warm
                    samples = []
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        run()
                        samples.append((time.perf_counter() - started) * 1000)
                    medians.append(statistics.median(samples))
                base, ours = medians
                print(f"{latency:>6}ms {base:>15.1f} {ours:>12.1f} {ours / base:>6.2f} {ours - base:>9.1f}")


if __name__ == "__main__":
    main()
