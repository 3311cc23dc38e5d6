"""An account's settings as admins read and write them over the API (``/v1/settings``).

Secrets (the Cal.com key, the callback signing secret) are write-only: reading
shows only whether each is set. A new Cal.com key is tried with ``GET /v2/me``
before it is stored, so a typo never cuts the account off. Every change is one
audit event (actor, before, after) in the transaction that makes it; a secret
appears there as ``"(changed)"``, never in clear.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from peewee import Database

from connector import errors
from connector.core import accounts
from connector.core.appointments import cached_event_type
from connector.inputs import SettingsInput
from connector.outputs import audit
from mappings.db import write_transaction
from mappings.models import Account, AuditEvent
from mappings.sealing import Sealer, SealingError
from mappings.times import to_api

SECRETS = ("calcom_api_key", "callback_secret")
# API name → Account column.
COLUMNS = {"calcom_api_key": "calcom_api_key", "default_event_type_id": "default_event_type_id",
           "time_zone": "time_zone", "duration_override_minutes": "duration_override_minutes",
           "callback_url": "callback_url", "callback_secret": "callback_secret",
           "public_url": "public_url", "default_reminders": "default_reminders"}
NOT_CLEARABLE = ("calcom_api_key", "time_zone")
CHANGED = "(changed)"


def describe(account: Account) -> dict[str, Any]:
    """The settings as ``GET /v1/settings`` shows them: secrets only as set or not."""
    return {
        "account_id": account.id,
        "name": account.name,
        "calcom_api_key_set": bool(account.calcom_api_key),
        "default_event_type_id": account.default_event_type_id,
        "time_zone": account.time_zone,
        "duration_override_minutes": account.duration_override_minutes,
        "callback_url": account.callback_url,
        "callback_secret_set": bool(account.callback_secret),
        "public_url": account.public_url,
        "default_reminders": list(account.default_reminders or []),
    }


def update(db: Database, account_id: str, data: SettingsInput, *, sealer: Sealer, actor: str,
           now: datetime, check_key: Callable[[Account, str], None]) -> tuple[Account, bool]:
    """Apply the fields ``data`` names; answers the account and whether anything changed.

    ``check_key(account, key)`` raises if Cal.com refuses the key; it runs before the
    write transaction opens, so no lock is held while Cal.com is asked.
    """
    given = data.model_dump(exclude_unset=True, exclude_none=True) | {
        name: None for name, value in data.model_dump(exclude_unset=True).items() if value is None}
    if "default_reminders" in given and given["default_reminders"] is None:
        given["default_reminders"] = []  # cleared: no reminders by default
    cleared = [name for name in NOT_CLEARABLE if name in given and given[name] is None]
    if cleared:
        raise errors.ValidationFailed([errors.FieldError(name, "cannot be cleared") for name in cleared])
    account = Account.get_by_id(account_id)
    if given.get("default_event_type_id") is not None:
        try:
            cached_event_type(account.id, given["default_event_type_id"])
        except errors.ValidationFailed as exc:
            raise errors.ValidationFailed.one("default_event_type_id", exc.errors[0].message) from None
    if given.get("calcom_api_key") is not None:
        check_key(account, given["calcom_api_key"])
    with write_transaction(db):
        account = Account.get_by_id(account_id)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for name, value in given.items():
            column = COLUMNS[name]
            current = getattr(account, column)
            if name in SECRETS:
                if _opens_to(sealer, current, value):
                    continue
                setattr(account, column, sealer.seal(value) if value is not None else None)
                before[name] = "set" if current else None
                after[name] = CHANGED if value is not None else None
            elif current != value:
                setattr(account, column, value)
                before[name], after[name] = current, value
        if not after:
            return account, False
        account.updated_at = now
        account.save()
        audit.record(account_id=account.id, appointment_id=None, actor=actor,
                     action="settings.updated", now=now, before=before, after=after)
        accounts.follow_changes(db, account, set(after), now=now)
    return account, True


def recent_changes(account_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The account's last settings changes, newest first."""
    rows = (AuditEvent.select().where((AuditEvent.account == account_id)
                                      & (AuditEvent.action == "settings.updated"))
            .order_by(AuditEvent.id.desc()).limit(limit))
    return [{"at": to_api(row.at), "actor": row.actor, "before": row.before, "after": row.after}
            for row in rows]


def _opens_to(sealer: Sealer, stored: str | None, value: str | None) -> bool:
    try:
        return sealer.open(stored) == value
    except SealingError:  # unreadable (a lost CALSYNC_SECRET_KEY): replacing it is a change
        return False


def key_checker(for_candidate: Callable[[Account, str], Any]) -> Callable[[Account, str], None]:
    """A ``check_key`` that asks Cal.com ``GET /v2/me`` with the candidate key."""

    def check(account: Account, key: str) -> None:
        try:
            for_candidate(account, key).get_me()
        except errors.CalcomAuthError:
            raise errors.ValidationFailed.one(
                "calcom_api_key", "Cal.com refused this key (GET /v2/me answered 401 or 403)") from None
        except errors.CalcomRejected as exc:
            raise errors.ValidationFailed.one(
                "calcom_api_key", f"Cal.com did not accept this key: {exc}") from None

    return check
