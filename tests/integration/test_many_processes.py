"""Many calsync processes on one PostgreSQL: two ``calsync serve`` and two ``calsync worker``
processes, the sandbox (shared) injecting faults, one serve and one worker SIGKILLed mid-run
and restarted. Judged appointment by appointment against what the sandbox holds.

Bounded: about 40 s; it stops by itself if the processes never converge (a failure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connector.clock import SystemClock
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from mappings.db import session
from mappings.models import Appointment, ReconcileRun
from tests.support.factories import CONTROL, CONTROL_TOKEN, SECRET_KEY
from tests.support.servers import ServerThread, free_port, wait_for

pytestmark = pytest.mark.integration

APPOINTMENTS = 24
RECONCILE_SECONDS = 2


class Fleet:
    """The calsync processes of one deployment, started and killed by name."""

    def __init__(self, env: dict[str, str], cwd) -> None:
        self.env, self.cwd = env, cwd
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str) -> None:
        argv = [sys.executable, "-m", "connector.cli"]
        if name.startswith("serve"):
            self.ports.setdefault(name, free_port())
            argv += ["serve", "--host", "127.0.0.1", "--port", str(self.ports[name])]
        else:
            argv += ["worker"]
        log = (self.cwd / f"{name}.log").open("a")
        self.processes[name] = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=log,
                                                stderr=subprocess.STDOUT)
        log.close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_serving(self, name: str) -> None:
        def up() -> bool:
            try:
                return httpx.get(f"{self.url(name)}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=20, what=f"{name} to answer")

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_two_serves_and_two_workers_converge_through_faults_and_kills(db, engine, make_account, tmp_path):
    if engine != "postgres":
        pytest.skip("many processes share one PostgreSQL; SQLite serves one process")
    sandbox = create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000, control_token=CONTROL_TOKEN,
                                                            weekly_hours="Mon-Sun 00:00-24:00"))
    account, token = make_account()
    auth = {"Authorization": f"Bearer {token}"}
    with ServerThread(sandbox.app) as calcom:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
        env.update(CALSYNC_DATABASE_URL=db.url, CALSYNC_SANDBOX_URL=calcom.url, CALSYNC_SECRET_KEY=SECRET_KEY,
                   CALSYNC_WORKER_CONCURRENCY="2", CALSYNC_WORKER_POLL_INTERVAL_SECONDS="0.05",
                   CALSYNC_WORKER_BACKOFF_BASE_SECONDS="0.2", CALSYNC_WORKER_BACKOFF_MAX_SECONDS="1",
                   CALSYNC_WORKER_LEASE_SECONDS="3",
                   CALSYNC_SCHEDULER_RECONCILE_SECONDS=str(RECONCILE_SECONDS), CALSYNC_LOG_LEVEL="error")
        fleet = Fleet(env, tmp_path)
        httpx.put(f"{calcom.url}/_sandbox/faults", headers=CONTROL,
                  json={"*": {"error_rate": 0.15, "drop_rate": 0.1},
                        # a create that commits and loses its answer, twice, whatever the dice say
                        "POST /v2/bookings": {"error_rate": 0.15, "drop_rate": 0.1, "drop_next": 2}})
        started = time.monotonic()
        try:
            for name in ("serve-a", "serve-b", "worker-a", "worker-b"):
                fleet.start(name)
            fleet.wait_serving("serve-a")
            fleet.wait_serving("serve-b")
            first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
            wanted: dict[str, dict] = {}
            for n in range(APPOINTMENTS):
                body = {"title": f"Call {n}", "attendee_name": f"Person {n}",
                        "attendee_email": f"p{n}@example.org",
                        "start_time": (first + timedelta(hours=n)).isoformat()}
                serve = "serve-a" if n % 2 and n < APPOINTMENTS // 2 else "serve-b"  # serve-a is killed
                answer = httpx.put(f"{fleet.url(serve)}/v1/appointments/crm-{n}", json=body, headers=auth, timeout=10)
                assert answer.status_code == 201, answer.text
                wanted[f"crm-{n}"] = body
                if n == APPOINTMENTS // 3:
                    fleet.kill("worker-a")  # mid-run, jobs in its hands
                if n == APPOINTMENTS // 2:
                    fleet.kill("serve-a")
                    fleet.start("worker-a")
            # Edits through the surviving API while the killed serve comes back.
            for n in range(0, APPOINTMENTS, 3):
                moved = (first + timedelta(hours=n, days=3)).isoformat()
                answer = httpx.patch(f"{fleet.url('serve-b')}/v1/appointments/crm-{n}", headers=auth, timeout=10,
                                     json={"start_time": moved, "title": f"Call {n} moved"})
                assert answer.status_code == 200, answer.text
                wanted[f"crm-{n}"].update(start_time=moved, title=f"Call {n} moved")
            fleet.start("serve-a")
            fleet.wait_serving("serve-a")
            time.sleep(3)
            injected = httpx.get(f"{calcom.url}/_sandbox/state", headers=CONTROL).json()["injected"]
            assert injected["error"] > 0 and injected["drop"] > 0, injected  # the faults did happen
            httpx.delete(f"{calcom.url}/_sandbox/faults", headers=CONTROL)  # the outage ends
            wait_for(lambda: _converged(db, account.id, wanted, sandbox), timeout=60, interval=0.5,
                     what="every appointment to converge")
            elapsed = time.monotonic() - started
        finally:
            fleet.stop_all()
    with session(db):
        for external_id, body in wanted.items():
            row = Appointment.get((Appointment.account == account.id) & (Appointment.external_id == external_id))
            held = sandbox.calendar.bookings[row.booking_uid]
            assert (held.status, held.start) == ("accepted", row.start_time), external_id
            assert row.title == body["title"] and row.start_time == datetime.fromisoformat(body["start_time"])
            assert row.synced_version == row.desired_version  # no change lost
            live = [b for b in sandbox.calendar.bookings.values()
                    if b.metadata.get("calsync_appointment_id") == row.id and b.status in ("accepted", "pending")]
            assert [b.uid for b in live] == [row.booking_uid], external_id  # no duplicate booking
        runs = ReconcileRun.select().where((ReconcileRun.account == account.id)
                                           & (ReconcileRun.trigger == "schedule")).count()
    # Each periodic task once per period across the four processes, not once per process.
    assert 1 <= runs <= elapsed / RECONCILE_SECONDS + 2, (runs, elapsed)


def _converged(db, account_id: str, wanted: dict[str, dict], sandbox) -> bool:
    with session(db):
        rows = list(Appointment.select().where(Appointment.account == account_id))
    if len(rows) != len(wanted):
        return False
    for row in rows:
        if row.sync_state != "synced" or row.status not in ("active", "rescheduled"):
            return False
        held = sandbox.calendar.bookings.get(row.booking_uid or "")
        if held is None or held.start != datetime.fromisoformat(wanted[row.external_id]["start_time"]):
            return False
    return True
