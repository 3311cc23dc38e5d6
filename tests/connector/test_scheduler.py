from __future__ import annotations

from datetime import timedelta

from connector.scheduler import PeriodicTask, Scheduler, refresh_all_event_types, sweep_stranded
from mappings.models import Appointment, Job
from tests.support.factories import put


def test_tasks_run_when_due_by_the_injected_clock(db, clock):
    calls = []
    scheduler = Scheduler(db, clock, [PeriodicTask("tick", timedelta(minutes=5),
                                                   lambda now: calls.append(now) or 0)])
    scheduler.run_due()
    scheduler.run_due()
    clock.advance(minutes=4)
    scheduler.run_due()
    clock.advance(minutes=1)
    scheduler.run_due()
    assert len(calls) == 2 and calls[1] - calls[0] == timedelta(minutes=5)


def test_a_failing_task_does_not_stop_the_others(db, clock):
    ran = []

    def broken(now):
        raise RuntimeError("boom")

    scheduler = Scheduler(db, clock, [PeriodicTask("broken", timedelta(minutes=1), broken),
                                      PeriodicTask("fine", timedelta(minutes=1), lambda now: ran.append(1) or 1)])
    assert scheduler.run_due() == {"fine": 1}


def test_the_sweep_requeues_stranded_appointments_once(db, clock, make_account):
    account = make_account()[0]
    stranded = put(db, account, "crm-1", now=clock.now()).appointment
    put(db, account, "crm-2", now=clock.now())
    Job.delete().where(Job.payload.contains(stranded.id)).execute()  # lost, e.g. by a restore
    sweep = sweep_stranded(db)
    assert sweep(clock.now()) == 1
    assert sweep(clock.now()) == 0
    assert Job.select().where(Job.status == "queued").count() == 2
    Appointment.update(sync_state="synced", synced_version=1).execute()
    Job.delete().execute()
    assert sweep(clock.now()) == 0


def test_event_types_are_refreshed_for_every_account(db, clock, make_account):
    make_account("A")
    make_account("B")
    assert refresh_all_event_types(db)(clock.now()) == 2
    assert refresh_all_event_types(db)(clock.now()) == 2
    assert Job.select().where(Job.kind == "refresh_event_types").count() == 2  # coalesced
