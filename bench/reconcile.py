"""A full reconciliation of 10,000 sandbox bookings, 10 % of them drifted behind calsync's back.

The sandbox runs in this process, served by uvicorn on 127.0.0.1 with its rate
limit lifted; calsync's database (SQLite) is seeded with the appointments it
would have booked. Then 1,000 bookings drift with no webhook: cancelled,
rescheduled, deleted, marked no-show, or made in Cal.com directly. The
reconciler runs in a child process (so its peak RSS is its own) and prints:

- the full pass's time, peak RSS and SQL statements, with the repairs by kind;
- a second, clean pass (nothing left to repair) at page sizes 100 and 250:
  statements per page stay the same whatever the page's size, so statements grow
  with pages, not bookings;
- the baseline, in the same run: only listing and parsing the same pages.

    .venv/bin/python bench/reconcile.py [--bookings 10000]

Targets (issue 5): ≤ 60 s, ≤ 200 MB, statements proportional to pages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DRIFT = {"cancelled": 0.30, "rescheduled": 0.25, "deleted": 0.10, "no_show": 0.10, "unknown": 0.25}


# --- the child: calsync's reconciler, measured -----------------------------------------


def child(database_url: str, sandbox_url: str, account_id: str) -> None:
    import httpx
    import peewee

    from connector.calcom.client import BookingFilters
    from connector.calcom.clients import CalcomClients
    from connector.calcom.ratelimit import RateLimiter
    from connector.clock import SystemClock
    from connector.core.reconcile import ReconcileOptions, Reconciler
    from connector.settings import Settings
    from mappings.db import open_database, session
    from mappings.models import Account
    from mappings.sealing import Sealer

    statements = [0]
    original = peewee.Database.execute_sql

    def counting(self, sql, *args, **kwargs):
        statements[0] += 1
        return original(self, sql, *args, **kwargs)

    peewee.Database.execute_sql = counting
    settings = Settings().replace(database={"url": database_url}, sandbox={"mode": "on"})
    db = open_database(database_url)
    clock = SystemClock()
    results = {}
    with session(db), httpx.Client(timeout=60) as http:
        clients = CalcomClients(http, settings, Sealer(None), sandbox_url=sandbox_url,
                                limiter=RateLimiter(clock, limit=10**9))

        def full_pass(page_size: int) -> dict:
            reconciler = Reconciler(db, clock, clients, settings.calcom.booker_url,
                                    ReconcileOptions(page_size=page_size))
            statements[0] = 0
            started = time.perf_counter()
            run = reconciler.run(account_id, full=True, trigger="cli")
            return {"seconds": time.perf_counter() - started, "statements": statements[0],
                    "pages": run.pages, "bookings_seen": run.bookings_seen, "repairs": run.repairs}

        results["drifted"] = full_pass(100)
        results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results["clean_100"] = full_pass(100)
        results["clean_250"] = full_pass(250)
        # Baseline: the same pages listed and parsed, nothing compared or written.
        client = clients.for_account(Account.get_by_id(account_id))
        now = clock.now()
        started = time.perf_counter()
        seen = sum(len(page.bookings) for page in client.iter_bookings(BookingFilters(
            after_start=now - timedelta(days=7), before_end=now + timedelta(days=90),
            sort_start="asc", take=100)))
        results["listing_only"] = {"seconds": time.perf_counter() - started, "bookings": seen}
    print(json.dumps(results))


# --- the parent: sandbox, seed, drift ------------------------------------------------------


def seed(calendar, db, account_id: str, owner: int, total: int, now) -> dict[str, int]:
    """``total`` sandbox bookings of user ``owner``, all but the unknown share mirrored in calsync's
    database."""
    import random

    from connector.sandbox.calendar import SandboxBooking, new_uid
    from mappings.db import bulk_insert, write_transaction
    from mappings.models import Appointment, Booking, new_id

    rng = random.Random(5)
    event_type = calendar.event_types[123456]
    span = timedelta(days=95)
    first = now - timedelta(days=6)
    appointments, bookings = [], []
    sandbox_bookings = []
    for index in range(total):
        start = (first + span * index / total).replace(second=0, microsecond=0)
        end = start + timedelta(minutes=event_type.length)
        uid = new_uid()
        email = f"attendee{index}@example.org"
        appointment_id = new_id("apt")
        booking = SandboxBooking(
            id=1_000_000 + index, uid=uid, event_type=event_type, title=f"Call {index}", description="",
            status="accepted", start=start, end=end,
            attendees=[{"name": f"Attendee {index}", "email": email, "timeZone": "Europe/Berlin",
                        "language": "en", "absent": False}],
            guests=[], metadata={"calsync_appointment_id": appointment_id},
            location=f"https://sandbox.test/video/{uid}", created_at=now - timedelta(days=10),
            updated_at=now - timedelta(days=10), owner=owner)
        sandbox_bookings.append(booking)
        appointments.append({
            "id": appointment_id, "account": account_id, "external_id": f"crm-{index}", "title": booking.title,
            "attendee_name": f"Attendee {index}", "attendee_email": email, "attendee_time_zone": "Europe/Berlin",
            "event_type_id": event_type.id, "start_time": start, "end_time": end,
            "duration_minutes": event_type.length, "status": "completed" if end <= now else "active",
            "sync_state": "synced", "desired_version": 1, "synced_version": 1, "booking_uid": uid,
            "meeting_url": booking.location, "created_at": now - timedelta(days=10), "updated_at": now})
        bookings.append({"account": account_id, "appointment": appointment_id, "uid": uid,
                         "calcom_id": booking.id,
                         "status": "accepted", "start_time": start, "end_time": end,
                         "meeting_url": booking.location, "created_at": now, "updated_at": now})
    order = list(range(total))
    rng.shuffle(order)
    counts = {kind: int(total * share * 0.10) for kind, share in DRIFT.items()}
    picks: dict[str, list[int]] = {}
    future = [i for i in order if sandbox_bookings[i].start > now + timedelta(hours=1)]
    past = [i for i in order if sandbox_bookings[i].end < now]
    picks["no_show"] = past[:counts["no_show"]]
    taken = set(picks["no_show"])
    rest = [i for i in future if i not in taken]
    cursor = 0
    for kind in ("cancelled", "rescheduled", "deleted", "unknown"):
        picks[kind] = rest[cursor:cursor + counts[kind]]
        cursor += counts[kind]
    unknown = set(picks["unknown"])
    with write_transaction(db):
        for chunk in range(0, total, 500):
            bulk_insert(db, Appointment, [row for i, row in enumerate(appointments[chunk:chunk + 500], chunk)
                                          if i not in unknown])
            bulk_insert(db, Booking, [row for i, row in enumerate(bookings[chunk:chunk + 500], chunk)
                                      if i not in unknown])
    with calendar.lock:
        for booking in sandbox_bookings:
            calendar.bookings[booking.uid] = booking
        for i in picks["cancelled"]:
            booking = sandbox_bookings[i]
            booking.status, booking.updated_at = "cancelled", now
            booking.cancellation_reason, booking.cancelled_by_email = "changed plans", booking.attendees[0]["email"]
        for i in picks["rescheduled"]:
            old = sandbox_bookings[i]
            new = SandboxBooking(
                id=3_000_000 + i, uid=new_uid(), event_type=old.event_type, title=old.title, description="",
                status="accepted", start=old.start + timedelta(days=1), end=old.end + timedelta(days=1),
                attendees=[dict(a) for a in old.attendees], guests=[], metadata=dict(old.metadata),
                location=old.location, created_at=now, updated_at=now, rescheduled_from_uid=old.uid,
                owner=owner)
            old.status, old.rescheduled_to_uid, old.updated_at = "cancelled", new.uid, now
            calendar.bookings[new.uid] = new
        for i in picks["deleted"]:
            del calendar.bookings[sandbox_bookings[i].uid]
        for i in picks["no_show"]:
            sandbox_bookings[i].attendees[0]["absent"] = True
        for i in picks["unknown"]:
            sandbox_bookings[i].metadata = {}
    return {kind: len(items) for kind, items in picks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--child", nargs=3, metavar=("DATABASE_URL", "SANDBOX_URL", "ACCOUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from connector.clock import SystemClock
    from connector.core import accounts
    from connector.sandbox.app import create_sandbox
    from connector.settings import SandboxSettings
    from mappings.db import open_database, session
    from mappings.migrations import migrate
    from mappings.sealing import Sealer
    from tests.support.servers import ServerThread

    clock = SystemClock()
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=10**9))
    with tempfile.TemporaryDirectory() as folder, ServerThread(sandbox.app) as server:
        url = f"sqlite:///{folder}/bench.db"
        db = open_database(url)
        with session(db):
            migrate(db, clock.now())
            account, _ = accounts.create_account(db, accounts.AccountChanges(name="bench"), Sealer(None),
                                                 now=clock.now())
            owner = sandbox.calendar.user(accounts.sandbox_key(db, account, Sealer(None))).id
            drifted = seed(sandbox.calendar, db, account.id, owner, args.bookings, clock.now())
        print(f"reconcile: {args.bookings} sandbox bookings (rate limit lifted), "
              f"{sum(drifted.values())} drifted: " + ", ".join(f"{k} {v}" for k, v in drifted.items()))
        done = subprocess.run([sys.executable, __file__, "--child", url, server.url, account.id],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if done.returncode != 0:
            sys.exit(f"the reconciler failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    drift, clean, wide, base = (figures["drifted"], figures["clean_100"], figures["clean_250"],
                                figures["listing_only"])
    print(f"  full pass: {drift['seconds']:.1f} s (target ≤ 60), peak RSS {figures['peak_rss_mb']:.0f} MB "
          f"(target ≤ 200), {drift['pages']} pages, {drift['bookings_seen']} bookings, "
          f"{drift['statements']} SQL statements")
    print("  repairs: " + ", ".join(f"{kind} {count}" for kind, count in drift["repairs"].items()))
    for name, run in (("clean pass, 100 a page", clean), ("clean pass, 250 a page", wide)):
        print(f"  {name}: {run['seconds']:.1f} s, {run['pages']} pages, {run['statements']} statements "
              f"= {run['statements'] / run['pages']:.1f} a page, {run['repairs'] or 'no repairs'}")
    print(f"  baseline, listing and parsing only: {base['seconds']:.1f} s for {base['bookings']} bookings; "
          f"full pass ÷ baseline {drift['seconds'] / base['seconds']:.2f}, "
          f"clean pass ÷ baseline {clean['seconds'] / base['seconds']:.2f}")


if __name__ == "__main__":
    main()
