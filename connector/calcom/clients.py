"""Which Cal.com each account talks to, and with which key.

An account with its own key talks to its base URL (default ``calcom.base_url``).
An account without one talks to the sandbox when one is configured
(``sandbox.mode = "auto"``); with ``sandbox.mode = "on"`` every account does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx

from connector import errors
from connector.calcom import CalcomClient
from connector.calcom.ratelimit import RateLimiter
from connector.core import accounts
from connector.settings import Settings
from mappings.db import bound_database
from mappings.models import Account
from mappings.sealing import Sealer, SealingError


class CalcomClients:
    def __init__(self, http: httpx.Client, settings: Settings, sealer: Sealer, *,
                 sandbox_url: str | None = None, sleep: Callable[[float], None] | None = None,
                 limiter: RateLimiter | None = None) -> None:
        self.http = http
        self.settings = settings
        self.sealer = sealer
        self.sandbox_url = sandbox_url
        self.limiter = limiter
        self._sleep = sleep

    def uses_sandbox(self, account: Account) -> bool:
        if self.sandbox_url is None:
            return False
        return self.settings.sandbox.mode == "on" or not account.calcom_api_key

    def for_account(self, account: Account, *, patient: bool = False,
                    candidate_key: str | None = None) -> CalcomClient:
        """The account's client; ``patient`` waits for the rate limiter's next slot instead of
        raising ``RateLimitDeferred`` (for long passes that are not a queued job's one call).
        ``candidate_key`` is a key not yet saved, to be tried where the account would use it."""
        base_url, key = self._destination(account, candidate_key)
        extra: dict[str, Any] = {} if self._sleep is None else {"sleep": self._sleep}
        if self.limiter is not None:
            limiter, bucket = self.limiter, allowance_of(base_url, key)
            extra["before_request"] = lambda: limiter.acquire(bucket, patient=patient)
            extra["on_rate_limit"] = lambda info: limiter.observe(bucket, info)
        return CalcomClient(
            self.http,
            base_url=base_url,
            api_key=key,
            connect_timeout=self.settings.calcom.connect_timeout_seconds,
            read_timeout=self.settings.calcom.read_timeout_seconds,
            read_attempts=self.settings.calcom.read_attempts,
            **extra,
        )

    def allowance(self, account: Account) -> str | None:
        """The rate-limit bucket the account's calls spend (None when its key cannot be read)."""
        try:
            return allowance_of(*self._destination(account, None))
        except errors.CalcomAuthError:
            return None

    def _destination(self, account: Account, candidate_key: str | None) -> tuple[str, str]:
        """The base URL and key the account's calls go to."""
        own_base_url = account.calcom_base_url or self.settings.calcom.base_url
        if candidate_key is not None:
            if self.sandbox_url is not None and self.settings.sandbox.mode == "on":
                return self.sandbox_url, candidate_key
            return own_base_url, candidate_key
        if self.sandbox_url is not None and self.uses_sandbox(account):
            try:
                return self.sandbox_url, accounts.sandbox_key(bound_database(), account, self.sealer)
            except SealingError as exc:
                raise errors.CalcomAuthError(f"the account's sandbox key cannot be read: {exc}") from None
        try:
            key = self.sealer.open(account.calcom_api_key)
        except SealingError as exc:
            raise errors.CalcomAuthError(f"the account's Cal.com key cannot be read: {exc}") from None
        if not key:
            raise errors.CalcomAuthError(
                "the account has no Cal.com API key; set one with "
                "'calsync accounts update ID --calcom-api-key …'")
        return own_base_url, key


def allowance_of(base_url: str, key: str) -> str:
    """Cal.com's allowance is per API key: accounts (and processes) sharing a key share it. The
    key itself is never stored; a hash of it and of where it is used names the bucket."""
    return hashlib.sha256(f"{base_url}\0{key}".encode()).hexdigest()[:40]
