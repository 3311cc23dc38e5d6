from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from connector import cli
from mappings.models import Account, ApiToken

SECRET = "cal_live_TOPSECRETKEY123"
CALLBACK = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of key material


@pytest.fixture(autouse=True)
def restore_logging():
    """cli.main configures the root logger; later tests must not log into a closed capture."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def run(db, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no config/calsync.toml here: defaults and the environment
    monkeypatch.setenv("CALSYNC_DATABASE_URL", db.url)
    monkeypatch.setenv("CALSYNC_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("CALSYNC_LOG_LEVEL", "warning")

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_help_lists_every_command_and_each_has_an_example(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    for name in ("serve", "worker", "migrate", "sandbox", "accounts", "tokens", "webhooks", "reconcile",
                 "event-types", "import", "jobs"):
        assert name in top
    for argv in (["serve"], ["worker"], ["migrate"], ["sandbox"], ["accounts"], ["accounts", "create"],
                 ["accounts", "update"], ["accounts", "list"], ["tokens"], ["tokens", "create"],
                 ["tokens", "revoke"], ["tokens", "list"], ["webhooks"], ["webhooks", "register"],
                 ["reconcile"], ["event-types"], ["event-types", "refresh"], ["import"], ["jobs"],
                 ["jobs", "list"], ["jobs", "retry"]):
        with pytest.raises(SystemExit):
            cli.main([*argv, "--help"])
        assert "example:" in capsys.readouterr().out, argv


def test_accounts_create_prints_the_token_once_and_stores_its_hash(run):
    code, out, _ = run("accounts", "create", "--name", "Acme", "--event-type-id", "123456",
                       "--time-zone", "Europe/Berlin", "--calcom-api-key", SECRET, "--json")
    assert code == 0
    created = json.loads(out)
    assert created["account_id"].startswith("acc_") and created["token"].startswith("csk_")
    account = Account.get_by_id(created["account_id"])
    assert account.calcom_api_key.startswith("fernet:") and SECRET not in account.calcom_api_key
    token_row = ApiToken.get(ApiToken.account == account.id)
    assert created["token"] not in token_row.token_hash and len(token_row.token_hash) == 64


def test_accounts_list_and_update_never_show_secrets(run):
    _, out, _ = run("accounts", "create", "--name", "Acme", "--calcom-api-key", SECRET, "--json")
    account_id = json.loads(out)["account_id"]
    code, out, _ = run("accounts", "update", account_id, "--time-zone", "America/New_York",
                       "--callback-url", "https://crm.example.org/hooks", "--callback-secret", CALLBACK,
                       "--json")
    assert code == 0 and json.loads(out)["time_zone"] == "America/New_York"
    assert json.loads(out)["callback_secret"] == "set"
    code, listing, _ = run("accounts", "list", "--json")
    assert code == 0
    assert json.loads(listing)[0]["calcom_api_key"] == "set"
    for text in (out, listing, run("accounts", "list")[1]):
        assert SECRET not in text and CALLBACK not in text


def test_a_key_can_come_from_stdin(run, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code, out, _ = run("accounts", "create", "--name", "Piped", "--calcom-api-key", "-", "--json")
    assert code == 0 and SECRET not in out
    assert Account.get_by_id(json.loads(out)["account_id"]).calcom_api_key.startswith("fernet:")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["accounts", "create", "--name", "X", "--time-zone", "Nowhere"], "--time-zone"),
    (["accounts", "create", "--name", "X", "--calcom-api-key", "sk_live_x"], "--calcom-api-key"),
    (["accounts", "create", "--name", "X", "--scopes", "everything"], "scopes"),
    (["accounts", "update", "acc_missing", "--name", "Y"], "no account"),
    (["tokens", "revoke", "tok_missing"], "no token"),
    (["accounts", "create", "--name", "X", "--callback-secret", "s3cret"], "whsec_"),
    (["accounts", "create", "--name", "X", "--callback-secret", "whsec_c2VjcmV0"], "24 to 64 bytes"),
])
def test_bad_options_exit_2_with_a_clear_message(run, argv, fragment):
    code, _, err = run(*argv)
    assert code == 2 and fragment in err


def test_tokens_create_list_and_revoke(run):
    account_id = json.loads(run("accounts", "create", "--name", "Acme", "--json")[1])["account_id"]
    code, out, _ = run("tokens", "create", "--account", account_id, "--name", "crm", "--json")
    made = json.loads(out)
    assert code == 0 and made["scopes"] == ["appointments:read", "appointments:write"]
    listing = json.loads(run("tokens", "list", "--account", account_id, "--json")[1])
    assert {t["name"] for t in listing} == {"owner", "crm"} and made["token"] not in json.dumps(listing)
    assert run("tokens", "revoke", made["token_id"])[0] == 0
    listing = json.loads(run("tokens", "list", "--account", account_id, "--json")[1])
    assert [t["revoked"] for t in listing if t["name"] == "crm"] == [True]


def test_invalid_settings_stop_with_every_bad_key(run, monkeypatch):
    monkeypatch.setenv("CALSYNC_WORKER_CONCURRENCY", "many")
    monkeypatch.setenv("CALSYNC_SERVER_PORT", "70000")
    code, _, err = run("migrate")
    assert code == 2 and "worker.concurrency" in err and "server.port" in err


def test_migrate_reports_a_current_database(run):
    code, out, _ = run("migrate")
    assert code == 0 and "already current" in out


def test_a_callback_secret_can_be_generated_and_is_shown_once(run):
    account_id = json.loads(run("accounts", "create", "--name", "Acme", "--json")[1])["account_id"]
    code, out, _ = run("accounts", "update", account_id, "--callback-url", "https://crm.example.org/h",
                       "--callback-secret", "generate")
    assert code == 0
    secret = out.split("give it to the CRM: ")[1].split()[0]
    assert secret.startswith("whsec_")
    assert Account.get_by_id(account_id).callback_secret.startswith("fernet:")


def test_reconcile_and_event_types_refresh_against_a_sandbox(run, monkeypatch):
    from connector.clock import SystemClock
    from connector.sandbox.app import create_sandbox
    from connector.settings import SandboxSettings
    from mappings.sealing import Sealer
    from tests.support.factories import sandbox_user
    from tests.support.servers import ServerThread

    sandbox = create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000))
    with ServerThread(sandbox.app) as calcom:
        monkeypatch.setenv("CALSYNC_SANDBOX_URL", calcom.url)
        code, out, _ = run("accounts", "create", "--name", "Acme", "--json")
        account_id = json.loads(out)["account_id"]
        start = SystemClock().now().replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=7)
        while start.weekday() >= 5:  # the sandbox host works Monday to Friday
            start += timedelta(days=1)
        walk_in = sandbox_user(sandbox, Account.get_by_id(account_id), Sealer("cli-test-secret"))
        sandbox.calendar.create_booking({
            "start": start.isoformat(), "eventTypeId": 123456,
            "attendee": {"name": "Walk-in", "email": "walk-in@example.org", "timeZone": "UTC"}},
            "/cli-test", f"{calcom.url}/video", host=walk_in)
        code, out, err = run("reconcile", "--account", account_id, "--full")
        assert code == 0, err
        assert f"{account_id}: full pass, 1 pages, 1 bookings, repairs: imported 1" in out
        code, out, err = run("event-types", "refresh", "--account", account_id)
        assert code == 0, err
        assert out.startswith(f"{account_id}: added 7 (123456, 123457, 123789, 123999, 124000, 124100, 124200), changed 0, removed 0")
    sandbox.hub.close()


def _new_account(run) -> str:
    code, out, _ = run("accounts", "create", "--name", "Acme", "--event-type-id", "123456",
                       "--time-zone", "Europe/Berlin", "--json")
    assert code == 0
    return json.loads(out)["account_id"]


def test_import_a_file_then_again_changes_nothing(run, tmp_path):
    from mappings.models import Appointment, AuditEvent

    account_id = _new_account(run)
    path = tmp_path / "leads.csv"
    path.write_text("external_id,title,attendee_name,attendee_email,start_time\n"
                    "c-1,Intro,Ana,ana@example.org,2026-03-20T09:00:00Z\n"
                    "c-2,Intro,Bo,not-an-email,2026-03-21T09:00:00Z\n")
    code, out, _ = run("import", "--account", account_id, str(path))
    assert code == 1  # a row was invalid
    assert "row 2 c-2: invalid: attendee_email is not a valid email address" in out
    assert "created 1" in out and "invalid 1" in out
    assert AuditEvent.get(AuditEvent.action == "appointment.created").actor == "import:cli"
    assert Appointment.get().source == "import"
    code, out, _ = run("import", "--account", account_id, "--json", str(path))
    assert json.loads(out)["counts"]["unchanged"] == 1
    assert Appointment.select().count() == 1
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps({"external_id": "c-3", "title": "T", "attendee_name": "Cy",
                                 "attendee_email": "cy@example.org",
                                 "start_time": "2026-03-22T09:00:00Z"}) + "\n")
    assert run("import", "--account", account_id, str(jsonl))[0] == 0
    code, _, err = run("import", "--account", account_id, str(tmp_path / "missing.csv"))
    assert code == 2 and "cannot read" in err
    (tmp_path / "bad.csv").write_text("external_id,colour\nx,red\n")
    code, _, err = run("import", "--account", account_id, str(tmp_path / "bad.csv"))
    assert code == 2 and "'colour' is not a column" in err


def test_jobs_list_and_retry_a_dead_job(run, db, clock):
    from connector.jobs import queue
    from mappings.models import Job

    # Before the first command: each command binds the models to a database of its own.
    job_id = queue.enqueue(db, "converge", now=clock.now(), account_id="acc_x",
                           payload={"appointment_id": "apt_x"})
    Job.update(status="dead", last_error="Cal.com refused").where(Job.id == job_id).execute()
    code, out, _ = run("jobs", "list", "--status", "dead", "--json")
    assert code == 0 and [row["id"] for row in json.loads(out)] == [job_id]
    code, out, _ = run("jobs", "retry", str(job_id))
    assert code == 0 and "queued again" in out
    assert Job.get_by_id(job_id).status == "queued"
    code, _, err = run("jobs", "retry", str(job_id))
    assert code == 2 and "only dead jobs" in err
    assert run("jobs", "retry", "999999")[0] == 2
