from __future__ import annotations

import pytest

from mappings.sealing import Sealer, SealingError


def test_sealed_with_a_key_is_not_readable_without_it():
    sealed = Sealer("k1").seal("cal_live_secret")
    assert sealed.startswith("fernet:") and "cal_live_secret" not in sealed
    assert Sealer("k1").open(sealed) == "cal_live_secret"
    with pytest.raises(SealingError):
        Sealer(None).open(sealed)
    with pytest.raises(SealingError):
        Sealer("another").open(sealed)


def test_without_a_key_values_are_marked_plain():
    assert Sealer(None).seal("x") == "plain:x"
    assert Sealer("k").open("plain:x") == "x"
    assert Sealer("k").seal(None) is None and Sealer("k").open(None) is None


def test_an_unknown_format_is_refused():
    with pytest.raises(SealingError):
        Sealer("k").open("rot13:abc")
