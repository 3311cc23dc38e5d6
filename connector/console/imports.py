"""The console's import: upload a CSV or JSON-lines file, review every row's outcome from a dry
run before anything is written, choose to override conflicts, confirm, see the result — or
the progress of a large file, which runs in the background."""

from __future__ import annotations

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.console.frame import Caller, Console, redirect
from connector.core import accounts, import_runs, importer
from mappings.models import ImportRun

PATH = "/console/import"
RECENT = 10


def routes(console: Console) -> list[Route]:
    pages = ImportPages(console)
    return [
        Route("/import", pages.upload_page, methods=["GET"]),
        Route("/import", pages.upload, methods=["POST"]),
        Route("/import/{import_id}", pages.review, methods=["GET"]),
        Route("/import/{import_id}/progress", pages.progress, methods=["GET"]),
        Route("/import/{import_id}/recheck", pages.recheck, methods=["POST"]),
        Route("/import/{import_id}/confirm", pages.confirm, methods=["POST"]),
    ]


class ImportPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ctx = console.ctx
        self.background_from = self.ctx.settings.server.import_background_rows

    async def upload_page(self, request: Request) -> Response:
        return await self.console.view(request, accounts.WRITE, lambda caller: self._upload_page(request, caller))

    def _upload_page(self, request: Request, caller: Caller, problem: str | None = None,
                     status: int = 200) -> Response:
        recent = list(ImportRun.select(ImportRun.id, ImportRun.status, ImportRun.total, ImportRun.created_at)
                      .where(ImportRun.account == caller.account.id).order_by(ImportRun.created_at.desc())
                      .limit(RECENT))
        return self.console.render(request, "import.html", caller, status=status, run=None, recent=recent,
                                   problem=problem, columns=importer.COLUMNS)

    async def upload(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                return self._upload_page(request, caller, "Choose a CSV or JSON-lines file.", status=422)
            raw = upload.file.read()
            media = _media_type(upload)
            override = form.get("override_conflicts") == "on"
            try:
                rows = importer.parse_file(raw, media)
                writer = import_runs.as_importer(caller.principal)
                preview = importer.run(self.ctx.db, writer, rows, override_conflicts=override,
                                       now_of=self.ctx.clock.now, dry_run=True)
                run = import_runs.hold(self.ctx.db, writer, raw.decode("utf-8-sig"), media,
                                       override_conflicts=override, total=len(rows), now=self.ctx.clock.now(),
                                       report=preview.as_dict(), status="review")
            except (errors.ValidationFailed, errors.UnsupportedMediaType) as refused:
                message = refused.message if isinstance(refused, errors.UnsupportedMediaType) else \
                    "; ".join(f"{item.field}: {item.message}" for item in refused.errors)
                return self._upload_page(request, caller, message, status=422)
            return redirect(f"{PATH}/{run.id}")

        return await self.console.act(request, accounts.WRITE, perform)

    def _run(self, request: Request, caller: Caller) -> ImportRun | None:
        run_id = request.path_params["import_id"]
        if len(run_id) > 40 or not run_id.isascii():
            return None
        try:
            return import_runs.get(caller.account.id, run_id)
        except errors.NotFound:
            return None

    async def review(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            run = self._run(request, caller)
            if run is None:
                return self.console.render(request, "refused.html", caller, status=404,
                                           reason="There is no such import in this account.")
            return self._show(request, caller, run)

        return await self.console.view(request, accounts.WRITE, build)

    def _show(self, request: Request, caller: Caller, run: ImportRun, problem: str | None = None,
              status: int = 200) -> Response:
        shown = import_runs.describe(run, reveal=caller.principal.allows(accounts.READ))
        return self.console.render(request, "import.html", caller, status=status, run=shown, recent=[],
                                   problem=problem, columns=importer.COLUMNS,
                                   background=run.total > self.background_from)

    async def progress(self, request: Request) -> Response:
        def build(caller: Caller) -> Response:
            run = self._run(request, caller)
            if run is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse({"status": run.status, "done": run.done, "total": run.total},
                                headers={"Cache-Control": "no-store"})

        return await self.console.view(request, accounts.WRITE, build)

    async def recheck(self, request: Request) -> Response:
        """The dry run again, with conflicts overridden or not."""
        def perform(caller: Caller, form: FormData) -> Response:
            run = self._run(request, caller)
            if run is None or run.status != "review":
                return redirect(PATH)
            override = form.get("override_conflicts") == "on"
            rows = importer.parse_file(run.content.encode(), run.media_type)
            preview = importer.run(self.ctx.db, import_runs.as_importer(caller.principal), rows,
                                   override_conflicts=override, now_of=self.ctx.clock.now, dry_run=True)
            ImportRun.update_by_id(run.id, override_conflicts=override, report=preview.as_dict(),
                                   updated_at=self.ctx.clock.now())
            return redirect(f"{PATH}/{run.id}")

        return await self.console.act(request, accounts.WRITE, perform)

    async def confirm(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            run = self._run(request, caller)
            if run is None:
                return redirect(PATH)
            background = run.total > self.background_from
            try:
                confirmed = import_runs.confirm(self.ctx.db, caller.account.id, run.id,
                                                now=self.ctx.clock.now(), background=background)
            except errors.Conflict as refused:
                return self._show(request, caller, run, problem=refused.message, status=409)
            if not background:  # a small file goes in now, by the worker's own code
                handler = import_runs.ImportHandler(self.ctx.db, self.ctx.clock)
                try:
                    handler.execute(confirmed)
                except Exception as failure:  # noqa: BLE001 — the page says so; rows done stay done
                    handler.fail(run.id, str(failure))
            return redirect(f"{PATH}/{run.id}")

        return await self.console.act(request, accounts.WRITE, perform)


def _media_type(upload: UploadFile) -> str:
    name = (upload.filename or "").lower()
    if name.endswith(".csv"):
        return importer.CSV
    if name.endswith((".jsonl", ".ndjson")):
        return importer.NDJSON
    return (upload.content_type or "").split(";", 1)[0].strip().lower()
