"""A stored delivery is its own queue entry until the account's dispatcher gives it its apply
job: once, in order of receipt, never before the delivery is visible to the dispatcher."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import timedelta

import pytest

from connector.jobs import queue, sweeps
from mappings.db import session, write_transaction
from mappings.models import Job, WebhookDelivery
from webhooks import calcom, dispatch, events


@pytest.fixture
def account(make_account):
    return make_account(calcom_webhook_secrets=("whsec-dispatch-0123456789",))[0]


_SENT = itertools.count()


def _incoming(account, clock, uid: str, trigger: str = "BOOKING_CANCELLED") -> calcom.Incoming:
    """A distinct body each time (Cal.com's createdAt differs between its deliveries)."""
    sent = (clock.now() + timedelta(milliseconds=next(_SENT))).isoformat()
    raw = json.dumps({"triggerEvent": trigger, "createdAt": sent,
                      "payload": {"uid": uid, "status": "CANCELLED"}}, separators=(",", ":")).encode()
    return calcom.Incoming(account.id, events.headline(json.loads(raw), raw), raw, clock.now())


def _store(db, account, clock, *uids: str) -> list[int]:
    return [receipt.delivery_id for receipt in
            calcom.store(db, [_incoming(account, clock, uid) for uid in uids])]


def _apply_jobs() -> list[Job]:
    return list(Job.select().where(Job.kind == dispatch.APPLY_WEBHOOK).order_by(Job.id))


def test_the_door_writes_the_delivery_and_one_dispatcher_per_account(db, account, clock):
    _store(db, account, clock, "uid-a", "uid-b")
    _store(db, account, clock, "uid-c")
    (dispatcher,) = Job.select()
    assert (dispatcher.kind, dispatcher.status, dispatcher.serial_key) == (
        dispatch.DISPATCH_WEBHOOKS, "queued", f"account:{account.id}:webhooks")
    assert _apply_jobs() == []


def test_dispatch_gives_each_delivery_one_apply_job_in_order_of_receipt(db, account, clock):
    ids = _store(db, account, clock, "uid-a", "uid-b", "uid-a", "uid-c", "uid-d")
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=2) == 2
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=2) == 2
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=2) == 1
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=2) == 0  # nothing twice
    jobs = _apply_jobs()
    assert [job.payload["delivery_id"] for job in jobs] == ids
    keys = [job.serial_key for job in jobs]
    assert keys[0] == keys[2] and len(set(keys)) == 4  # one booking's deliveries share a key
    assert not WebhookDelivery.select().where(WebhookDelivery.queued_at.is_null()).exists()


def test_a_claimed_dispatcher_gets_a_successor_for_what_arrives_while_it_runs(db, account, clock):
    _store(db, account, clock, "uid-a")
    running = queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60)
    assert running.kind == dispatch.DISPATCH_WEBHOOKS
    _store(db, account, clock, "uid-b")
    waiting = Job.get((Job.kind == dispatch.DISPATCH_WEBHOOKS) & (Job.status == "queued"))
    assert waiting.id != running.id
    # It waits for the running one (same serial key), then finds uid-b.
    assert queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60) is None


def test_a_dispatcher_in_backoff_is_made_due_by_the_next_delivery(db, account, clock):
    _store(db, account, clock, "uid-a")
    Job.update(run_at=clock.now() + timedelta(minutes=10)).execute()
    _store(db, account, clock, "uid-b")
    assert Job.get().run_at == clock.now()


def test_the_dispatcher_never_starts_before_the_deliveries_it_is_for_are_visible(db, account, clock):
    """The door's transaction touches the queued dispatcher: on PostgreSQL its row stays locked,
    so a claim skips it; SQLite serialises the claim behind the door. Either way, a dispatcher
    that is claimed sees the delivery."""
    _store(db, account, clock, "uid-first")  # a dispatcher already queued and committed
    stored, release, seen = threading.Event(), threading.Event(), []

    def door() -> None:
        with session(db), write_transaction(db):
            calcom.store(db, [_incoming(account, clock, "uid-late")])
            stored.set()
            release.wait(10)

    def claimer() -> None:
        with session(db):
            job = queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60)
            if job is not None:
                seen.append(WebhookDelivery.select().where(WebhookDelivery.booking_uid == "uid-late").exists())

    writing = threading.Thread(target=door)
    writing.start()
    assert stored.wait(10)
    claiming = threading.Thread(target=claimer)
    claiming.start()
    claiming.join(0.3)
    release.set()
    writing.join(10)
    claiming.join(20)
    assert not writing.is_alive() and not claiming.is_alive()
    assert seen in ([], [True])  # skipped while locked (PostgreSQL), or claimed after the commit
    while queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60) is not None:
        pass
    assert Job.select().where(Job.status == "queued").count() == 0


