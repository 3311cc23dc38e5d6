"""Accounts and their bearer tokens: create, update, list, authenticate.

A token is shown once, when it is made; only its SHA-256 is stored. Cal.com keys
and webhook/callback secrets are sealed (mappings/sealing.py) and never returned.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from peewee import Database

from connector import errors
from connector.inputs import http_url_problem
from connector.jobs import queue
from mappings.db import write_transaction
from mappings.models import Account, ApiToken, new_id
from mappings.prepared import Prepared
from mappings.sealing import Sealer
from webhooks import signing

READ = "appointments:read"
WRITE = "appointments:write"
ADMIN = "admin"
# Opens only the calendar subscription feed: the one token meant to travel inside a URL.
FEED = "calendar:feed"
SCOPES = (READ, WRITE, ADMIN, FEED)
# An account's first token: everything but the feed, which wants a token of its own.
OWNER_SCOPES = (READ, WRITE, ADMIN)
TOKEN_PREFIX = "csk_"
SANDBOX_KEY_PREFIX = "cal_sandbox_"  # the sandbox, like Cal.com, reads a key by its cal_ prefix
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's account, name and scopes."""

    account_id: str
    token_id: str
    token_name: str
    scopes: frozenset[str]
    # The edge the token is used through: the API ("crm") or the operator console ("console").
    # It names the ``source`` of what this principal creates and prefixes its audit entries.
    source: str = "crm"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes

    @property
    def actor(self) -> str:
        if self.source != "crm":
            return f"{self.source}:{self.token_name}"
        return f"{'admin' if ADMIN in self.scopes else 'crm'}:{self.token_name}"


@dataclass(frozen=True)
class AccountChanges:
    """Options of ``accounts create`` / ``accounts update``; None leaves a value as it is."""

    name: str | None = None
    calcom_api_key: str | None = None
    calcom_base_url: str | None = None
    event_type_id: int | None = None
    time_zone: str | None = None
    duration_override_minutes: int | None = None
    callback_url: str | None = None
    callback_secret: str | None = None
    public_url: str | None = None
    # Cal.com webhook secrets accepted on deliveries, newest first; replaces the stored list.
    calcom_webhook_secrets: tuple[str, ...] | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s for s in text.replace(",", " ").split() if s)
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise errors.ConfigurationError(
            f"scopes must be among {', '.join(SCOPES)}; got {text!r}")
    return scopes


def _check(changes: AccountChanges) -> None:
    problems = []
    if changes.name is not None and (not changes.name.strip() or not changes.name.isprintable()):
        problems.append("--name must not be empty or hold control characters")
    if changes.time_zone is not None:
        try:
            ZoneInfo(changes.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"--time-zone {changes.time_zone!r} is not an IANA time zone")
    for option, url in (("--calcom-base-url", changes.calcom_base_url),
                        ("--callback-url", changes.callback_url),
                        ("--public-url", changes.public_url)):
        wrong = http_url_problem(url) if url is not None else None
        if wrong:
            problems.append(f"{option} {wrong}")
    if changes.event_type_id is not None and changes.event_type_id <= 0:
        problems.append("--event-type-id must be a positive number")
    if changes.duration_override_minutes is not None and not 1 <= changes.duration_override_minutes <= 1440:
        problems.append("--duration-override must be between 1 and 1440 minutes")
    if changes.calcom_api_key is not None and not changes.calcom_api_key.startswith("cal_"):
        problems.append("--calcom-api-key must be a Cal.com API key (it starts with cal_)")
    for secret in changes.calcom_webhook_secrets or ():
        if len(secret) < 16 or secret == "no-secret-provided":
            problems.append("--webhook-secret must be the webhook's secret, at least 16 characters")
    if changes.callback_secret is not None:
        wrong = signing.check_secret(changes.callback_secret)
        if wrong:
            problems.append(f"--callback-secret {wrong}")
    if problems:
        raise errors.ConfigurationError("; ".join(problems))


def _apply(account: Account, changes: AccountChanges, sealer: Sealer) -> None:
    if changes.name is not None:
        account.name = changes.name.strip()
    if changes.calcom_api_key is not None:
        account.calcom_api_key = sealer.seal(changes.calcom_api_key)
    if changes.calcom_base_url is not None:
        account.calcom_base_url = changes.calcom_base_url.rstrip("/")
    if changes.event_type_id is not None:
        account.default_event_type_id = changes.event_type_id
    if changes.time_zone is not None:
        account.time_zone = changes.time_zone
    if changes.duration_override_minutes is not None:
        account.duration_override_minutes = changes.duration_override_minutes
    if changes.callback_url is not None:
        account.callback_url = changes.callback_url
    if changes.callback_secret is not None:
        account.callback_secret = sealer.seal(changes.callback_secret)
    if changes.public_url is not None:
        account.public_url = changes.public_url.rstrip("/")
    if changes.calcom_webhook_secrets is not None:
        account.calcom_webhook_secrets = sealer.seal(json.dumps(list(changes.calcom_webhook_secrets)))


def follow_changes(db: Database, account: Account, changed: set[str], *, now: datetime) -> list[str]:
    """Queue what a change of settings calls for; answers the jobs' kinds (call inside its transaction).

    A new Cal.com key or base URL: the event types again. A new key or public URL, with a
    public URL set: the Cal.com webhook registered again (docs/webhooks.md), so Cal.com signs
    with a secret calsync holds and posts to where calsync is.
    """
    queued = []
    if changed & {"calcom_api_key", "calcom_base_url"}:
        queue.enqueue_event_type_refresh(db, account.id, now=now)
        queued.append(queue.REFRESH_EVENT_TYPES)
    if changed & {"calcom_api_key", "public_url"} and account.public_url:
        queue.enqueue_webhook_registration(db, account.id, now=now)
        queued.append("register_webhook")
    return queued


