"""`starter.py`: the command line over the client API."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import pydantic
import sqlalchemy.exc
from rich.console import Console
from rich.table import Table
from temporalio.service import RPCError

from dsp_integration.client import control, queries, views
from dsp_integration.client.action_records import ActionScope, record_separately, refusal_reason
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.context import ServiceContext, open_service
from dsp_integration.client.errors import ServiceError
from dsp_integration.client.progress import describe_counts, wait_for_batch
from dsp_integration.client.submission import (
    fairness_weight,
    priority_level,
    read_submission,
    submit,
)
from dsp_integration.client.temporal_client import TemporalUnavailable
from dsp_integration.commands.users import add_users_parser, run_users
from dsp_integration.config import Settings
from dsp_integration.config.seats import SeatProblems
from dsp_integration.contracts import DEFAULT_SEAT, DSP_FAIRNESS_WEIGHT, PriorityLevel
from dsp_integration.database import action_log
from dsp_integration.database.action_log import Action, Outcome
from dsp_integration.database.migrate import upgrade
from dsp_integration.entities import SubmissionRefused

EXIT_OK, EXIT_SOME_FAILED, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 1, 2, 3


class CliError(Exception):
    """Bad input on the command line: printed as one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter.py", description="Submit entities to the DSP and follow them."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="apply the database migrations")
    submit_cmd = commands.add_parser("submit", help="check, store and start a file of entities")
    submit_cmd.add_argument("file", type=Path)
    submit_cmd.add_argument("--batch", help="batch name (JSON Lines files; default: file name)")
    submit_cmd.add_argument("--wait", action="store_true", help="follow the batch to the end")
    submit_cmd.add_argument("--priority", metavar="LEVEL", help="high, normal (the default) or low")
    submit_cmd.add_argument(
        "--weight",
        metavar="W",
        help="the batch's share of the budget against other waiting batches (default 1)",
    )
    status_cmd = commands.add_parser("status", help="where entities stand")
    status_cmd.add_argument("keys", nargs="*", metavar="KEY")
    status_cmd.add_argument("--batch")
    status_cmd.add_argument("--json", action="store_true")
    cancel_cmd = commands.add_parser("cancel", help="cancel an entity (archived at the DSP)")
    cancel_cmd.add_argument("key", metavar="KEY")
    resubmit_cmd = commands.add_parser("resubmit", help="submit an entity again")
    resubmit_cmd.add_argument("key", metavar="KEY")
    resubmit_cmd.add_argument("--payload", type=Path, help="JSON file with the new payload")
    resubmit_cmd.add_argument(
        "--priority", metavar="LEVEL", help="high, normal or low (default: unchanged)"
    )
    prioritise_cmd = commands.add_parser(
        "prioritise",
        help="change the priority or weight of a batch's entities that have not ended",
    )
    prioritise_cmd.add_argument("batch", metavar="BATCH")
    prioritise_cmd.add_argument(
        "level", metavar="LEVEL", nargs="?", help="high, normal or low (default: unchanged)"
    )
    prioritise_cmd.add_argument(
        "--weight", metavar="W", help="the batch's fairness weight (default: unchanged)"
    )
    reconcile_cmd = commands.add_parser(
        "reconcile", help="start the workflow of every open entity that has none running"
    )
    reconcile_cmd.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="skip entities changed this recently (default: DSP_RECONCILE_GRACE)",
    )
    audit_cmd = commands.add_parser("audit", help="every DSP request made for an entity")
    audit_cmd.add_argument("key", metavar="KEY")
    audit_cmd.add_argument("--json", action="store_true")
    actions_cmd = commands.add_parser(
        "actions", help="the action log: who submitted, cancelled, resubmitted, prioritised"
    )
    actions_cmd.add_argument("--batch", help="only this batch's actions")
    actions_cmd.add_argument("--key", metavar="KEY", help="only this entity's actions")
    actions_cmd.add_argument("--actor", metavar="NAME", help="only this person's actions")
    actions_cmd.add_argument(
        "--limit", type=int, default=50, metavar="N", help="the newest N (default 50)"
    )
    actions_cmd.add_argument("--json", action="store_true")
    serve_cmd = commands.add_parser("serve", help="run the web console and HTTP API")
    serve_cmd.add_argument("--host", help="listen address (default: CONSOLE_HOST)")
    serve_cmd.add_argument("--port", type=int, help="listen port (default: CONSOLE_PORT)")
    add_users_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        settings = Settings()
        if args.command not in ("migrate", "users"):
            settings.seat_layout()  # the seats' configuration, all its problems at once
        return asyncio.run(_dispatch(args, settings))
    except SeatProblems as problems:
        for line in problems.problems:
            err.print(f"error: bad configuration: {line}", markup=False)
        return EXIT_REFUSED
    except SubmissionRefused as refused:
        err.print(f"refused: {len(refused.problems)} problem(s); nothing was stored or started")
        for problem in refused.problems:
            err.print(f"  - {problem}", markup=False)
        return EXIT_REFUSED
    except (CliError, ServiceError) as error:
        err.print(f"error: {error}", markup=False)
        return EXIT_REFUSED
    except pydantic.ValidationError as error:
        err.print(f"error: bad configuration: {_first_error(error)}", markup=False)
        return EXIT_REFUSED
    except TemporalUnavailable as error:
        err.print(f"error: {error}", markup=False)
        return EXIT_UNAVAILABLE
    except RPCError as error:
        err.print(f"error: Temporal refused the request: {error}", markup=False)
        return EXIT_UNAVAILABLE
    except (OSError, sqlalchemy.exc.DBAPIError, sqlalchemy.exc.InterfaceError) as error:
        err.print(f"error: {_database_problem(error)}", markup=False)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def _first_error(error: pydantic.ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}"


