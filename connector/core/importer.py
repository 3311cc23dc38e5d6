"""Bulk import: many appointments from CSV or JSON lines, each row validated like a PUT.

Every row becomes the same ``appointments.put`` a CRM would send, so a row is
created, updated or unchanged exactly as PUT would answer, and importing one
file twice changes nothing. A row that overlaps a live appointment of the same
account and event type (another external_id) is skipped as a ``conflict``
unless ``override_conflicts``; group (seated) event types are meant to overlap
and are never conflicts. Nothing here calls Cal.com: each created or changed
row enqueues its converge job, and the worker with the account's rate limiter
paces the Cal.com side.

Rows are written in chunks, one transaction per chunk (a savepoint per row), so
a 10,000-row file is 50 commits rather than 10,000.
"""

from __future__ import annotations

import bisect
import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from peewee import Database
from pydantic import ValidationError

from connector import errors
from connector.core import appointments
from connector.core.accounts import Principal
from connector.inputs import (
    AppointmentInput,
    check_external_id,
    field_errors,
    load_json,
    whole_number,
)
from connector.outputs import resources
from mappings.db import write_transaction
from mappings.models import Account, Appointment

MAX_ROWS = 10_000
CHUNK = 200
CSV = "text/csv"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = (CSV, NDJSON)
OUTCOMES = ("created", "updated", "unchanged", "conflict", "invalid")
# CSV columns that hold numbers, and the list column (emails separated by ; or ,).
INTEGER_COLUMNS = ("event_type_id", "duration_minutes")
LIST_COLUMNS = ("guests",)
METADATA_PREFIX = "metadata."
COLUMNS = ("external_id", *AppointmentInput.model_fields)
# Appointments that hold their slot: a new one overlapping them is a conflict.
HOLDING_SLOT = ("pending", "active", "rescheduled", "awaiting_confirmation")
LONGEST_MEETING = timedelta(minutes=1440)  # duration_minutes' upper bound (inputs.AppointmentInput)
HIDDEN_CONFLICT = "overlaps another appointment of the same event type"


@dataclass(frozen=True)
class RowResult:
    row: int
    external_id: str | None
    outcome: str
    errors: tuple[errors.FieldError, ...] = ()
    conflicts_with: str | None = None

    def as_dict(self, *, reveal: bool = True) -> dict[str, Any]:
        """``reveal=False`` (a token that may not read) keeps other appointments' ids out."""
        found = [e.as_dict() for e in self.errors]
        if self.conflicts_with is not None and not reveal:
            found = [{"field": "start_time", "message": HIDDEN_CONFLICT}]
        result: dict[str, Any] = {"row": self.row, "external_id": self.external_id,
                                  "outcome": self.outcome, "errors": found}
        if self.conflicts_with is not None and reveal:
            result["conflicts_with"] = self.conflicts_with
        return result


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.outcome for result in self.rows)
        return {outcome: counted.get(outcome, 0) for outcome in OUTCOMES}

    @property
    def changed(self) -> bool:
        counts = self.counts
        return bool(counts["created"] or counts["updated"])

    def as_dict(self, *, reveal: bool = True) -> dict[str, Any]:
        return {"total": len(self.rows), "counts": self.counts,
                "rows": [result.as_dict(reveal=reveal) for result in self.rows]}


@dataclass(frozen=True)
class ParsedRow:
    row: int
    fields: dict[str, Any] | None
    problems: tuple[errors.FieldError, ...] = ()


