"""/metrics: Prometheus text with the queue, Cal.com calls, webhooks, reconcile and CRM deliveries."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector import metrics
from connector.calcom.ratelimit import RateLimiter
from mappings.models import Job

BODY = {
    "title": "Intro call",
    "attendee_name": "Alex Prospect",
    "attendee_email": "alex.prospect@example.org",
    "start_time": "2026-03-17T11:00:00+01:00",
}


def scrape(client) -> dict[tuple[str, tuple], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_booking_moves_the_counters(client, tenant, run_jobs):
    _, auth = tenant
    before = scrape(client)
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    queued = scrape(client)
    assert value(queued, "calsync_jobs", kind="converge", status="queued") == 1
    run_jobs()
    after = scrape(client)
    assert value(after, "calsync_jobs", kind="converge", status="done") == 1
    assert value(after, "calsync_jobs", kind="converge", status="queued") == 0
    create = {"endpoint": "POST /v2/bookings", "status": "201"}
    assert value(after, "calsync_calcom_requests_total", **create) \
        == value(before, "calsync_calcom_requests_total", **create) + 1
    assert value(after, "calsync_calcom_request_duration_seconds_count", endpoint="POST /v2/bookings") \
        > value(before, "calsync_calcom_request_duration_seconds_count", endpoint="POST /v2/bookings")
    done = {"kind": "converge", "outcome": "done"}
    assert value(after, "calsync_job_duration_seconds_count", **done) \
        == value(before, "calsync_job_duration_seconds_count", **done) + 1
    assert value(after, "calsync_job_queue_latency_seconds_count", kind="converge") \
        == value(before, "calsync_job_queue_latency_seconds_count", kind="converge") + 1


def test_reconcile_runs_and_webhook_refusals_are_counted(client, tenant, run_jobs):
    _, auth = tenant
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    run_jobs()
    before = scrape(client)
    assert client.post("/v1/reconcile", json={"full": True}, headers=auth).status_code == 200
    refused = client.post(f"/webhooks/calcom/{tenant[0].id}", content=b"{}",
                          headers={"X-Cal-Signature-256": "nope"})
    assert refused.status_code == 401
    after = scrape(client)
    assert value(after, "calsync_reconcile_runs_total", mode="full", status="done") \
        == value(before, "calsync_reconcile_runs_total", mode="full", status="done") + 1
    assert value(after, "calsync_webhook_deliveries_total", trigger="UNKNOWN", outcome="rejected") \
        == value(before, "calsync_webhook_deliveries_total", trigger="UNKNOWN", outcome="rejected") + 1


def test_rate_limit_waits_are_counted(clock):
    limiter = RateLimiter(clock, limit=1, window_seconds=1.0, max_wait_seconds=5.0)
    waited = metrics.rate_limit_waits.labels("waited")._value.get()
    limiter.acquire("acc")
    limiter.acquire("acc")  # waits about a second on the fake clock
    assert metrics.rate_limit_waits.labels("waited")._value.get() == waited + 1


@pytest.mark.parametrize("method, path, template", [
    ("GET", "/v2/bookings/3xYzAbC9dEf", "GET /v2/bookings/{id}"),
    ("POST", "/v2/bookings/abc123/reschedule", "POST /v2/bookings/{id}/reschedule"),
    ("POST", "/v2/bookings/lowercaseuid/cancel", "POST /v2/bookings/{id}/cancel"),
    ("GET", "/v2/teams/42/event-types", "GET /v2/teams/{id}/event-types"),
    ("GET", "/v2/bookings?take=100", "GET /v2/bookings"),
    ("GET", "/v2/me", "GET /v2/me"),
])
def test_endpoint_labels_never_carry_an_id(method, path, template):
    assert metrics.endpoint_template(method, path) == template


def test_metrics_need_no_token_and_show_no_secret(client, make_account):
    make_account(calcom_api_key="cal_live_verysecret")
    answer = client.get("/metrics")
    assert answer.status_code == 200 and "cal_live_verysecret" not in answer.text
    assert Job.select().count() == 0


def test_webhook_deliveries_are_listed_without_their_bodies(client, tenant, token_with):
    from datetime import UTC, datetime

    from mappings.models import WebhookDelivery

    account, auth = tenant
    for index, outcome in enumerate(("applied", "stale", "applied")):
        WebhookDelivery.create(account=account.id, dedupe_key=f"k{index}", trigger="BOOKING_CREATED",
                               raw_body='{"attendee": "secret@example.org"}', outcome=outcome,
                               received_at=datetime(2026, 3, 16, 9, index, tzinfo=UTC))
    listed = client.get("/v1/webhook-deliveries?outcome=applied&per_page=10", headers=auth)
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 2 and [item["outcome"] for item in body["items"]] == ["applied"] * 2
    assert body["items"][0]["received_at"] == "2026-03-16T09:02:00Z"
    assert "secret@example.org" not in listed.text
    assert client.get("/v1/webhook-deliveries?outcome=lost", headers=auth).status_code == 422
    reader = token_with(account, "appointments:read")
    assert client.get("/v1/webhook-deliveries", headers=reader).status_code == 403
