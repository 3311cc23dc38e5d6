"""``calsync``: serve, worker, migrate, sandbox, accounts, tokens, event-types, reconcile, import,
jobs, webhooks."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peewee import Database

from connector import errors
from connector.clock import SystemClock
from connector.core import accounts
from connector.jobs import job_admin, queue
from connector.settings import Settings
from connector.settings import load as load_settings
from mappings.db import open_database, redact_url, session
from mappings.migrations import migrate
from mappings.models import Account, ApiToken
from mappings.sealing import Sealer
from webhooks import signing

log = logging.getLogger("calsync.cli")

EXAMPLES = {
    "serve": "example:\n  calsync serve --host 127.0.0.1 --port 8000",
    "worker": "example:\n  CALSYNC_DATABASE_URL=postgresql://calsync@db/calsync calsync worker --concurrency 8",
    "migrate": "example:\n  CALSYNC_DATABASE_URL=postgresql://calsync@db/calsync calsync migrate",
    "sandbox": "example:\n  calsync sandbox --port 8010\n  CALSYNC_SANDBOX_URL=http://127.0.0.1:8010 calsync worker",
    "accounts create": "example:\n  calsync accounts create --name 'Acme CRM' --event-type-id 123456 "
                       "--time-zone Europe/Berlin --json\n"
                       "  echo \"$CAL_KEY\" | calsync accounts create --name Acme --calcom-api-key -",
    "accounts update": "example:\n  calsync accounts update acc_xxx --time-zone America/New_York\n"
                       "  calsync accounts update acc_xxx --callback-url https://crm.example/hooks/calsync "
                       "--callback-secret generate",
    "accounts list": "example:\n  calsync accounts list --json",
    "tokens create": "example:\n  calsync tokens create --account acc_xxx --name crm-backend "
                     "--scopes appointments:read,appointments:write",
    "tokens revoke": "example:\n  calsync tokens revoke tok_xxx",
    "tokens list": "example:\n  calsync tokens list --account acc_xxx",
    "reconcile": "example:\n  calsync reconcile --account acc_xxx --full",
    "import": "example:\n  calsync import --account acc_xxx appointments.csv\n"
              "  calsync import --account acc_xxx --override-conflicts --json leads.ndjson > result.json\n"
              "CSV columns: external_id, title, attendee_name, attendee_email, start_time, … "
              "(the PUT body's fields),\nguests separated by ';', metadata.<key> for metadata.",
    "jobs list": "example:\n  calsync jobs list --status dead --account acc_xxx",
    "jobs retry": "example:\n  calsync jobs retry 4711",
    "event-types": "example:\n  calsync event-types refresh --account acc_xxx",
    "accounts": "example:\n  calsync accounts create --name 'Acme CRM' --event-type-id 123456",
    "tokens": "example:\n  calsync tokens create --account acc_xxx --name calendar --scopes calendar:feed",
    "jobs": "example:\n  calsync jobs list --status dead",
    "webhooks": "example:\n  calsync webhooks register --account acc_xxx",
    "event-types refresh": "example:\n  calsync event-types refresh --account acc_xxx",
    "webhooks register": "example:\n  calsync accounts update acc_xxx --public-url https://calsync.example.com\n"
                         "  calsync webhooks register --account acc_xxx",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calsync",
        description="Keeps a CRM's appointments and Cal.com's bookings in sync.",
        epilog="Settings: config/calsync.toml, overridden by CALSYNC_* variables "
               "(CALSYNC_CONFIG names another file).\nexample:\n  calsync serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent: Any, name: str, help_text: str, key: str | None = None) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help_text, description=help_text,
                                 epilog=EXAMPLES.get(key or name),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)

    serve = command(commands, "serve", "serve the API with worker and scheduler in one process")
    serve.add_argument("--host", help="address to listen on (server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (server.port)")
    serve.set_defaults(run=_serve)

    worker = command(commands, "worker", "run workers and the scheduler without the API")
    worker.add_argument("--concurrency", type=int, help="worker threads (worker.concurrency)")
    worker.set_defaults(run=_worker)

    command(commands, "migrate", "create or upgrade the database schema").set_defaults(run=_migrate)
    command(commands, "mcp", "the MCP server over stdio for an AI assistant (token in CALSYNC_MCP_TOKEN)"
            ).set_defaults(run=_mcp)

    sandbox = command(commands, "sandbox", "run the Cal.com sandbox alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8010)
    sandbox.set_defaults(run=_sandbox)

    account_cmds = command(commands, "accounts", "create, update and list accounts", "accounts").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    create = command(account_cmds, "create", "create an account and its first token",
                     "accounts create")
    create.add_argument("--name", required=True)
    _account_options(create)
    create.add_argument("--scopes", default=",".join(accounts.OWNER_SCOPES),
                        help="scopes of the first token (default: all but calendar:feed)")
    create.add_argument("--json", action="store_true", help='print {"account_id", "token"}')
    create.set_defaults(run=_accounts_create)
    update = command(account_cmds, "update", "change an account's settings", "accounts update")
    update.add_argument("account_id")
    update.add_argument("--name")
    _account_options(update)
    update.add_argument("--json", action="store_true")
    update.set_defaults(run=_accounts_update)
    listing = command(account_cmds, "list", "list accounts (secrets are never shown)", "accounts list")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_accounts_list)

    token_cmds = command(commands, "tokens", "create, revoke and list bearer tokens", "tokens").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    token_create = command(token_cmds, "create", "create a token (shown once)", "tokens create")
    token_create.add_argument("--account", required=True)
    token_create.add_argument("--name", required=True)
    token_create.add_argument("--scopes", default=f"{accounts.READ},{accounts.WRITE}",
                              help=f"comma-separated, among {', '.join(accounts.SCOPES)}; "
                                   f"{accounts.FEED} alone for a calendar subscription URL")
    token_create.add_argument("--json", action="store_true")
    token_create.set_defaults(run=_tokens_create)
    revoke = command(token_cmds, "revoke", "revoke a token", "tokens revoke")
    revoke.add_argument("token_id")
    revoke.set_defaults(run=_tokens_revoke)
    token_list = command(token_cmds, "list", "list an account's tokens", "tokens list")
    token_list.add_argument("--account", required=True)
    token_list.add_argument("--json", action="store_true")
    token_list.set_defaults(run=_tokens_list)

    webhook_cmds = command(commands, "webhooks", "manage the Cal.com webhook that points at calsync",
                           "webhooks").add_subparsers(dest="action", metavar="ACTION", required=True)
    register = command(webhook_cmds, "register",
                       "create or update the account's Cal.com webhook (idempotent)", "webhooks register")
    register.add_argument("--account", help="one account (default: every account with a public URL)")
    register.set_defaults(run=_webhooks_register)

    reconcile = command(commands, "reconcile",
                        "compare Cal.com's bookings with calsync's and repair the differences now")
    reconcile.add_argument("--account", help="one account (default: every account)")
    reconcile.add_argument("--full", action="store_true",
                           help="every booking in the window (reconcile.window_*_days), not only "
                                "those changed since the last pass")
    reconcile.set_defaults(run=_reconcile)

    type_cmds = command(commands, "event-types", "the cache of the account's Cal.com event types",
                        "event-types").add_subparsers(dest="action", metavar="ACTION", required=True)
    refresh = command(type_cmds, "refresh", "fetch the event types from Cal.com now", "event-types refresh")
    refresh.add_argument("--account", help="one account (default: every account)")
    refresh.set_defaults(run=_event_types_refresh)

    importing = command(commands, "import",
                        "import appointments from a CSV or JSON-lines file, each row validated like a PUT")
    importing.add_argument("file", help="a .csv file, or .ndjson/.jsonl (JSON lines); - reads stdin as CSV")
    importing.add_argument("--account", required=True)
    importing.add_argument("--override-conflicts", action="store_true",
                           help="create rows that overlap a live appointment of the same event type")
    importing.add_argument("--format", choices=("csv", "ndjson"),
                           help="the file's format (default: from its extension)")
    importing.add_argument("--json", action="store_true", help="print the whole per-row result as JSON")
    importing.set_defaults(run=_import)

    job_cmds = command(commands, "jobs", "the durable queue: list jobs, replay dead ones", "jobs"
                       ).add_subparsers(dest="action", metavar="ACTION", required=True)
    job_list = command(job_cmds, "list", "list jobs, newest first", "jobs list")
    job_list.add_argument("--status", choices=job_admin.STATUSES)
    job_list.add_argument("--account", help="one account (default: every account)")
    job_list.add_argument("--limit", type=int, default=50)
    job_list.add_argument("--json", action="store_true")
    job_list.set_defaults(run=_jobs_list)
    job_retry = command(job_cmds, "retry", "queue a dead job again with fresh attempts", "jobs retry")
    job_retry.add_argument("job_id", type=int)
    job_retry.set_defaults(run=_jobs_retry)
    return parser


def _account_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calcom-api-key", help="Cal.com API key (cal_…), or - to read it from stdin")
    parser.add_argument("--calcom-base-url", help="Cal.com API base (default https://api.cal.com)")
    parser.add_argument("--event-type-id", type=int, help="default Cal.com event type id")
    parser.add_argument("--time-zone", help="IANA time zone, e.g. Europe/Berlin")
    parser.add_argument("--duration-override", type=int, dest="duration_override_minutes",
                        help="default meeting length in minutes")
    parser.add_argument("--callback-url", help="where calsync posts events to the CRM")
    parser.add_argument("--callback-secret",
                        help="whsec_… signing secret, - to read it from stdin, or 'generate'")
    parser.add_argument("--public-url", help="calsync's public base URL (for Cal.com webhooks)")
    parser.add_argument("--webhook-secret", action="append", dest="webhook_secrets", metavar="SECRET",
                        help="a secret of a Cal.com webhook made by hand; repeat to accept several "
                             "while rotating (the list replaces the stored one)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        from connector import logs

        logs.configure(settings.log.level, settings.log.format, access_log=settings.server.access_log)
        return args.run(args, settings) or 0
    except errors.ConfigurationError as exc:
        print(f"calsync: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# --- commands ---------------------------------------------------------------------


def _database(settings: Settings):
    db = open_database(settings.database.url)
    with session(db):
        applied = migrate(db, SystemClock().now())
    if applied:
        log.info("database ready", extra={"action": "db.migrate", "applied": applied,
                                          "database": redact_url(settings.database.url)})
    return db


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings.database.url)
    with session(db):
        applied = migrate(db, SystemClock().now())
    print(f"database {redact_url(settings.database.url)}: "
          + (f"applied {', '.join(map(str, applied))}" if applied else "already current"))
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from connector import serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.replace(server=overrides)
    serve.serve(settings, _database(settings))
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from connector import serve

    if args.concurrency is not None:
        if args.concurrency < 1:
            raise errors.ConfigurationError("--concurrency must be 1 or more")
        settings = settings.replace(worker={"concurrency": args.concurrency})
    serve.run_worker(settings, _database(settings))
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from connector.assistants import stdio

    stdio.run(settings, _database(settings))
    return 0


def _sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from connector import serve

    serve.run_sandbox(settings, args.host, args.port)
    return 0


def _secret_argument(value: str | None) -> str | None:
    if value == "-":
        return sys.stdin.readline().strip() or None
    return value


def _callback_secret(args: argparse.Namespace) -> str | None:
    """The callback secret to store; ``generate`` makes one, and it is printed once."""
    if args.callback_secret == "generate":
        secret = signing.new_secret()
        print(f"callback signing secret, shown once — give it to the CRM: {secret}")
        return secret
    return _secret_argument(args.callback_secret)


def _changes(args: argparse.Namespace) -> accounts.AccountChanges:
    return accounts.AccountChanges(
        name=getattr(args, "name", None),
        calcom_api_key=_secret_argument(args.calcom_api_key),
        calcom_base_url=args.calcom_base_url,
        event_type_id=args.event_type_id,
        time_zone=args.time_zone,
        duration_override_minutes=args.duration_override_minutes,
        callback_url=args.callback_url,
        callback_secret=_callback_secret(args),
        public_url=args.public_url,
        calcom_webhook_secrets=tuple(args.webhook_secrets) if args.webhook_secrets else None,
    )


def _accounts_create(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    clock = SystemClock()
    scopes = accounts.parse_scopes(args.scopes)
    with session(db):
        account, token = accounts.create_account(db, _changes(args), Sealer(settings.security.secret_key),
                                                 now=clock.now(), token_scopes=scopes)
        queue.enqueue_event_type_refresh(db, account.id, now=clock.now())
    if args.json:
        print(json.dumps({"account_id": account.id, "token": token}))
    else:
        print(f"account {account.id} created ({account.name})")
        print(f"token, shown once — store it now: {token}")
        if not account.calcom_api_key:
            print("no Cal.com API key: this account uses the built-in Cal.com sandbox")
    return 0


def _accounts_update(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    clock = SystemClock()
    changes = _changes(args)
    with session(db):
        account = accounts.update_account(db, args.account_id, changes,
                                          Sealer(settings.security.secret_key), now=clock.now())
        named = {name for name in ("calcom_api_key", "calcom_base_url", "public_url")
                 if getattr(changes, name) is not None}
        queued = accounts.follow_changes(db, account, named, now=clock.now())
        if "register_webhook" in queued and not args.json:
            print("the Cal.com webhook will be registered by the worker")
    described = accounts.describe_account(account)
    print(json.dumps(described) if args.json else f"account {account.id} updated")
    return 0


def _accounts_list(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    with session(db):
        rows = [accounts.describe_account(a) for a in Account.select().order_by(Account.created_at)]
    _show(rows, ["id", "name", "calcom_api_key", "event_type_id", "time_zone"], as_json=args.json)
    return 0


def _tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    with session(db):
        row, token = accounts.create_token(db, args.account, args.name,
                                           accounts.parse_scopes(args.scopes), now=SystemClock().now())
    if args.json:
        print(json.dumps({"token_id": row.id, "token": token, "scopes": row.scopes.split()}))
    else:
        print(f"token {row.id} ({row.scopes}) created")
        print(f"token, shown once — store it now: {token}")
    return 0


def _tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    with session(db):
        row = accounts.revoke_token(db, args.token_id, now=SystemClock().now())
    print(f"token {row.id} revoked")
    return 0


def _tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    with session(db):
        accounts.get_account(args.account)
        rows = [{"id": t.id, "name": t.name, "scopes": t.scopes,
                 "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                 "revoked": t.revoked_at is not None}
                for t in ApiToken.select().where(ApiToken.account == args.account)
                .order_by(ApiToken.created_at)]
    _show(rows, ["id", "name", "scopes", "last_used_at", "revoked"], as_json=args.json)
    return 0


def _calcom_clients(settings: Settings, http, db: Database):
    """Cal.com clients as `calsync serve` makes them, spending the same allowance as every process."""
    from connector.calcom.clients import CalcomClients
    from connector.calcom.ratelimit import DatabaseWindows, RateLimiter
    from connector.serve import sandbox_plan

    sandbox_url, _ = sandbox_plan(settings)  # where `calsync serve` mounts it, or a sandbox elsewhere
    limiter = RateLimiter(SystemClock(), limit=settings.calcom.rate_limit_per_window,
                          window_seconds=settings.calcom.rate_limit_window_seconds, max_wait_seconds=120,
                          windows=DatabaseWindows(db))
    return CalcomClients(http, settings, Sealer(settings.security.secret_key), sandbox_url=sandbox_url,
                         limiter=limiter)


def _targets(account_id: str | None) -> list[Account]:
    return [accounts.get_account(account_id)] if account_id else list(Account.select())


def _webhooks_register(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from connector.core import subscription

    db = _database(settings)
    sealer = Sealer(settings.security.secret_key)
    with session(db), httpx.Client() as http:
        clients = _calcom_clients(settings, http, db)
        if args.account:
            targets = _targets(args.account)
        else:
            targets = list(Account.select().where(Account.public_url.is_null(False)))
        if not targets:
            raise errors.ConfigurationError("no account has a public URL; set one with "
                                            "'calsync accounts update ID --public-url …'")
        for account in targets:
            try:
                done = subscription.register(db, SystemClock(), clients, sealer, account.id)
            except errors.CalcomError as exc:
                raise errors.ConfigurationError(f"Cal.com refused for {account.id}: {exc.message}") from None
            print(f"{account.id}: webhook {done.webhook_id} {done.action} → {done.subscriber_url}")
    return 0


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    import httpx

    from connector.core.reconcile import ReconcileOptions, Reconciler

    db = _database(settings)
    failed = 0
    with session(db), httpx.Client() as http:
        options = ReconcileOptions(page_size=settings.reconcile.page_size,
                                   window_before=timedelta(days=settings.reconcile.window_before_days),
                                   window_after=timedelta(days=settings.reconcile.window_after_days))
        reconciler = Reconciler(db, SystemClock(), _calcom_clients(settings, http, db),
                                settings.calcom.booker_url, options)
        for account in _targets(args.account):
            bar = _ProgressBar(f"{account.id} {'full' if args.full else 'incremental'}")
            try:
                run = reconciler.run(account.id, full=args.full, trigger="cli", progress=bar.show)
            except (errors.CalcomError, errors.Conflict) as exc:
                bar.close()
                print(f"{account.id}: not reconciled: {exc.message}", file=sys.stderr)
                failed += 1
                continue
            bar.close()
            repairs = ", ".join(f"{kind} {count}" for kind, count in run.repairs.items()) or "none"
            print(f"{account.id}: {run.mode} pass, {run.pages} pages, {run.bookings_seen} bookings, "
                  f"repairs: {repairs}, {(run.duration_ms or 0) / 1000:.1f} s")
    return 1 if failed else 0


class _ProgressBar:
    """One self-rewriting line on a terminal; silent when stderr is not one."""

    WIDTH = 30

    def __init__(self, label: str) -> None:
        self.label = label
        self.live = sys.stderr.isatty()

    def show(self, progress) -> None:
        """A reconciliation's progress."""
        total = progress.total or 0
        done = min(progress.bookings_seen, total) if total else progress.bookings_seen
        repairs = sum(progress.repairs.values())
        self.draw(done, total, f"bookings, {progress.pages} pages, {repairs} repairs")

    def draw(self, done: int, total: int, unit: str) -> None:
        if not self.live:
            return
        filled = int(self.WIDTH * done / total) if total else 0
        print(f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total or '?'} "
              f"{unit}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=sys.stderr)