def parse_file(raw: bytes, media_type: str) -> list[ParsedRow]:
    """The rows of a CSV or JSON-lines file; a file-level problem (encoding, header, size) is one
    422 before any row is written."""
    if media_type not in MEDIA_TYPES:
        raise errors.UnsupportedMediaType(
            f"Send the file as {CSV} or {NDJSON} (got {media_type or 'no Content-Type'}).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise errors.ValidationFailed.one("body", "must be UTF-8 text") from None
    if "\x00" in text:
        raise errors.ValidationFailed.one("body", "must not contain NUL characters")
    try:
        rows = list(_csv_rows(text) if media_type == CSV else _ndjson_rows(text))
    except csv.Error as exc:  # an unreadable quote, or a cell over csv.field_size_limit()
        raise errors.ValidationFailed.one("body", f"is not readable CSV: {exc}") from None
    if not rows:
        raise errors.ValidationFailed.one("body", "holds no rows")
    if len(rows) > MAX_ROWS:
        raise errors.ValidationFailed.one(
            "body", f"holds {len(rows)} rows; import at most {MAX_ROWS} at a time")
    return rows


def run(db: Database, principal: Principal, rows: list[ParsedRow], *, override_conflicts: bool,
        now_of: Callable[[], Any], progress: Callable[[int, int], None] | None = None,
        dry_run: bool = False) -> ImportReport:
    """Validate and write each row; ``progress(done, total)`` after every chunk. A ``dry_run``
    answers what each row would come to — the same validation and conflict checks, the
    earlier rows of the file included — and writes nothing."""
    report = ImportReport()
    first_seen: dict[str, int] = {}
    event_type_of = _memoised(appointments.cached_event_type)
    planned = _PlannedSlots()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        now = now_of()
        if dry_run:
            account = Account.get_by_id(principal.account_id)
            existing = _existing(account.id, chunk)
            for parsed in chunk:
                report.rows.append(_preview_row(account, parsed, first_seen, override_conflicts,
                                                event_type_of, existing, planned))
        else:
            with write_transaction(db):
                account = Account.get_by_id(principal.account_id)
                for parsed in chunk:
                    report.rows.append(_import_row(db, principal, account, parsed, first_seen,
                                                   override_conflicts, now, event_type_of))
        if progress is not None:
            progress(min(start + CHUNK, len(rows)), len(rows))
    return report


def _checked(parsed: ParsedRow, first_seen: dict[str, int]) -> tuple[str, AppointmentInput]:
    """A row's external_id and fields, validated as PUT validates them; ValidationFailed if not."""
    fields = dict(parsed.fields or {})
    external_id = fields.pop("external_id", None)
    if not isinstance(external_id, str):
        raise errors.ValidationFailed.one("external_id", "is required")
    check_external_id(external_id)
    if external_id in first_seen:
        raise errors.ValidationFailed.one(
            "external_id", f"repeats row {first_seen[external_id]}; each appointment once per file")
    first_seen[external_id] = parsed.row
    try:
        return external_id, AppointmentInput.model_validate(fields)
    except ValidationError as exc:
        raise errors.ValidationFailed(field_errors(exc)) from None


def _external_id_of(parsed: ParsedRow) -> str | None:
    return _text((parsed.fields or {}).get("external_id"))


def _existing(account_id: str, chunk: list[ParsedRow]) -> dict[str, Appointment]:
    wanted = sorted({external_id for parsed in chunk if (external_id := _external_id_of(parsed))})
    if not wanted:
        return {}
    return {row.external_id: row for row in Appointment.select().where(
        (Appointment.account == account_id) & Appointment.external_id.in_(wanted))}


class _PlannedSlots:
    """The slots a dry run's earlier rows would take, per event type: what the database would
    hold by the time a real import reached the next row."""

    def __init__(self) -> None:
        self._by_type: dict[int, list[tuple[Any, Any, str]]] = {}

    def clash(self, event_type_id: int, start: Any, end: Any, external_id: str) -> str | None:
        taken = self._by_type.get(event_type_id, [])
        low = bisect.bisect_left(taken, (start - LONGEST_MEETING,))
        for other_start, other_end, other_id in taken[low:]:
            if other_start >= end:
                break
            if other_end > start and other_id != external_id:
                return other_id
        return None

    def take(self, event_type_id: int, start: Any, end: Any, external_id: str) -> None:
        bisect.insort(self._by_type.setdefault(event_type_id, []), (start, end, external_id))


def _preview_row(account: Account, parsed: ParsedRow, first_seen: dict[str, int], override_conflicts: bool,
                 event_type_of: appointments.EventTypeLookup, existing: dict[str, Appointment],
                 planned: _PlannedSlots) -> RowResult:
    if parsed.problems:
        return RowResult(parsed.row, _external_id_of(parsed), "invalid", parsed.problems)
    try:
        external_id, data = _checked(parsed, first_seen)
        desired = appointments.desired_state(account, data, event_type_of)
        event_type = event_type_of(account.id, desired["event_type_id"])
        start = desired["start_time"]
        end = desired["end_time"] or start + timedelta(minutes=1)
        grouped = resources.strategy(event_type) == "group"
        if not override_conflicts and not grouped:
            clash = _overlapping(account, external_id, data, event_type_of)
            clash_id = clash.external_id if clash is not None else planned.clash(
                desired["event_type_id"], start, end, external_id)
            if clash_id is not None:
                return RowResult(parsed.row, external_id, "conflict", (errors.FieldError(
                    "start_time", f"overlaps {clash_id!r} of the same event type"),), conflicts_with=clash_id)
        current = existing.get(external_id)
        outcome = "created" if current is None else (
            "updated" if appointments.planned_changes(current, desired) else "unchanged")
        if not grouped:
            planned.take(desired["event_type_id"], start, end, external_id)
    except errors.ValidationFailed as exc:
        return RowResult(parsed.row, _external_id_of(parsed), "invalid", tuple(exc.errors))
    except errors.Conflict as exc:
        return RowResult(parsed.row, _external_id_of(parsed), "invalid",
                         (errors.FieldError("external_id", exc.message),))
    return RowResult(parsed.row, external_id, outcome)


def _import_row(db: Database, principal: Principal, account: Account, parsed: ParsedRow,
                first_seen: dict[str, int], override_conflicts: bool, now: Any,
                event_type_of: appointments.EventTypeLookup) -> RowResult:
    external_id: str | None = _external_id_of(parsed)
    if parsed.problems:
        return RowResult(parsed.row, external_id, "invalid", parsed.problems)
    try:
        external_id, data = _checked(parsed, first_seen)
        if not override_conflicts:
            clash = _overlapping(account, external_id, data, event_type_of)
            if clash is not None:
                return RowResult(parsed.row, external_id, "conflict", (errors.FieldError(
                    "start_time", f"overlaps {clash.external_id!r} of the same event type"),),
                    conflicts_with=clash.external_id)
        # Nested in the chunk's transaction, put's own is a savepoint: a refused row
        # leaves the chunk's other rows alone.
        result = appointments.put(db, principal, external_id, data, now=now,
                                  event_type_of=event_type_of)
    except errors.ValidationFailed as exc:
        return RowResult(parsed.row, external_id, "invalid", tuple(exc.errors))
    except errors.Conflict as exc:
        return RowResult(parsed.row, external_id, "invalid", (errors.FieldError("external_id", exc.message),))
    outcome = "created" if result.created else "updated" if result.changed else "unchanged"
    return RowResult(parsed.row, external_id, outcome)


def _memoised(lookup: appointments.EventTypeLookup) -> appointments.EventTypeLookup:
    """``lookup`` asked once per event type for the whole file; a refusal is remembered too."""
    answers: dict[tuple[str, int], Any] = {}

    def memo(account_id: str, event_type_id: int):
        key = (account_id, event_type_id)
        if key not in answers:
            try:
                answers[key] = lookup(account_id, event_type_id)
            except errors.ValidationFailed as exc:
                answers[key] = exc
        answer = answers[key]
        if isinstance(answer, errors.ValidationFailed):
            raise answer
        return answer

    return memo


def _overlapping(account: Account, external_id: str, data: AppointmentInput,
                 event_type_of: appointments.EventTypeLookup) -> Appointment | None:
    desired = appointments.desired_state(account, data, event_type_of)
    event_type = event_type_of(account.id, desired["event_type_id"])
    if resources.strategy(event_type) == "group":
        return None
    start = desired["start_time"]
    # An appointment whose length is unknown yet (empty event-type cache) is taken as a point in time.
    end = desired["end_time"] or start + timedelta(minutes=1)
    ends_after_start = ((Appointment.end_time.is_null(False) & (Appointment.end_time > start))
                        | (Appointment.end_time.is_null() & (Appointment.start_time >= start)))
    return (Appointment.select(Appointment.id, Appointment.external_id)
            .where((Appointment.account == account.id)
                   # bounded below by the longest meeting, so the index range stays short
                   & (Appointment.start_time > start - LONGEST_MEETING)
                   & (Appointment.start_time < end)
                   & ends_after_start
                   & (Appointment.event_type_id == desired["event_type_id"])
                   & (Appointment.external_id != external_id)
                   & (Appointment.desired_status == "active")
                   & Appointment.status.in_(HOLDING_SLOT))
            .order_by(Appointment.start_time).first())


def _csv_rows(text: str) -> Iterator[ParsedRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    unknown = [name for name in header if name not in COLUMNS
               and not (name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX))]
    if unknown:
        raise errors.ValidationFailed.one(
            "header", f"{unknown[0]!r} is not a column; columns are {', '.join(COLUMNS)} "
                      f"and metadata.<key>")
    if "external_id" not in header:
        raise errors.ValidationFailed.one("header", "needs an external_id column")
    if len(set(header)) != len(header):
        raise errors.ValidationFailed.one("header", "names a column twice")
    for number, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield ParsedRow(number, None, (errors.FieldError(
                "row", f"has {len(cells)} cells; the header has {len(header)}"),))
            continue
        yield ParsedRow(number, _csv_fields(dict(zip(header, cells, strict=True))))


def _csv_fields(cells: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for name, cell in cells.items():
        value = cell.strip()
        if not value:
            continue  # an empty cell is an absent field, as in a PUT body
        if name.startswith(METADATA_PREFIX):
            metadata[name[len(METADATA_PREFIX):]] = value
        elif name in INTEGER_COLUMNS:
            number = whole_number(value, low=0, high=10**11)
            fields[name] = value if number is None else number
        elif name in LIST_COLUMNS:
            fields[name] = [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        elif name == "reminders":
            fields[name] = _csv_reminders(value)
        else:
            fields[name] = value
    if metadata:
        fields["metadata"] = metadata
    return fields


def _csv_reminders(value: str) -> list[Any]:
    """``sms:30;email:1440:See you soon`` → reminders: channel, minutes before, template (the
    rest of the item, colons and all). What cannot be read is left for validation to name."""
    found: list[Any] = []
    for item in (part.strip() for part in value.split(";")):
        if not item:
            continue
        channel, _, rest = item.partition(":")
        minutes, _, template = rest.partition(":")
        number = whole_number(minutes.strip(), low=0, high=10**7)
        reminder: dict[str, Any] = {"channel": channel.strip(),
                                    "minutes_before": minutes.strip() if number is None else number}
        if template.strip():
            reminder["template"] = template.strip()
        found.append(reminder)
    return found


def _ndjson_rows(text: str) -> Iterator[ParsedRow]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = load_json(line)
        except ValueError as exc:  # not JSON, an unpaired surrogate, or nested too deeply
            yield ParsedRow(number, None, (errors.FieldError("row", f"is not valid JSON: {exc}"),))
            continue
        if not isinstance(value, dict):
            yield ParsedRow(number, None, (errors.FieldError("row", "must be a JSON object"),))
            continue
        yield ParsedRow(number, value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