def test_the_handler_drains_a_backlog_in_batches_and_wakes_the_workers(db, account, clock, monkeypatch):
    monkeypatch.setattr(dispatch, "BATCH", 3)
    _store(db, account, clock, *[f"uid-{n}" for n in range(7)])
    wakes = []
    handler = dispatch.DispatchHandler(db, clock, wake=lambda: wakes.append(1))
    handler.run(Job.get(Job.kind == dispatch.DISPATCH_WEBHOOKS))
    assert len(_apply_jobs()) == 7 and len(wakes) == 3


def test_the_sweep_gives_undispatched_deliveries_their_dispatcher_back(db, account, clock):
    """A restore or a bug that lost the dispatcher must not strand what Cal.com was told is stored."""
    _store(db, account, clock, "uid-a")
    Job.delete().execute()
    sweeps.sweep_stranded(db, clock.now())
    assert Job.get().kind == dispatch.DISPATCH_WEBHOOKS
    sweeps.sweep_stranded(db, clock.now())
    assert Job.select().count() == 1  # touched, not doubled


def test_ignored_deliveries_are_never_dispatched(db, account, clock):
    ping = json.dumps({"triggerEvent": "PING", "payload": {}}).encode()
    calcom.store(db, [calcom.Incoming(account.id, events.headline(json.loads(ping), ping), ping, clock.now())])
    assert Job.select().count() == 0 and WebhookDelivery.get().outcome == "ignored"


def test_a_body_stored_twice_is_applied_once_and_recorded_as_a_duplicate(db, account, clock):
    """Two processes' doors each stored it (no index on the body is paid there): the
    dispatcher keeps the first and closes the other, across batches too."""
    body = _incoming(account, clock, "uid-a")
    (receipt, again) = calcom.store(db, [body, body])  # the same batch: one row
    assert (receipt.outcome, again.outcome, again.delivery_id) == ("accepted", "duplicate", receipt.delivery_id)
    second = calcom.store(db, [body])[0].delivery_id  # another process's door: a row of its own
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=10) == 2
    third = calcom.store(db, [body])[0].delivery_id  # and after the first was dispatched
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=10) == 1
    assert [job.payload["delivery_id"] for job in _apply_jobs()] == [receipt.delivery_id]
    for repeat in (second, third):
        row = WebhookDelivery.get_by_id(repeat)
        assert row.outcome == "duplicate" and row.processed_at is not None
        assert row.error == f"the same body as delivery {receipt.delivery_id}"


def test_the_same_body_to_two_accounts_is_no_duplicate(db, account, make_account, clock):
    other = make_account("Other CRM", calcom_webhook_secrets=("whsec-other-0123456789abc",))[0]
    body = _incoming(account, clock, "uid-a")
    calcom.store(db, [body, calcom.Incoming(other.id, body.event, body.raw_body, body.received_at)])
    for tenant in (account, other):
        assert dispatch.dispatch(db, tenant.id, now=clock.now(), batch=10) == 1
    assert len(_apply_jobs()) == 2


def test_an_unreadable_row_fails_alone_and_the_rest_are_dispatched(db, account, clock):
    first, second = _store(db, account, clock, "uid-a", "uid-b")
    WebhookDelivery.update(raw_body="[not json").where(WebhookDelivery.id == first).execute()
    assert dispatch.dispatch(db, account.id, now=clock.now(), batch=10) == 2
    assert WebhookDelivery.get_by_id(first).outcome == "failed"
    assert [job.payload["delivery_id"] for job in _apply_jobs()] == [second]
