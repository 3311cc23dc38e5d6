"""The operator console in a real browser: Playwright driving Debian's Chromium against calsync
(API, worker and scheduler) and the sandbox, each served over HTTP on 127.0.0.1.

Screenshots go to ``CALSYNC_SCREENSHOT_DIR`` (docs/console/ holds the ones docs/console.md
shows), else to the test's temporary directory. Without Chromium the tests skip, unless
``CALSYNC_REQUIRE_BROWSER`` is set (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from connector.app import create_app
from connector.clock import SystemClock
from connector.core import accounts
from connector.jobs import queue
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from mappings.models import Appointment, Job
from tests.support.factories import CONTROL_TOKEN
from tests.support.servers import ServerThread, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CALSYNC_REQUIRE_BROWSER"):
            pytest.fail("the console's browser tests need Debian's chromium (apt-get install chromium)")
        pytest.skip("the console's browser tests need Chromium: apt-get install chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("CALSYNC_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def stack(settings, db, make_account):
    sandbox = create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000, control_token=CONTROL_TOKEN,
                                                            weekly_hours="Mon-Sun 00:00-24:00"))
    with ServerThread(sandbox.app) as calcom:
        app = create_app(settings, clock=SystemClock(), db=db, sandbox_url=calcom.url, run_background=True)
        with ServerThread(app) as calsync:
            account, token = make_account()
            api = httpx.Client(base_url=calsync.url, timeout=10, headers={"Authorization": f"Bearer {token}"})
            api.post("/v1/event-types/refresh")
            yield calsync, sandbox, account, token, api
            api.close()


def _sign_in(page, base: str, token: str) -> None:
    page.goto(f"{base}/console/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/appointments**")


def _tomorrow_local(days: int = 1) -> str:
    from datetime import datetime
    return (datetime.now().date() + timedelta(days=days)).isoformat()


def test_an_operator_books_edits_reschedules_and_cancels(browser, stack, shots):
    calsync, sandbox, account, token, api = stack
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, calsync.url, token)
    shots(page, "01-appointments-empty")
    page.get_by_role("link", name="New appointment").click()
    page.get_by_label("Title").fill("Discovery with Kim")
    page.get_by_label("Attendee name").fill("Kim Lee")
    page.get_by_label("Attendee email").fill("kim@example.org")
    page.get_by_label("To phone").fill("+12125550123")
    page.get_by_label("Date").fill(_tomorrow_local())
    page.get_by_label("Date").dispatch_event("change")
    page.locator(".slot-grid .slot").first.wait_for()
    shots(page, "02-drawer-slots")
    page.locator(".slot-grid input[type=radio]").nth(3).check()
    page.get_by_label("Label").fill("warm")
    page.get_by_role("button", name="Create appointment").click()
    page.wait_for_url("**saved=1")
    page.locator("[data-sync-state]").first.wait_for()
    wait_for(lambda: page.locator("[data-sync-state]").first.inner_text() == "synced", timeout=20,
             what="the sync state to reach synced on the page")
    page.locator("[data-meeting] a").wait_for()
    shots(page, "03-created-synced")
    row = Appointment.get(Appointment.attendee_email == "kim@example.org")
    assert (row.source, row.status, row.to_number) == ("console", "active", "+12125550123")
    assert row.booking_uid in sandbox.calendar.bookings

    page.get_by_role("link", name="Edit").click()
    assert page.get_by_label("To phone").get_attribute("readonly") is not None
    page.get_by_label("Title").fill("Discovery with Kim (2)")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url("**saved=1")
    wait_for(lambda: Appointment.get_by_id(row.id).sync_state == "synced", what="the edit to sync")
    assert Appointment.get_by_id(row.id).title == "Discovery with Kim (2)"

    page.get_by_role("link", name="Reschedule").click()
    dialog = page.locator("#dialog-reschedule")
    assert dialog.evaluate("d => d.open") and page.evaluate("document.activeElement.id") == "start_local"
    page.locator("#start_local").fill(f"{_tomorrow_local(2)}T10:00")
    page.locator("#message").fill("the client asked")
    page.keyboard.press("Escape")  # closed: what was typed stays
    assert not dialog.evaluate("d => d.open")
    page.get_by_role("link", name="Reschedule").click()
    assert page.locator("#message").input_value() == "the client asked"
    shots(page, "04-reschedule-dialog")
    dialog.get_by_role("button", name="Reschedule").click()
    page.wait_for_url("**saved=1")
    wait_for(lambda: Appointment.get_by_id(row.id).status == "rescheduled", what="the reschedule")
    moved = Appointment.get_by_id(row.id)
    assert sandbox.calendar.bookings[moved.booking_uid].start == moved.start_time

    page.get_by_role("link", name="Cancel").click()
    page.locator("#reason").fill("Client went with another vendor")
    page.get_by_role("button", name="Cancel appointment").click()
    page.wait_for_url("**saved=1")
    wait_for(lambda: Appointment.get_by_id(row.id).status == "cancelled", what="the cancel")
    assert sandbox.calendar.bookings[moved.booking_uid].status == "cancelled"
    page.get_by_role("link", name="History").click()
    assert "appointment.reschedule_message" in page.content()
    shots(page, "05-history")


def test_attendance_is_marked_on_a_past_appointment(browser, stack, shots):
    calsync, sandbox, account, token, api = stack
    from datetime import UTC, datetime
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    api.put("/v1/appointments/crm-past", json={"title": "Yesterday's call", "attendee_name": "Ann",
                                               "attendee_email": "ann@example.org", "start_time": start.isoformat()})
    wait_for(lambda: Appointment.get(Appointment.external_id == "crm-past").status == "active", what="booking")
    row = Appointment.get(Appointment.external_id == "crm-past")
    # As if the meeting had happened: both sides moved two days back.
    held = sandbox.calendar.bookings[row.booking_uid]
    held.start, held.end = held.start - timedelta(days=2), held.end - timedelta(days=2)
    Appointment.update(start_time=row.start_time - timedelta(days=2), end_time=row.end_time - timedelta(days=2)
                       ).where(Appointment.id == row.id).execute()
    from mappings.models import Booking
    Booking.update(start_time=held.start, end_time=held.end).where(Booking.appointment == row.id).execute()
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, calsync.url, token)
    page.goto(f"{calsync.url}/console/appointments/crm-past")
    page.get_by_role("button", name="Mark no-show").click()
    page.wait_for_url("**saved=1")
    wait_for(lambda: Appointment.get_by_id(row.id).attendance == "no_show", what="attendance")
    wait_for(lambda: held.attendees[0]["absent"] is True, what="Cal.com to hold the no-show")


def test_search_sort_pages_tabs_and_the_calendar(browser, stack, shots):
    calsync, sandbox, account, token, api = stack
    from datetime import UTC, datetime
    base = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    for n in range(12):
        api.put(f"/v1/appointments/crm-{n:02d}", json={
            "title": f"{'Acme' if n % 3 == 0 else 'Other'} call {n:02d}", "attendee_name": f"Person {n:02d}",
            "attendee_email": f"p{n}@example.org", "start_time": (base + timedelta(hours=n)).isoformat(),
            "label": "hot" if n % 2 else "cold"})
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, calsync.url, token)
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Search").click()
    assert page.locator("table.appointments tbody tr").count() == 10
    page.get_by_role("link", name="Next").click()
    assert page.locator("table.appointments tbody tr").count() == 2
    page.get_by_label("Search").fill("acme")
    wait_for(lambda: page.locator("#results .count").inner_text().startswith("4 "), what="search as you type")
    page.get_by_role("link", name="Title").click()
    page.get_by_role("link", name="Title ▲").click()  # again: reversed
    titles = page.locator("table.appointments tbody tr td:first-child").all_inner_texts()
    assert titles == sorted(titles, reverse=True) and len(titles) == 4
    shots(page, "06-table-search")
    page.get_by_role("link", name="Cancelled").click()
    assert "No appointments here." in page.content()
    page.get_by_role("link", name="Calendar").click()
    page.locator("table.calendar").wait_for()
    page.get_by_role("link", name="Next ›").click()
    page.get_by_role("link", name="‹ Previous").click()
    local = base.astimezone(ZoneInfo(account.time_zone))
    if page.locator("h2", has_text=local.strftime("%B %Y")).count() == 0:
        page.get_by_role("link", name="Next ›").click()
    page.locator("table.calendar a.day").get_by_text(str(local.day), exact=True).click()
    listed = page.locator("#day li").all_inner_texts()
    assert len(listed) == 12 and any("Acme call 00" in line for line in listed)
    shots(page, "07-calendar")
    phone = browser.new_page(viewport=PHONE)
    _sign_in(phone, calsync.url, token)
    phone.goto(f"{calsync.url}/console/appointments?view=calendar&month={local.strftime('%Y-%m')}")
    shots(phone, "08-phone-calendar")
    phone.goto(f"{calsync.url}/console/appointments?view=table")
    shots(phone, "09-phone-table")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1


def test_settings_refresh_and_operations_replay(browser, stack, shots, db):
    calsync, sandbox, account, token, api = stack
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, calsync.url, token)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("button", name="Refresh event types").click()
    assert "Refreshed: added" in page.content()
    assert "none: no invite is sent" in page.content()  # Phone Screen has no location
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save settings").click()
    assert "Settings saved." in page.content()
    shots(page, "10-settings")
    job_id = queue.enqueue(db, queue.CONVERGE, now=SystemClock().now(), account_id=account.id,
                           payload={"appointment_id": "apt_gone"})
    Job.update(status="dead", last_error="Cal.com refused: example").where(Job.id == job_id).execute()
    page.get_by_role("link", name="Operations").click()
    shots(page, "11-operations")
    page.get_by_role("button", name="Replay").first.click()
    assert f"Job {job_id} queued again." in page.content()


def test_a_read_only_token_sees_no_action_and_hostile_text_stays_text(browser, stack, shots, db):
    calsync, sandbox, account, token, api = stack
    from datetime import UTC, datetime
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    api.put("/v1/appointments/crm-x", json={"title": HOSTILE, "attendee_name": HOSTILE,
                                            "attendee_email": "x@example.org", "start_time": start.isoformat(),
                                            "description": HOSTILE, "label": "<b>l</b>"})
    _, reader = accounts.create_token(db, account.id, "viewer", frozenset({accounts.READ}),
                                      now=SystemClock().now())
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, calsync.url, reader)
    assert page.get_by_role("link", name="New appointment").count() == 0
    assert page.get_by_role("link", name="Settings").count() == 0
    page.goto(f"{calsync.url}/console/appointments/crm-x")
    for name in ("Edit", "Reschedule", "Cancel"):
        assert page.get_by_role("link", name=name, exact=True).count() == 0
    assert page.evaluate("window.pwned") is None
    assert HOSTILE in page.locator("h1").inner_text()
    shots(page, "12-read-only-hostile")
    # A forged POST from this session, with its own CSRF token, is still refused by scope.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"{calsync.url}/console/appointments/crm-x/cancel",
                               form={"csrf": csrf, "reason": "forged"})
    assert answer.status == 403
    # And without a CSRF token, even a token that may write is refused.
    owner = browser.new_page(viewport=DESKTOP)
    _sign_in(owner, calsync.url, token)
    bare = owner.request.post(f"{calsync.url}/console/appointments/crm-x/cancel", form={"reason": "no token"})
    assert bare.status == 403 and "security token" in bare.text()
    assert Appointment.get(Appointment.external_id == "crm-x").desired_status == "active"


def test_an_import_is_reviewed_then_confirmed_and_a_large_one_shows_progress(browser, stack, shots, tmp_path):
    calsync, sandbox, account, token, api = stack
    from datetime import UTC, datetime
    start = (datetime.now(UTC) + timedelta(days=5)).replace(hour=6, minute=0, second=0, microsecond=0)
    lines = ["external_id,title,attendee_name,attendee_email,start_time"]
    lines += [f"bulk-{n},Call {n},Person {n},p{n}@example.org,{(start + timedelta(minutes=30 * n)).isoformat()}"
              for n in range(600)]  # past server.import_background_rows: the worker imports it
    lines.append(f"clash,Late,Zed,zed@example.org,{(start + timedelta(minutes=10)).isoformat()}")
    lines.append("broken,Bad,Cy,not-an-email,2030-01-01T09:00:00Z")
    path = tmp_path / "appointments.csv"
    path.write_text("\n".join(lines))
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, calsync.url, token)
    page.get_by_role("link", name="Import").click()
    page.get_by_label("CSV or JSON-lines file").set_input_files(str(path))
    page.get_by_role("button", name="Check the file").click()
    page.get_by_text("nothing is written yet").wait_for()
    assert "conflict 1" in page.content() and "invalid 1" in page.content()
    assert Appointment.select().count() == 0
    shots(page, "13-import-review")
    page.get_by_role("button", name="Import 600 rows in the background").click()
    page.get_by_role("heading", name="Imported").wait_for(timeout=60_000)
    assert "created 600" in page.content()
    shots(page, "14-import-done")
    assert Appointment.select().where(Appointment.source == "import").count() == 600