def _database_problem(error: BaseException) -> str:
    try:
        url = Settings().effective_database_url
    except pydantic.ValidationError:
        url = "DATABASE_URL"
    safe_url = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    detail = str(getattr(error, "orig", None) or error).splitlines()[0]
    return (
        f"cannot use PostgreSQL at {safe_url}: {detail}. "
        "Start it with `python dev.py up` or set DATABASE_URL."
    )


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        await upgrade(settings.effective_database_url)
        print("database migrated to the latest revision")
        return EXIT_OK
    if args.command == "serve":
        from dsp_integration.console.server import serve  # the web stack loads only for `serve`

        return await serve(settings, args.host, args.port)
    if args.command == "users":
        return await run_users(args, settings)
    # Arguments are checked before anything is opened: a wrong level is refused at once.
    level = priority_level(getattr(args, "priority", None) or getattr(args, "level", None))
    weight = fairness_weight(getattr(args, "weight", None))
    if args.command == "prioritise" and args.level is None and args.weight is None:
        raise CliError("prioritise: give a LEVEL, a --weight or both")
    if args.command == "submit":
        try:
            submission = _read_submission(args.file, args.batch)
        except SubmissionRefused as refused:
            await _record_refused_file(settings, args.batch or args.file.stem, refused)
            raise
    actor = cli_actor()
    async with open_service(settings) as service:
        match args.command:
            case "submit":
                return await _submit(service, submission, args.wait, level, weight)
            case "status":
                code = await _status(service, args.keys, args.batch, args.json)
                if not args.json:
                    await _print_budget(service)
                return code
            case "cancel":
                previous = await control.cancel(service, args.key, actor=actor)
                print(f"cancel requested for {args.key} (was {previous})")
                return EXIT_OK
            case "resubmit":
                payload = _read_payload(args.payload) if args.payload else None
                report = await control.resubmit(
                    service, args.key, payload, level if args.priority else None, actor=actor
                )
                print(
                    f"resubmitted {report.key} as payload version {report.payload_version} "
                    f"(was {report.previous_status})"
                    + (f" at priority {report.priority}" if report.priority else "")
                )
                if report.reopened:
                    print(f"back to waiting: {', '.join(report.reopened)}")
                return EXIT_OK
            case "prioritise":
                changed = await control.prioritise(
                    service,
                    args.batch,
                    level if args.level else None,
                    weight if args.weight else None,
                    actor=actor,
                )
                now = [f"priority {changed.priority}"] if changed.priority else []
                if changed.fairness_weight is not None:
                    now.append(f"weight {changed.fairness_weight:g}")
                print(
                    f"batch {changed.batch}: {changed.changed} entities that have not ended "
                    f"now at {' and '.join(now)} ({changed.signalled} running workflows told)"
                )
                return EXIT_OK
            case "reconcile":
                grace = settings.dsp_reconcile_grace if args.grace is None else args.grace
                result = await control.restart_orphans(service, grace)
                print(
                    f"{result.open_entities} open entities looked at, "
                    f"{len(result.restarted)} workflows restarted"
                )
                for key in result.restarted:
                    print(f"  restarted {key}")
                return EXIT_OK
            case "audit":
                return await _audit(service, args.key, args.json)
            case "actions":
                return await _actions(service, args)
    raise CliError(f"unknown command {args.command!r}")


