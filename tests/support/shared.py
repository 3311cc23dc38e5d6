"""The shared Cal.com reference pack (../shared/calcom), present in CI, absent on a user's machine."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("CALSYNC_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CALCOM = SHARED / "calcom"

needs_shared = pytest.mark.skipif(
    not (CALCOM / "openapi.json").exists(),
    reason=f"Cal.com reference pack not found at {CALCOM} (it is beside the repo in CI only)",
)


@cache
def openapi() -> dict:
    return json.loads((CALCOM / "openapi.json").read_text())


def fixture(name: str) -> dict:
    return json.loads((CALCOM / "fixtures" / name).read_text())
