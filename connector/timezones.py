"""IANA time zone names, checked once against the zone database."""

from __future__ import annotations

import functools
import zoneinfo


@functools.cache
def _names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_iana_zone(name: str) -> bool:
    """True for a real zone name such as ``Europe/Berlin`` (not a path, not an abbreviation)."""
    return name in _names()
