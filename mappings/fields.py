"""Column types: instants stored as UTC, JSON stored as text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from peewee import DateTimeField, TextField

from mappings.times import require_aware


class UTCDateTimeField(DateTimeField):
    """An aware datetime in Python, naive UTC in the database.

    Writing a naive datetime is a bug, so it raises instead of guessing a zone.
    """

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return require_aware(value).replace(tzinfo=None)
        return super().db_value(value)  # type: ignore[no-untyped-call]

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)  # type: ignore[no-untyped-call]
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
        return value


class JSONField(TextField):
    """Any JSON value, stored as compact text (portable across SQLite and PostgreSQL)."""

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.loads(value)
