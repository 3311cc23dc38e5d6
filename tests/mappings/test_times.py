from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mappings.times import (
    NaiveDatetimeError,
    parse_instant,
    require_aware,
    to_api,
    to_wire,
    to_wire_ms,
)

MOMENT = datetime(2026, 3, 19, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "2026-03-19T15:00:00Z", "2026-03-19T15:00:00.000Z", "2026-03-19T15:00:00+00:00",
    "2026-03-19T16:00:00+01:00", "2026-03-19T11:00:00-04:00",
])
def test_every_calcom_spelling_is_the_same_instant(text):
    assert parse_instant(text) == MOMENT


def test_naive_text_is_refused_unless_utc_is_assumed():
    with pytest.raises(NaiveDatetimeError):
        parse_instant("2026-03-19T15:00:00")
    assert parse_instant("2026-03-19T15:00:00", assume_utc=True) == MOMENT


@pytest.mark.parametrize("bad", ["", "tomorrow", "2026-13-01T00:00:00Z", None, 5])
def test_garbage_is_a_value_error(bad):
    with pytest.raises(ValueError):
        parse_instant(bad)


def test_writing():
    berlin = MOMENT.astimezone(timezone(timedelta(hours=1)))
    assert to_wire(berlin) == "2026-03-19T15:00:00Z"
    assert to_wire_ms(MOMENT + timedelta(microseconds=123456)) == "2026-03-19T15:00:00.123Z"
    assert to_api(MOMENT) == "2026-03-19T15:00:00Z"
    assert to_api(None) is None
    with pytest.raises(NaiveDatetimeError):
        require_aware(datetime(2026, 3, 19, 15, 0))