def _read_submission(path: Path, batch: str | None) -> Any:
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    return read_submission(path, batch)


async def _record_refused_file(settings: Settings, batch: str, refused: SubmissionRefused) -> None:
    """A file refused as it was read is the OS user's refused submit (best effort: the
    refusal is what the user must see, even with the database down)."""
    try:
        async with open_service(settings) as service:
            scope = ActionScope(cli_actor(), Action.SUBMIT, batch=batch)
            problems = [str(problem) for problem in refused.problems]
            await record_separately(
                service.sessions,
                scope,
                Outcome.REFUSED,
                refusal_reason(refused),
                {"problems": problems},
            )
    except Exception:  # the database is not there: nothing to record it in
        return


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        payload = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise CliError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise CliError(f"{path}: not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise CliError(f"{path}: the payload must be a JSON object")
    return payload


async def _submit(
    service: ServiceContext,
    submission: Any,
    wait: bool,
    priority: PriorityLevel,
    weight: float,
) -> int:
    report = await submit(service, submission, priority, weight, actor=cli_actor())
    print(
        f"batch {report.batch}: {report.entities} entities, {report.stored} new "
        f"(priority {report.priority}, weight {report.fairness_weight:g}), "
        f"{report.started} workflows started or running, "
        f"{report.already_ended} already ended"
    )
    if not wait:
        return EXIT_OK
    counts = await wait_for_batch(service, report.batch)
    await _print_summary(service, report.batch)
    ok = set(counts) <= {"succeeded"}
    print(
        f"web UI: {service.settings.effective_temporal_ui_url}/namespaces/"
        f"{service.settings.temporal_namespace}/workflows"
    )
    return EXIT_OK if ok else EXIT_SOME_FAILED


async def _print_summary(service: ServiceContext, batch: str) -> None:
    views = await queries.entity_views(service, batch=batch)
    counts: dict[str, int] = {}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    console = Console(highlight=False)
    seats = f"  seat {_seats_of(views)}" if _shows_seats(views) else ""
    console.print(
        f"[bold]{batch}[/]: {len(views)} entities  {describe_counts(counts)}  "
        f"priority {_levels_of(views)}  weight {_weights_of(views)}{seats}"
    )
    unsuccessful = [v for v in views if v.status != "succeeded"]
    if unsuccessful:
        with_seat = _shows_seats(unsuccessful)
        columns = ["key", "type", *(["seat"] if with_seat else []), "status", "reason"]
        table = Table(*columns, title="did not succeed")
        for view in unsuccessful:
            seat = [view.seat] if with_seat else []
            table.add_row(view.key, view.type, *seat, view.status, view.reason or "")
        console.print(table)
    durations = [(v.seconds_to_end, v) for v in views if v.seconds_to_end is not None]
    slowest = sorted(durations, key=lambda pair: pair[0], reverse=True)[:5]
    if slowest:
        table = Table("key", "type", "status", "seconds", title="slowest")
        for seconds, view in slowest:
            table.add_row(view.key, view.type, view.status, f"{seconds:.1f}")
        console.print(table)


def _levels_of(views: list[queries.EntityView]) -> str:
    """The batch's priority: of its open entities (all of them once every one has ended)."""
    open_views = [v for v in views if v.finished_at is None] or views
    levels: dict[str, int] = {}
    for view in open_views:
        levels[view.priority] = levels.get(view.priority, 0) + 1
    if len(levels) <= 1:
        return next(iter(levels), "normal")
    return ", ".join(f"{level} {count}" for level, count in sorted(levels.items()))


def _weights_of(views: list[queries.EntityView]) -> str:
    """The batch's fairness weight: of its open entities (all of them once all have ended)."""
    open_views = [v for v in views if v.finished_at is None] or views
    weights = sorted({view.fairness_weight for view in open_views})
    return ", ".join(f"{weight:g}" for weight in weights) or "1"


def _shows_seats(views: list[queries.EntityView]) -> bool:
    """Seats are shown once an entity belongs to another seat than the default: a service
    without seats prints what it always did."""
    return any(view.seat != DEFAULT_SEAT for view in views)


def _seats_of(views: list[queries.EntityView]) -> str:
    """The batch's seats, with how many of its entities each has when there are several."""
    seats: dict[str, int] = {}
    for view in views:
        seats[view.seat] = seats.get(view.seat, 0) + 1
    if len(seats) == 1:
        return next(iter(seats))
    return ", ".join(f"{seat} {count}" for seat, count in sorted(seats.items()))


def _share_of(view: queries.EntityView) -> str:
    """The priority, and the weight when it is not the default (a narrow column)."""
    if view.fairness_weight == DSP_FAIRNESS_WEIGHT:
        return view.priority
    return f"{view.priority} w{view.fairness_weight:g}"


async def _status(
    service: ServiceContext, keys: list[str], batch: str | None, as_json: bool
) -> int:
    views = await queries.entity_views(service, keys=keys, batch=batch)
    if as_json:
        print(json.dumps([view.to_json() for view in views], indent=2))
        return EXIT_OK
    if batch and not keys:
        await _print_summary(service, batch)
        return EXIT_OK
    with_seat = _shows_seats(views)
    table = Table(
        "key",
        "type",
        "batch",
        *(["seat"] if with_seat else []),
        "priority",
        "status",
        "dsp_id",
        "dsp_status",
        "reason",
    )
    for view in views:
        table.add_row(
            view.key,
            view.type,
            view.batch,
            *([view.seat] if with_seat else []),
            _share_of(view),
            view.status,
            view.dsp_id or "",
            view.dsp_status or "",
            view.reason or "",
        )
    Console(highlight=False).print(table)
    return EXIT_OK


async def _print_budget(service: ServiceContext) -> None:
    """A row per seat: its window, the calls waiting for it (held by workers + queued in
    Temporal), its pause and 429s."""
    budget = await views.budget(service, with_backlog=True)
    table = Table(
        "seat",
        "used in window",
        "calls waiting (held by workers + queued in Temporal)",
        "paused",
        "429s",
        title="DSP budget per seat",
    )
    for seat in budget.seats:
        queued = "?" if seat.waiting_for_slot is None else str(seat.waiting_for_slot)
        table.add_row(
            seat.seat + (" (default)" if seat.seat == budget.default_seat else ""),
            f"{seat.used} / {seat.limit} per {seat.window_seconds:g} s",
            f"{seat.calls_waiting} ({seat.waiting_in_workers} + {queued})",
            f"{seat.paused_seconds:.1f} s" if seat.paused_seconds > 0 else "no",
            str(seat.throttled_total),
        )
    Console(highlight=False).print(table)


async def _audit(service: ServiceContext, key: str, as_json: bool) -> int:
    records = await queries.audit_views(service, key)
    if as_json:
        print(json.dumps([record.to_json() for record in records], indent=2))
        return EXIT_OK
    table = Table("#", "sent", "request", "attempt", "answer", "error", title=f"audit of {key}")
    for record in records:
        answer = str(record.response_status) if record.response_status is not None else "-"
        table.add_row(
            str(record.id),
            record.started_at.strftime("%H:%M:%S.%f")[:-3],
            f"{record.method} {record.path}",
            str(record.attempt),
            answer,
            record.error or "",
        )
    Console(highlight=False).print(table)
    return EXIT_OK


async def _actions(service: ServiceContext, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("actions: --limit must be at least 1")
    async with service.sessions() as session:
        rows = await action_log.recent_actions(
            session,
            batch=args.batch,
            entity_key=args.key,
            actor_name=args.actor,
            limit=args.limit,
        )
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
        return EXIT_OK
    table = Table("when (UTC)", "who", "from", "action", "on", "change", "outcome", title="actions")
    for row in rows:
        on = row.entity_key or row.account or (f"batch {row.batch}" if row.batch else "")
        outcome = row.outcome + (f": {row.reason}" if row.reason else "")
        table.add_row(
            row.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            f"{row.actor_name} ({row.actor_role})",
            row.where,
            row.action,
            on,
            row.change,
            outcome,
        )
    Console(highlight=False).print(table)
    return EXIT_OK
