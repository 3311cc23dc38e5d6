"""How long a 10,000-row import takes: parsing alone (the baseline), a dry run, and the import.

    .venv/bin/python bench/import.py [--rows 10000] [--database-url URL]

One account with its event types cached and 2,000 appointments already there (so the
conflict checks have rows to look at), then a CSV of ``--rows`` appointments, a fifth of
them updates of those. Times, in one run: ``importer.parse_file`` alone, the dry
run (``importer.run(dry_run=True)``: validation and conflict checks, nothing written)
and the real import; prints seconds, rows per second and the ratio to the baseline. The
target (issue 14): a dry run of 10,000 rows within 10 s on SQLite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.core import accounts, importer  # noqa: E402
from mappings.db import open_database, session  # noqa: E402
from mappings.migrations import migrate  # noqa: E402
from mappings.models import Appointment, EventType  # noqa: E402
from mappings.sealing import Sealer  # noqa: E402

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
START = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)


def csv_file(rows: int, first: int = 0, label: str = "bench") -> bytes:
    lines = ["external_id,title,attendee_name,attendee_email,start_time,label"]
    for index in range(first, first + rows):
        when = START + timedelta(minutes=30 * index)
        lines.append(f"row-{index},Call {index},Person {index},p{index}@example.org,{when.isoformat()},{label}")
    return "\n".join(lines).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench-import.db"
    db = open_database(url)
    with session(db):
        migrate(db, NOW)
        account, _ = accounts.create_account(db, accounts.AccountChanges(
            name="Bench", event_type_id=123456, time_zone="Europe/Berlin"), Sealer(None), now=NOW)
        EventType.create(account=account.id, calcom_id=123456, slug="intro", title="Intro", length_minutes=30,
                         length_options=[], locations=[{"type": "integration"}], refreshed_at=NOW)
        principal = accounts.Principal(account.id, "bench", "bench", frozenset(accounts.SCOPES), source="import")
        existing = importer.parse_file(csv_file(args.rows // 5, first=args.rows - args.rows // 5, label="old"),
                                       importer.CSV)
        importer.run(db, principal, existing, override_conflicts=True, now_of=lambda: NOW)
        raw = csv_file(args.rows)

        started = time.perf_counter()
        rows = importer.parse_file(raw, importer.CSV)
        parse_seconds = time.perf_counter() - started

        started = time.perf_counter()
        preview = importer.run(db, principal, rows, override_conflicts=False, now_of=lambda: NOW, dry_run=True)
        dry_seconds = time.perf_counter() - started
        written_before = Appointment.select().count()

        started = time.perf_counter()
        report = importer.run(db, principal, rows, override_conflicts=False, now_of=lambda: NOW)
        real_seconds = time.perf_counter() - started
    assert preview.as_dict() == report.as_dict(), "the dry run must answer what the import does"
    print(f"{args.rows} rows ({url.split(':', 1)[0]}); outcomes {report.counts}; "
          f"{written_before} appointments before the import")
    for name, seconds in (("parse only (baseline)", parse_seconds), ("dry run", dry_seconds),
                          ("import", real_seconds)):
        print(f"  {name:<22} {seconds:7.2f} s  {args.rows / seconds:8.0f} rows/s  "
              f"{seconds / parse_seconds:6.1f}x baseline")
    print(f"  dry run of {args.rows} rows within 10 s: {'yes' if dry_seconds <= 10 else 'NO'}")


if __name__ == "__main__":
    main()