def webhook_secrets(account: Account, sealer: Sealer) -> list[str]:
    """The Cal.com webhook secrets this account accepts (empty when none is set)."""
    stored = sealer.open(account.calcom_webhook_secrets)
    return list(json.loads(stored)) if stored else []


def _new_sandbox_key() -> str:
    return SANDBOX_KEY_PREFIX + secrets.token_urlsafe(24)


def sandbox_key(db: Database, account: Account, sealer: Sealer) -> str:
    """The account's own key for the built-in sandbox; made on first use for older accounts.

    Each account is its own user there, so no account lists or changes another's bookings,
    webhooks or webhook secrets through the sandbox.
    """
    sealed: str | None = account.sandbox_api_key
    if sealed is None:
        with write_transaction(db):
            Account.update(sandbox_api_key=sealer.seal(_new_sandbox_key())).where(
                (Account.id == account.id) & Account.sandbox_api_key.is_null()).execute()
        # Another process may have set it first: whichever key was stored is the account's.
        sealed = account.sandbox_api_key = Account.get_by_id(account.id).sandbox_api_key
    if sealed is None:
        raise RuntimeError(f"account {account.id} has no sandbox key after setting one")
    return sealer.open(sealed)


def create_account(db: Database, changes: AccountChanges, sealer: Sealer, *, now: datetime,
                   token_scopes: frozenset[str] = frozenset(OWNER_SCOPES)) -> tuple[Account, str]:
    """A new account and its first token (returned in clear, once)."""
    if not changes.name:
        raise errors.ConfigurationError("--name is required")
    _check(changes)
    with write_transaction(db):
        account = Account(id=new_id("acc"), name="", time_zone="UTC", created_at=now, updated_at=now,
                          sandbox_api_key=sealer.seal(_new_sandbox_key()))
        _apply(account, changes, sealer)
        account.save(force_insert=True)
        _, token = create_token(db, account.id, "owner", token_scopes, now=now)
    return account, token


def update_account(db: Database, account_id: str, changes: AccountChanges, sealer: Sealer, *,
                   now: datetime) -> Account:
    _check(changes)
    with write_transaction(db):
        account = get_account(account_id)
        _apply(account, changes, sealer)
        account.updated_at = now
        account.save()
    return account


def get_account(account_id: str) -> Account:
    account = Account.find_by_id(account_id)
    if account is None:
        raise errors.ConfigurationError(f"no account {account_id!r}")
    return account


def describe_account(account: Account) -> dict[str, Any]:
    """An account without its secrets: only whether each one is set."""
    return {
        "id": account.id,
        "name": account.name,
        "calcom_api_key": "set" if account.calcom_api_key else "not set",
        "calcom_base_url": account.calcom_base_url,
        "event_type_id": account.default_event_type_id,
        "time_zone": account.time_zone,
        "duration_override_minutes": account.duration_override_minutes,
        "callback_url": account.callback_url,
        "callback_secret": "set" if account.callback_secret else "not set",
        "public_url": account.public_url,
        "calcom_webhook_secrets": "set" if account.calcom_webhook_secrets else "not set",
        "created_at": account.created_at.isoformat(),
    }


def create_token(db: Database, account_id: str, name: str, scopes: frozenset[str], *,
                 now: datetime) -> tuple[ApiToken, str]:
    if not name.strip():
        raise errors.ConfigurationError("a token needs a name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(db):
        get_account(account_id)
        row = ApiToken.create(
            id=new_id("tok"), account=account_id, name=name.strip(), token_hash=hash_token(token),
            scopes=" ".join(sorted(scopes)), created_at=now,
        )
    return row, token


def revoke_token(db: Database, token_id: str, *, now: datetime) -> ApiToken:
    with write_transaction(db):
        row = ApiToken.find_by_id(token_id)
        if row is None:
            raise errors.ConfigurationError(f"no token {token_id!r}")
        if row.revoked_at is None:
            row.revoked_at = now
            row.save()
    return row


def principal_of_token(db: Database, token_id: str, *, source: str) -> Principal:
    """The principal of a token known by its id (a console session names its token so); Unauthorized
    once the token is revoked or gone, so revoking a token ends its sessions too."""
    row = ApiToken.find_by_id(token_id)
    if row is None or row.revoked_at is not None:
        raise errors.Unauthorized("The session's token is unknown or revoked: sign in again.")
    return Principal(account_id=row.account_id, token_id=row.id, token_name=row.name,
                     scopes=frozenset(row.scopes.split()), source=source)


def authenticate(db: Database, token: str, *, now: datetime) -> Principal:
    """The principal behind a bearer token; Unauthorized if unknown or revoked."""
    row = _BY_HASH.first(token_hash=hash_token(token))
    # The hash lookup is an index probe on a secret-derived key; comparing again in
    # constant time keeps the check honest if the lookup ever becomes a scan.
    if row is None or row.revoked_at is not None or not secrets.compare_digest(
            row.token_hash, hash_token(token)):
        raise errors.Unauthorized("The bearer token is unknown or revoked.")
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        with write_transaction(db):
            ApiToken.update_by_id(row.id, last_used_at=now)
    return Principal(account_id=row.account_id, token_id=row.id, token_name=row.name,
                     scopes=frozenset(row.scopes.split()))


_BY_HASH: Prepared[ApiToken] = Prepared(lambda slot: ApiToken.select().where(
    ApiToken.token_hash == slot("token_hash")).limit(1))
