"""Structured logs: one JSON object a line with an ``action`` and ids; secrets never appear.

Any ``extra`` field whose name suggests a secret is replaced by ``"[redacted]"``, so is
the value of a secret query parameter in uvicorn's access line (the feed's token),
and httpx's own request log (which would print URLs with attendee emails) is
kept at WARNING, as is peewee's (at DEBUG it prints every SQL statement with its
parameters: sealed secrets, attendee emails).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
# A query parameter that carries a secret: the calendar feed's token (GET /v1/calendar.ics?token=…).
_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|key|secret|signature)[^=&]*=)[^&\s]*")
_SECRET_WORDS = ("key", "secret", "token", "authorization", "password", "signature")


def _redacted(name: str, value: object) -> object:
    lowered = name.lower()
    return "[redacted]" if any(word in lowered for word in _SECRET_WORDS) else value


def redact_query(text: str) -> str:
    """``text`` with the values of secret-looking query parameters replaced."""
    return _SECRET_QUERY.sub(r"\1[redacted]", text)


class RedactQueries(logging.Filter):
    """uvicorn's access line shows the whole path: its query's secrets go before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = _redacted(name, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={_redacted(k, v)}" for k, v in vars(record).items()
                          if k not in _STANDARD and not k.startswith("_"))
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.getMessage()}"
        line = f"{line}  {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "info", fmt: str = "json", *, access_log: bool = False) -> None:
    """``access_log`` (server.access_log) lets uvicorn's line per request through at INFO."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "peewee"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    if not any(isinstance(f, RedactQueries) for f in access.filters):
        access.addFilter(RedactQueries())
