"""`calsync serve` as a real process, following the README's quickstart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.support.servers import free_port, wait_for

pytestmark = pytest.mark.integration

KEY = "cal_live_NEVERPRINTED42"


def _env(db, tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    env.update(CALSYNC_DATABASE_URL=db.url, CALSYNC_SECRET_KEY="process-test", **extra)
    return env


def _cli(env, cwd, *argv) -> str:
    done = subprocess.run([sys.executable, "-m", "connector.cli", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_serve_books_through_the_built_in_sandbox_and_says_so(db, tmp_path):
    env = _env(db, tmp_path)
    created = json.loads(_cli(env, tmp_path, "accounts", "create", "--name", "demo",
                              "--event-type-id", "123456", "--json").strip().splitlines()[-1])
    # A second account with a real key must never leak it, even though serve logs at debug.
    _cli(env, tmp_path, "accounts", "create", "--name", "keyed", "--calcom-api-key", KEY)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "CALSYNC_LOG_LEVEL": "debug", "CALSYNC_SERVER_ACCESS_LOG": "true"}, cwd=tmp_path,
            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(base), what="calsync serve to answer /healthz")
        auth = {"Authorization": f"Bearer {created['token']}"}
        put = httpx.put(f"{base}/v1/appointments/crm-42", headers=auth, timeout=10, json={
            "title": "Intro call", "attendee_name": "Alex Prospect",
            "attendee_email": "alex@example.org", "start_time": "2030-01-15T11:00:00+01:00"})
        assert put.status_code == 201
        shown = wait_for(lambda: _active(base, auth), what="the appointment to become active")
        assert shown["booking_uid"] and shown["meeting_url"].startswith(f"{base}/sandbox/video/")
        assert httpx.get(shown["meeting_url"]).status_code == 200
        # A token in a URL (the feed's way) reaches the access log only redacted.
        assert httpx.get(f"{base}/v1/calendar.ics", params={"token": created["token"]}).status_code == 403
        assert "Sign in" in httpx.get(f"{base}/console/sign-in").text  # the console, same process
    finally:
        process.terminate()
        process.wait(timeout=20)
    output = log_path.read_text()
    first_lines = "\n".join(output.splitlines()[:6])
    assert "sandbox" in first_lines.lower()
    assert f"{base}/console" in output  # the log names the console's address
    access = [json.loads(line)["msg"] for line in output.splitlines()
              if line.startswith("{") and json.loads(line)["logger"] == "uvicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in access)  # server.access_log = true
    assert KEY not in output
    assert created["token"] not in output


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _active(base: str, auth: dict[str, str]):
    body = httpx.get(f"{base}/v1/appointments/crm-42", headers=auth, timeout=5).json()
    return body if body["status"] == "active" else None
