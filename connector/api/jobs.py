"""``/v1/jobs``: the queue as an admin sees it, and replaying dead jobs."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import accounts, errors, job_admin
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from mappings.db import session

PAGE_SIZES = (10, 25, 50, 100)
MAX_PAGE = 100_000
MAX_JOB_ID = 2**63 - 1  # a 64-bit key: anything larger cannot name a job


def _page_args(request: Request) -> tuple[str | None, int, int]:
    problems = []
    status = request.query_params.get("status")
    if status is not None and status not in job_admin.STATUSES:
        problems.append(errors.FieldError("status", f"must be one of {', '.join(job_admin.STATUSES)}"))
    page = per_page = None
    try:
        page = int(request.query_params.get("page", "1"))
        if not 1 <= page <= MAX_PAGE:
            raise ValueError
    except ValueError:
        problems.append(errors.FieldError("page", f"must be a whole number from 1 to {MAX_PAGE}"))
    try:
        per_page = int(request.query_params.get("per_page", "25"))
        if per_page not in PAGE_SIZES:
            raise ValueError
    except ValueError:
        problems.append(errors.FieldError("per_page", "must be 10, 25, 50 or 100"))
    if problems:
        raise errors.ValidationFailed(problems)
    return status, page, per_page


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
                if not raw_id.isdigit() or int(raw_id) > MAX_JOB_ID:
                    raise errors.ValidationFailed.one("job_id", "must be a job's number")
                return job_admin.describe(job_admin.retry(
                    ctx.db, int(raw_id), account_id=principal.account_id, now=ctx.clock.now()))

        body = await run_in_threadpool(work)
        ctx.wake_worker()
        return JSONResponse(body)

    return [Route("/v1/jobs", list_jobs, methods=["GET"]),
            Route("/v1/jobs/{job_id}/retry", retry_job, methods=["POST"])]
