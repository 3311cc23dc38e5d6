"""How long the console's pages take to render at 100,000 appointments (server time).

    .venv/bin/python bench/console.py [--rows 100000] [--repeats 40] [--database-url URL]

Seeds one account as bench/list_appointments.py does, signs in to the console, then
requests each page in-process (the app's ASGI interface, no network): the appointments
table with its default sort, a search, a later page, and the month calendar. The
baseline, measured in the same run, is ``GET /healthz``. Prints median and p95 in ms and
the median's ratio to the baseline. Target (issue 14): p95 at most 200 ms on SQLite.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.testclient import TestClient  # noqa: E402

from connector.app import create_app  # noqa: E402
from connector.clock import FakeClock  # noqa: E402
from connector.core import accounts  # noqa: E402
from connector.settings import Settings  # noqa: E402
from mappings.db import open_database, refresh_statistics, session  # noqa: E402
from mappings.migrations import migrate  # noqa: E402
from mappings.models import Account, Appointment  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from list_appointments import NOW, seed, timed  # noqa: E402

TARGET_P95_MS = 200


def page_timed(client: TestClient, path: str, repeats: int) -> tuple[float, float]:
    assert client.get(path).status_code == 200, path  # the page renders
    return timed(lambda: client.get(path), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench-console.db"
    db = open_database(url)
    clock = FakeClock(datetime(2026, 3, 16, 9, 0, tzinfo=NOW.tzinfo))
    with session(db):
        migrate(db, NOW)
        Appointment.delete().execute()
        Account.delete().execute()
        account = seed(db, args.rows)
        refresh_statistics(db)
        _, token = accounts.create_token(db, account.id, "bench", frozenset(accounts.OWNER_SCOPES), now=NOW)
    settings = Settings().replace(database={"url": url}, security={"secret_key": "bench"})
    app = create_app(settings, clock=clock, db=db)
    with TestClient(app) as client:
        signed = client.post("/console/sign-in", data={"token": token}, follow_redirects=False)
        assert signed.status_code == 303, signed.text
        base_median, _ = page_timed(client, "/healthz", args.repeats)
        print(f"engine {type(db).__name__}, {args.rows:,} appointments; baseline GET /healthz "
              f"median {base_median:.2f} ms")
        shapes = {
            "table, upcoming, default sort": "/console/appointments?view=table",
            "table, all, page 200": "/console/appointments?view=table&tab=all&page=200",
            "table, search 'roof'": "/console/appointments?view=table&tab=all&q=roof",
            "table, sort by title desc": "/console/appointments?view=table&tab=all&sort=title&order=desc",
            "calendar 2026-03": "/console/appointments?view=calendar&month=2026-03",
            "calendar 2026-03 with a day": "/console/appointments?view=calendar&month=2026-03&day=2026-03-17",
        }
        print(f"{'page':32} {'median ms':>10} {'p95 ms':>8} {'× baseline':>11}")
        worst = 0.0
        for name, path in shapes.items():
            median, p95 = page_timed(client, path, args.repeats)
            worst = max(worst, p95)
            print(f"{name:32} {median:>10.1f} {p95:>8.1f} {median / base_median:>11.1f}")
        page = client.get("/console/appointments?view=table&tab=all").text
        print(f"rows on the default page: {len(re.findall('<tr>', page)) - 1}")
        print(f"p95 within {TARGET_P95_MS} ms on every page: {'yes' if worst <= TARGET_P95_MS else 'NO'} "
              f"(worst {worst:.1f} ms)")


if __name__ == "__main__":
    main()
