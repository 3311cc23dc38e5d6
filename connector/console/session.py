"""The console's sign-in session: a sealed, expiring, HttpOnly, SameSite=Strict cookie, and the
CSRF token every form carries.

The cookie holds the signed-in token's id (never the token), a random nonce and the time it
was issued, sealed with Fernet (encrypted and authenticated) under a key derived from
``CALSYNC_SECRET_KEY`` — or, without one, a key made at start, so sessions end with the
process. Every request looks the token up again, so revoking it ends its sessions. The CSRF
token is an HMAC of the session's nonce: a page of another site cannot read it, and it is
worthless outside its session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "calsync_console"
VIEW_COOKIE = "calsync_console_view"  # table or calendar, kept for the browser session
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Session:
    token_id: str
    nonce: str
    issued_at: datetime


class SessionCodec:
    def __init__(self, secret_key: str | None, lifetime: timedelta) -> None:
        material = (b"calsync-console-v1:" + secret_key.encode()) if secret_key else secrets.token_bytes(32)
        digest = hashlib.sha256(material).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        self._csrf_key = hashlib.sha256(b"calsync-console-csrf:" + digest).digest()
        self.lifetime = lifetime
        self.ephemeral = not secret_key

    def issue(self, token_id: str, now: datetime) -> str:
        body = json.dumps({"t": token_id, "n": secrets.token_urlsafe(16)}).encode()
        return self._fernet.encrypt_at_time(body, int(now.timestamp())).decode()

    def read(self, cookie: str | None, now: datetime) -> Session | None:
        """The session a cookie holds, or None if it is absent, forged or expired."""
        if not cookie or len(cookie) > 1000:
            return None
        try:
            raw = self._fernet.decrypt_at_time(cookie.encode(), int(self.lifetime.total_seconds()),
                                               int(now.timestamp()))
            issued = self._fernet.extract_timestamp(cookie.encode())
            body = json.loads(raw)
        except (InvalidToken, ValueError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("t"), str) or not isinstance(body.get("n"), str):
            return None
        return Session(token_id=body["t"], nonce=body["n"],
                       issued_at=datetime.fromtimestamp(issued, tz=now.tzinfo))

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf_token(session), str(sent))
