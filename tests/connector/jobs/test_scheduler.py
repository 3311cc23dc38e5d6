from __future__ import annotations

from datetime import timedelta

from connector.jobs import queue
from connector.jobs.scheduler import PeriodicTask, Scheduler, for_every_account
from connector.jobs.sweeps import sweep_stranded
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
    def sweep(now):
        return sweep_stranded(db, now)

    assert sweep(clock.now()) == 1
    assert sweep(clock.now()) == 0
    assert Job.select().where(Job.status == "queued").count() == 2
    Appointment.update(sync_state="synced", synced_version=1).execute()
    Job.delete().execute()
    assert sweep(clock.now()) == 0


def test_event_types_are_refreshed_for_every_account(db, clock, make_account):
    make_account("A")
    make_account("B")
    refresh_all_event_types = for_every_account(
        lambda account, now: queue.enqueue_event_type_refresh(db, account, now=now))
    assert refresh_all_event_types(clock.now()) == 2
    assert refresh_all_event_types(clock.now()) == 2
    assert Job.select().where(Job.kind == "refresh_event_types").count() == 2  # coalesced


def test_several_workers_run_each_task_once_per_period(db, clock):
    """Four schedulers (as in four worker processes), each on its own thread and connection,
    racing at every tick of ten periods."""
    import threading
    from collections import Counter

    from mappings.db import session as db_session

    runs: Counter[tuple[str, int]] = Counter()
    guard = threading.Lock()

    def task(name):
        def run(now):
            with guard:
                runs[(name, int((now - start).total_seconds() // 300))] += 1
            return 1
        return run

    start = clock.now()
    schedulers = [Scheduler(db, clock, [PeriodicTask("reconcile", timedelta(minutes=5), task("reconcile")),
                                        PeriodicTask("briefings", timedelta(minutes=5), task("briefings"))],
                            owner=f"worker-{index}") for index in range(4)]
    barrier = threading.Barrier(len(schedulers))
    failures = []

    def tick(scheduler):
        try:
            with db_session(db):
                for _ in range(10):
                    barrier.wait(timeout=30)
                    scheduler.run_due()
                    scheduler.run_due()
                    barrier.wait(timeout=30)
                    if scheduler is schedulers[0]:
                        clock.advance(minutes=5)
        except Exception as error:  # noqa: BLE001 — reported below
            failures.append(error)
            barrier.abort()

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert runs == {(name, period): 1 for name in ("reconcile", "briefings") for period in range(10)}


def test_a_shortened_period_takes_effect_without_waiting_out_the_old_one(db, clock):
    calls = []
    Scheduler(db, clock, [PeriodicTask("t", timedelta(days=1), lambda now: calls.append(now) or 0)]).run_due()
    shorter = Scheduler(db, clock, [PeriodicTask("t", timedelta(minutes=5), lambda now: calls.append(now) or 0)])
    shorter.run_due()
    clock.advance(minutes=5)
    shorter.run_due()
    assert len(calls) == 2
