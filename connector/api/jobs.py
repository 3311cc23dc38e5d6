"""``/v1/jobs``: the queue as an admin sees it, and replaying dead jobs."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.core import accounts
from connector.inputs import paging, whole_number
from connector.jobs import job_admin
from mappings.db import session
from mappings.models import WebhookDelivery
from mappings.times import to_api

MAX_JOB_ID = 2**63 - 1  # a 64-bit key: anything larger cannot name a job


# Where a delivery ended: at the door (received = waiting to be applied, duplicate, ignored) or
# once applied (webhooks/apply.py).
DELIVERY_OUTCOMES = ("received", "duplicate", "ignored", "waiting", "applied", "echo", "stale", "failed")


def describe_delivery(row: WebhookDelivery) -> dict:
    """A delivery without its raw body (which carries attendees' personal data)."""
    return {"id": row.id, "trigger": row.trigger, "booking_uid": row.booking_uid,
            "received_at": to_api(row.received_at), "processed_at": to_api(row.processed_at),
            "outcome": row.outcome, "error": row.error}


def _page_args(request: Request, filter_name: str = "status",
               choices: tuple[str, ...] = job_admin.STATUSES) -> tuple[str | None, int, int]:
    params = request.query_params
    problems = []
    value = params.get(filter_name)
    if value is not None and value not in choices:
        problems.append(errors.FieldError(filter_name, f"must be one of {', '.join(choices)}"))
    page, per_page, paging_problems = paging(params)
    problems += paging_problems
    if problems:
        raise errors.ValidationFailed(problems)
    return value, page, per_page


def routes(ctx: ApiContext) -> list[Route]:
    async def list_jobs(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                status, page, per_page = _page_args(request)
                query = job_admin.listing(principal.account_id, status)
                total = query.count()
                rows = query.paginate(page, per_page)
                return {"items": [job_admin.describe(job) for job in rows], "total": total, "page": page,
                        "per_page": per_page, "pages": -(-total // per_page)}

        return JSONResponse(await run_in_threadpool(work))

    async def retry_job(request: Request) -> Response:
        raw_id = request.path_params["job_id"]

        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                job_id = whole_number(raw_id, high=MAX_JOB_ID)
                if job_id is None:
                    raise errors.ValidationFailed.one("job_id", "must be a job's number")
                return job_admin.describe(job_admin.retry(
                    ctx.db, job_id, account_id=principal.account_id, now=ctx.clock.now()))

        body = await run_in_threadpool(work)
        ctx.wake_worker()
        return JSONResponse(body)

    async def list_deliveries(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                outcome, page, per_page = _page_args(request, "outcome", DELIVERY_OUTCOMES)
                query = WebhookDelivery.select(
                    WebhookDelivery.id, WebhookDelivery.trigger, WebhookDelivery.booking_uid,
                    WebhookDelivery.received_at, WebhookDelivery.processed_at,
                    WebhookDelivery.outcome, WebhookDelivery.error,
                ).where(WebhookDelivery.account == principal.account_id)
                if outcome is not None:
                    query = query.where(WebhookDelivery.outcome == outcome)
                total = query.count()
                rows = query.order_by(WebhookDelivery.id.desc()).paginate(page, per_page)
                return {"items": [describe_delivery(row) for row in rows], "total": total,
                        "page": page, "per_page": per_page, "pages": -(-total // per_page)}

        return JSONResponse(await run_in_threadpool(work))

    return [Route("/v1/jobs", list_jobs, methods=["GET"]),
            Route("/v1/webhook-deliveries", list_deliveries, methods=["GET"]),
            Route("/v1/jobs/{job_id}/retry", retry_job, methods=["POST"])]
