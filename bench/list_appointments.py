"""How fast the appointment table and the month calendar answer at 100,000 appointments.

    .venv/bin/python bench/list_appointments.py [--rows 100000] [--database-url URL]

Seeds one account with ``--rows`` appointments (bulk inserts, spread over two
years, with labels, businesses and statuses), then times each query shape of
``GET /v1/appointments`` and ``GET /v1/calendar`` through the same functions
the API calls (``listing.search`` / ``listing.month``: the count, the page and
its rendering). The baseline, measured in the same run, is fetching 25 rows by
primary key: the cheapest read of a page there is. Prints the median and p95
of each shape in ms and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.core import accounts, listing  # noqa: E402
from mappings.db import (  # noqa: E402
    bulk_insert,
    open_database,
    refresh_statistics,
    session,
)
from mappings.migrations import migrate  # noqa: E402
from mappings.models import Account, Appointment, new_id  # noqa: E402
from mappings.sealing import Sealer  # noqa: E402

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
WORDS = ["Roof", "Survey", "Intro", "Demo", "Follow-up", "Kitchen", "Solar", "Audit", "Quote", "Call"]
LABELS = ["hot", "warm", "cold", "vip", None]
STATUSES = ["active"] * 6 + ["pending", "cancelled", "completed", "rescheduled"]


def seed(db, rows: int) -> Account:
    account, _ = accounts.create_account(
        db, accounts.AccountChanges(name="Bench", event_type_id=123456, time_zone="Europe/Berlin"),
        Sealer(None), now=NOW)
    rng = random.Random(7)
    start = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    batch = []
    for index in range(rows):
        begins = start + timedelta(minutes=30 * rng.randrange(0, 35_000))
        batch.append({
            "id": new_id("apt"), "account": account.id, "external_id": f"crm-{index}", "source": "crm",
            "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)} {index}",
            "attendee_name": f"Person {rng.randrange(50_000)}",
            "attendee_email": f"p{index}@example.org", "attendee_time_zone": "Europe/Berlin",
            "business_name": f"{rng.choice(WORDS)} Co {rng.randrange(2_000)}",
            "label": rng.choice(LABELS), "event_type_id": 123456, "start_time": begins,
            "end_time": begins + timedelta(minutes=30), "duration_minutes": 30,
            "guests": [], "metadata": {}, "status": rng.choice(STATUSES),
            "created_at": NOW, "updated_at": NOW})
        if len(batch) == 1000:
            with db.atomic():
                bulk_insert(db, Appointment, batch)
            batch = []
    if batch:
        with db.atomic():
            bulk_insert(db, Appointment, batch)
    return account


def timed(run, repeats: int) -> tuple[float, float]:
    run()  # warm
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    db = open_database(url)
    with session(db):
        migrate(db, NOW)
        Appointment.delete().execute()
        Account.delete().execute()
        started = time.perf_counter()
        account = seed(db, args.rows)
        refresh_statistics(db)  # what the scheduler's hourly task keeps fresh
        print(f"engine {type(db).__name__}, {args.rows:,} appointments seeded in "
              f"{time.perf_counter() - started:.1f} s")
        ids = [row.id for row in Appointment.select(Appointment.id).limit(25)]
        base_median, _ = timed(lambda: list(Appointment.select().where(Appointment.id.in_(ids))),
                               args.repeats)
        print(f"baseline: 25 rows by primary key, median {base_median:.2f} ms")
        shapes = {
            "default page (start_time, 25)": {},
            "page 400 of 25": {"page": "400"},
            "status=active, 100 a page": {"status": "active", "per_page": "100"},
            "label=vip, sort=title desc": {"label": "vip", "sort": "title", "order": "desc"},
            "from/to one week": {"from": "2026-03-16T00:00:00Z", "to": "2026-03-23T00:00:00Z"},
            "q=roof (substring, 4 columns)": {"q": "roof"},
            "q=person 4242 (rare)": {"q": "person 4242"},
            "sort=attendee_name (no index)": {"sort": "attendee_name"},
        }
        print(f"{'shape':34} {'total':>8} {'median ms':>10} {'p95 ms':>8} {'× baseline':>11}")
        for name, params in shapes.items():
            query = listing.parse_search(params)
            total = listing.search(account.id, query, "https://cal.com").total
            median, p95 = timed(lambda q=query: listing.search(account.id, q, "https://cal.com"),
                                args.repeats)
            print(f"{name:34} {total:>8,} {median:>10.2f} {p95:>8.2f} {median / base_median:>11.1f}")
        median, p95 = timed(lambda: listing.month(account, 2026, 3, "https://cal.com"), args.repeats)
        month_total = listing.month(account, 2026, 3, "https://cal.com")["total"]
        print(f"{'calendar 2026-03':34} {month_total:>8,} {median:>10.2f} {p95:>8.2f} "
              f"{median / base_median:>11.1f}")


if __name__ == "__main__":
    main()
