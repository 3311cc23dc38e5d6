"""Prometheus metrics: counters and histograms the code bumps, and gauges read from the database.

Counters live in this process (``REGISTRY``), as Prometheus expects of each
scraped instance. The queue's depth is not a counter of this process but the
database's truth, so ``/metrics`` reads it at scrape time (``JobsCollector``):
every instance reports the same numbers, and a query over instances takes max.

Labels stay bounded: Cal.com endpoints are templates (``GET /v2/bookings/{id}``),
never a booking uid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

from peewee import Database, fn
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mappings.db import session
from mappings.models import Job

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_QUEUE_LATENCY = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

calcom_requests = Counter(
    "calsync_calcom_requests", "Requests to Cal.com by endpoint template and HTTP status "
    "(status 'network' when no answer came).", ["endpoint", "status"], registry=REGISTRY)
calcom_latency = Histogram(
    "calsync_calcom_request_duration_seconds", "Time until Cal.com answered, by endpoint template.",
    ["endpoint"], buckets=_LATENCY, registry=REGISTRY)
rate_limit_waits = Counter(
    "calsync_rate_limit_waits", "Requests the client-side rate limiter held back: 'waited' in the "
    "caller, or 'deferred' back to the queue.", ["outcome"], registry=REGISTRY)
rate_limit_wait_seconds = Counter(
    "calsync_rate_limit_wait_seconds", "Seconds callers spent waiting for the rate limiter.",
    registry=REGISTRY)
job_runs = Histogram(
    "calsync_job_duration_seconds", "Time a job's handler ran, by kind and outcome "
    "(done, retry, dead).", ["kind", "outcome"], buckets=_LATENCY, registry=REGISTRY)
job_queue_latency = Histogram(
    "calsync_job_queue_latency_seconds", "Time from a job being due to a worker claiming it.",
    ["kind"], buckets=_QUEUE_LATENCY, registry=REGISTRY)
webhook_deliveries = Counter(
    "calsync_webhook_deliveries", "Cal.com webhook deliveries by trigger and outcome: at the door "
    "(received, duplicate, ignored, rejected) and once dispatched or applied (duplicate, applied, "
    "stale, failed, …).",
    ["trigger", "outcome"], registry=REGISTRY)
reconcile_repairs = Counter(
    "calsync_reconcile_repairs", "Differences the reconciler repaired, by kind.", ["kind"],
    registry=REGISTRY)
reconcile_runs = Counter(
    "calsync_reconcile_runs", "Reconciliation passes by mode and status.", ["mode", "status"],
    registry=REGISTRY)
crm_deliveries = Counter(
    "calsync_crm_deliveries", "Events posted to the CRM's callback URL, by event and outcome "
    "(delivered, failed).", ["event", "outcome"], registry=REGISTRY)

# Path segments that are words of Cal.com's API rather than ids (REFERENCE §5).
_API_WORDS = {"v2", "bookings", "reschedule", "cancel", "mark-absent", "confirm", "decline",
              "event-types", "teams", "webhooks", "slots", "me", "schedules"}


def endpoint_template(method: str, path: str) -> str:
    """``GET /v2/bookings/{id}`` for ``GET /v2/bookings/3xY…``: a bounded label."""
    parts = [part if part in _API_WORDS else "{id}"
             for part in path.split("?", 1)[0].strip("/").split("/")]
    return f"{method} /" + "/".join(parts)


class JobsCollector(Collector):
    """``calsync_jobs{kind, status}``: the queue as the database holds it at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("calsync_jobs", "Jobs in the durable queue by kind and status.",
                                   labels=["kind", "status"])
        with session(self.db):
            rows = cast("Iterable[tuple[str, str, int]]",
                        Job.select(Job.kind, Job.status, fn.COUNT(Job.id).alias("count"))
                        .group_by(Job.kind, Job.status).tuples())
            for kind, status, count in rows:
                family.add_metric([kind, status], count)
        yield family


def render(db: Database) -> bytes:
    """The text exposition of this process's metrics plus the queue read from ``db``."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(JobsCollector(db))
    return generate_latest(REGISTRY) + generate_latest(scrape)
