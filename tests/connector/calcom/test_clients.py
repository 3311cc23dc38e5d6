"""Each account talks to the built-in sandbox with a key of its own, so tenants stay apart there."""

from __future__ import annotations

import pytest

from connector.core import accounts, subscription
from connector.core.reconcile import Reconciler
from connector.serve import sandbox_plan
from connector.settings import Settings
from mappings.models import Account, Appointment

BODY = {"title": "Intro call", "attendee_name": "Alex", "attendee_email": "alex@example.org",
        "start_time": "2026-03-17T11:00:00+01:00"}


def test_every_account_has_its_own_sandbox_key_and_an_old_account_gets_one_on_first_use(db, make_account,
                                                                                       sealer):
    first, second = make_account("A")[0], make_account("B")[0]
    keys = {accounts.sandbox_key(db, account, sealer) for account in (first, second)}
    assert len(keys) == 2 and all(key.startswith("cal_sandbox_") for key in keys)
    assert Account.get_by_id(first.id).sandbox_api_key.startswith("fernet:")  # sealed at rest
    Account.update(sandbox_api_key=None).where(Account.id == first.id).execute()  # made before schema 6
    made = accounts.sandbox_key(db, Account.get_by_id(first.id), sealer)
    assert made not in keys and accounts.sandbox_key(db, Account.get_by_id(first.id), sealer) == made


def test_two_accounts_on_the_sandbox_never_see_each_others_bookings_or_webhooks(
        client, app, db, clock, make_account, run_jobs, sealer, sandbox):
    mine, theirs = (make_account(name, public_url=f"https://{name}.example.org") for name in ("a", "b"))
    for (account, token), start in ((mine, "2026-03-17T11:00:00+01:00"), (theirs, "2026-03-17T11:00:00+01:00")):
        answer = client.put("/v1/appointments/crm-1", json={**BODY, "start_time": start},
                            headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 201
        subscription.register(db, clock, app.state.runtime.clients, sealer, account.id)
    run_jobs()
    booked = {row.account_id: row.booking_uid for row in Appointment.select()}
    assert len(booked) == 2 and all(booked.values())  # the same slot: two users, two calendars
    reconciler = Reconciler(db, clock, app.state.runtime.clients, "https://cal.com")
    for account, _ in (mine, theirs):
        run = reconciler.run(account.id, full=True, trigger="cli")
        assert run.repairs == {} and run.bookings_seen == 1
    hooks = [app.state.runtime.clients.for_account(Account.get_by_id(account.id)).list_webhooks()
             for account, _ in (mine, theirs)]
    assert [[hook["subscriberUrl"] for hook in listed] for listed in hooks] == [
        [f"https://a.example.org/webhooks/calcom/{mine[0].id}"],
        [f"https://b.example.org/webhooks/calcom/{theirs[0].id}"]]


@pytest.mark.parametrize(("host", "mode", "url", "expected"), [
    ("127.0.0.1", "auto", "", ("http://127.0.0.1:8000/sandbox", True)),
    ("localhost", "auto", "", ("http://localhost:8000/sandbox", True)),
    ("::1", "auto", "", ("http://[::1]:8000/sandbox", True)),
    ("0.0.0.0", "auto", "", (None, False)),
    ("192.0.2.10", "auto", "", (None, False)),
    ("0.0.0.0", "on", "", ("http://127.0.0.1:8000/sandbox", True)),
    ("0.0.0.0", "auto", "http://10.0.0.5:8010", ("http://10.0.0.5:8010", False)),
    ("127.0.0.1", "off", "", (None, False)),
])
def test_serve_mounts_the_sandbox_on_loopback_only_unless_told(host, mode, url, expected):
    settings = Settings().replace(server={"host": host}, sandbox={"mode": mode, "url": url})
    assert sandbox_plan(settings) == expected


def test_serve_says_loudly_when_the_sandbox_faces_the_network(caplog):
    from connector.serve import _warn_about_the_sandbox

    exposed = Settings().replace(server={"host": "0.0.0.0"}, sandbox={"mode": "on"})
    with caplog.at_level("WARNING", logger="calsync.serve"):
        _warn_about_the_sandbox(exposed, embedded=True)
        _warn_about_the_sandbox(exposed.replace(sandbox={"mode": "auto"}), embedded=False)
        _warn_about_the_sandbox(Settings(), embedded=True)  # loopback: nothing to say
    assert [record.action for record in caplog.records] == ["serve.sandbox_exposed",
                                                           "serve.sandbox_not_mounted"]
    assert "NOT LOOPBACK" in caplog.records[0].getMessage()