def _counted(name: str, ids: list[int]) -> str:
    return f"{name} {len(ids)}" + (f" ({', '.join(map(str, ids))})" if ids else "")


def _event_types_refresh(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from connector.core import event_types

    db = _database(settings)
    with session(db), httpx.Client() as http:
        clients = _calcom_clients(settings, http, db)
        for account in _targets(args.account):
            try:
                result = event_types.refresh(db, SystemClock(), clients, account.id)
            except errors.CalcomError as exc:
                raise errors.ConfigurationError(f"Cal.com refused for {account.id}: {exc.message}") from None
            print(f"{account.id}: " + ", ".join(_counted(name, ids) for name, ids in result.as_dict().items()))
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from connector.core import importer

    fmt = args.format or ("ndjson" if args.file.endswith((".ndjson", ".jsonl")) else "csv")
    media = importer.NDJSON if fmt == "ndjson" else importer.CSV
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise errors.ConfigurationError(f"cannot read {args.file}: {exc.strerror}") from None
    db = _database(settings)
    clock = SystemClock()
    with session(db):
        accounts.get_account(args.account)
        principal = accounts.Principal(account_id=args.account, token_id="cli", token_name="cli",
                                       scopes=frozenset({accounts.ADMIN}), source="import")  # import:cli
        try:
            rows = importer.parse_file(raw, media)
        except errors.ApiError as exc:
            raise errors.ConfigurationError(f"{args.file}: {_problem_text(exc)}") from None
        bar = _ProgressBar(f"import {args.file}")
        report = importer.run(db, principal, rows, override_conflicts=args.override_conflicts,
                              now_of=clock.now,
                              progress=lambda done, total: bar.draw(done, total, "rows"))
        bar.close()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for result in report.rows:
            if result.outcome in ("conflict", "invalid"):
                why = "; ".join(f"{e.field} {e.message}" for e in result.errors)
                print(f"row {result.row} {result.external_id or '?'}: {result.outcome}: {why}")
        print(", ".join(f"{outcome} {count}" for outcome, count in report.counts.items()))
    print("calsync serve or calsync worker books the new appointments in Cal.com.", file=sys.stderr)
    return 1 if report.counts["invalid"] else 0


def _problem_text(exc: errors.ApiError) -> str:
    if isinstance(exc, errors.ValidationFailed):
        return "; ".join(f"{e.field} {e.message}" for e in exc.errors)
    return exc.message


def _jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    with session(_database(settings)):
        rows = [job_admin.describe(job) for job in
                job_admin.listing(args.account, args.status).limit(max(1, args.limit))]
    for row in rows:
        row["last_error"] = (row["last_error"] or "")[:60]
    _show(rows, ["id", "kind", "status", "attempts", "run_at", "account_id", "last_error"],
          as_json=args.json)
    return 0


def _jobs_retry(args: argparse.Namespace, settings: Settings) -> int:
    db = _database(settings)
    with session(db):
        try:
            job = job_admin.retry(db, args.job_id, account_id=None, now=SystemClock().now())
        except (errors.NotFound, errors.Conflict) as exc:
            raise errors.ConfigurationError(exc.message) from None
    print(f"job {job.id} queued again ({job.kind}); a running worker picks it up")
    return 0


def _show(rows: list[dict[str, Any]], columns: list[str], *, as_json: bool) -> None:
    """Rows as one JSON array, or as an aligned table of ``columns``."""
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c))) for r in rows)) for c in columns}

    def line(row: dict[str, Any]) -> str:
        return "  ".join(str(row.get(c)).ljust(widths[c]) for c in columns)

    print(line({c: c for c in columns}))
    for row in rows:
        print(line(row))


if __name__ == "__main__":
    sys.exit(main())
