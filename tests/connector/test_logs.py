from __future__ import annotations

import json
import logging

from connector.logs import JsonFormatter, TextFormatter


def _record(**extra) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "calsync.test", "levelno": logging.INFO,
                                    "levelname": "INFO", "msg": "hello"})
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_action_and_ids_and_redact_secrets():
    line = JsonFormatter().format(_record(action="sync.create", appointment_id="apt_1",
                                          api_key="cal_live_x", webhook_secret="whsec_y",
                                          authorization="Bearer z"))
    entry = json.loads(line)
    assert entry["action"] == "sync.create" and entry["appointment_id"] == "apt_1"
    assert entry["api_key"] == entry["webhook_secret"] == entry["authorization"] == "[redacted]"
    assert "cal_live_x" not in line and "whsec_y" not in line


def test_text_lines_redact_too():
    line = TextFormatter().format(_record(action="x", token="csk_secret"))
    assert "csk_secret" not in line and "token=[redacted]" in line


def test_the_access_log_setting_decides_whether_uvicorn_logs_each_request():
    from connector import logs

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for enabled, expected in ((True, logging.INFO), (False, logging.WARNING)):
            logs.configure("warning", "json", access_log=enabled)
            assert logging.getLogger("uvicorn.access").level == expected
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_the_access_log_never_shows_the_feeds_token():
    from connector.logs import RedactQueries

    record = logging.makeLogRecord({"name": "uvicorn.access", "msg": '%s - "%s %s HTTP/%s" %d', "args": (
        "127.0.0.1:5000", "GET", "/v1/calendar.ics?x=1&token=csk_SECRET&Signature=abc", "1.1", 200)})
    assert RedactQueries().filter(record)
    line = record.getMessage()
    assert "csk_SECRET" not in line and "abc" not in line
    assert "token=[redacted]" in line and "x=1" in line
