"""``hpc-wps jobs list | show | cancel | purge``: the job table for operators.

Reads and changes the same table as the service, through the same functions: ``cancel`` is a WPS
Dismiss (the dispatcher then stops the native job), ``purge`` deletes finished jobs the way expiry
does (files, then rows) and never touches a job that is waiting or running. Works on any database
the service runs on; no server needs to be up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from app.settings import Settings
from processes.registry import Registry
from scheduler import queries
from scheduler.access import Caller
from scheduler.db import make_engine
from scheduler.job import Job
from scheduler.models import ACTIVE_STATES, FINAL_STATES, JobStatus
from scheduler.removal import delete_finished_jobs, directory_size, dismiss_job
from scheduler.service import JobFilter, JobService

SettingsLoader = Callable[[argparse.Namespace], Settings]

STATUS_GROUPS = {
    "active": sorted(s.value for s in ACTIVE_STATES),
    "finished": sorted(s.value for s in FINAL_STATES),
} | {s.value: [s.value] for s in JobStatus}
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DISMISSED_BY_OPERATOR = "dismissed by an operator (hpc-wps jobs cancel)"
PURGE_BATCH = 500
MESSAGE_WIDTH = 60
OPERATOR = Caller("hpc-wps jobs", is_admin=True)  # whoever can read the configuration sees every job


class JobsError(Exception):
    """A request the command cannot carry out; the message says why, the exit status is 1."""


def parse_age(text: str) -> dt.timedelta:
    """An age such as ``90s``, ``30m``, ``2h``, ``3d`` or ``1w``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 30m, 2h or 3d")
    return dt.timedelta(seconds=float(match.group(1)) * AGE_UNITS[match.group(2)])


def parse_statuses(text: str) -> list[str]:
    """Comma-separated job states, or the groups ``active`` and ``finished``."""
    statuses: list[str] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name not in STATUS_GROUPS:
            raise argparse.ArgumentTypeError(f"{name!r} is not a job state; use {', '.join(STATUS_GROUPS)}")
        statuses.extend(STATUS_GROUPS[name])
    return statuses


def _text(value: Any) -> Any:
    """Table values as JSON and text show them: times in ISO 8601 UTC."""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds") + "Z"
    return value


def _filter(args: argparse.Namespace, removable_only: bool = False) -> JobFilter:
    return JobFilter(
        statuses=tuple(s for group in args.status or [] for s in group),
        processes=tuple(args.process or ()),
        older_than=args.older_than,
        limit=args.limit,
        removable_only=removable_only,
        owners=tuple(args.owner or ()),
    )


def _jobs(engine: Engine, settings: Settings, which: JobFilter) -> list[Job]:
    """Through the job service, as the web service lists them; the commands run no process."""
    return JobService(settings.jobs, engine, Registry(())).list_jobs(which, OPERATOR)


def _resolve(engine: Engine, reference: str) -> Mapping[str, Any]:
    """A job by its id or an unambiguous beginning of it (as the table shows them)."""
    reference = reference.strip().lower()
    if not re.fullmatch(r"[0-9a-f-]{4,36}", reference):
        raise JobsError(f"{reference!r} is not a job id (or its first characters, at least four)")
    rows = queries.jobs_by_id_prefix(engine, reference, limit=2)
    exact = [row for row in rows if row["id"] == reference]
    if exact or len(rows) == 1:
        return (exact or rows)[0]
    if not rows:
        raise JobsError(f"no job {reference}")
    raise JobsError(f"{reference} is the beginning of more than one job id; give more of it")


def _table(jobs: Iterable[Job]) -> None:
    header = ("ID", "STATUS", "PROCESS", "EXECUTOR", "CREATED (UTC)", "OWNER", "MESSAGE")
    lines = [header]
    for job in jobs:
        message = " ".join((job.message or "").split())
        if len(message) > MESSAGE_WIDTH:
            message = message[: MESSAGE_WIDTH - 1] + "…"
        created = job.created_at.isoformat(sep=" ", timespec="seconds")
        lines.append((job.id, job.status.value, job.process_id, job.executor or "-", created, job.owner, message))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)] + [0]  # the message: as it is
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def _size(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


def cmd_list(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    jobs = _jobs(engine, settings, _filter(args))
    if args.json:
        json.dump([{k: _text(v) for k, v in job.as_dict().items()} for job in jobs], sys.stdout, indent=1)
        print()
    else:
        _table(jobs)
    return 0


def describe(row: Mapping[str, Any], jobs_dir: Path) -> dict[str, Any]:
    """Every column of a job, where its files are, and each output file with its size."""
    directory = jobs_dir / row["id"]
    details = {key: _text(value) for key, value in row.items()}
    details["directory"] = str(directory) if directory.is_dir() else None
    details["directory_bytes"] = directory_size(directory)
    details["output_files"] = [
        {"id": record["id"], "path": str(path), "bytes": path.stat().st_size if path.is_file() else None}
        for record in row["outputs"] or []
        if record.get("file")
        for path in [directory / "outputs" / record["file"]]
    ]
    return details


def cmd_show(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    row = _resolve(engine, args.job)
    details = describe(row, settings.jobs_dir)
    if args.json:
        json.dump(details, sys.stdout, indent=1)
        print()
        return 0
    width = max(len(key) for key in details)
    for key, value in details.items():
        if key == "output_files":
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, indent=1)
        print(f"{key.ljust(width)}  {'-' if value is None else value}")
    for output in details["output_files"]:
        size = "missing" if output["bytes"] is None else f"{output['bytes']} bytes"
        print(f"{'output ' + output['id']:<{width}}  {output['path']} ({size})")
    return 0


def cmd_cancel(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    code = 0
    for reference in args.jobs:
        try:
            before = _resolve(engine, reference)
        except JobsError as exc:
            print(f"hpc-wps jobs cancel: {exc}", file=sys.stderr)
            code = 1
            continue
        job_id = before["id"]
        if before["status"] == JobStatus.DISMISSED.value:
            print(f"{job_id}: already dismissed")
            continue
        after = dismiss_job(engine, settings.jobs_dir, job_id, DISMISSED_BY_OPERATOR)
        if after is None:  # deleted meanwhile (expired, or purged)
            print(f"{job_id}: no longer exists")
        elif after["status"] != JobStatus.DISMISSED.value:
            print(f"hpc-wps jobs cancel: {job_id} is {after['status']} and could not be dismissed", file=sys.stderr)
            code = 1
        elif after["native_active"]:
            print(f"{job_id}: dismissed (was {before['status']}); the dispatcher stops it and removes its files")
        else:
            print(f"{job_id}: dismissed (was {before['status']}); its files are removed")
    return code


def cmd_purge(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    asked = {s for group in args.status or [] for s in group}
    active = sorted(asked - set(STATUS_GROUPS["finished"]))
    if active:
        raise JobsError(f"purge removes finished jobs only, never {', '.join(active)} ones")
    if not (args.status or args.process or args.owner or args.older_than or args.all):
        raise JobsError("say which finished jobs to purge (--status, --process, --owner, --older-than), or --all")
    jobs = _jobs(engine, settings, _filter(args, removable_only=True))
    sizes = {job.id: directory_size(settings.jobs_dir / job.id) for job in jobs}
    if args.dry_run:
        _table(jobs)
        print(f"would purge {len(jobs)} finished job(s), {_size(sum(sizes.values()))} of files")
        return 0
    ids = [job.id for job in jobs]
    purged = sum(
        delete_finished_jobs(engine, settings.jobs_dir, ids[i : i + PURGE_BATCH])
        for i in range(0, len(ids), PURGE_BATCH)
    )
    print(f"purged {purged} finished job(s), {_size(sum(sizes.values()))} of files")
    return 0


COMMANDS = {"list": cmd_list, "show": cmd_show, "cancel": cmd_cancel, "purge": cmd_purge}


def run(settings: Settings, args: argparse.Namespace) -> int:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        # Connecting would create an empty database file where the operator expected the service's.
        print(f"hpc-wps jobs {args.action}: there is no job database at {url.database}", file=sys.stderr)
        return 1
    engine = make_engine(settings.database_url)
    try:
        return COMMANDS[args.action](engine, settings, args)
    except JobsError as exc:
        print(f"hpc-wps jobs {args.action}: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        where = url.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(
            f"hpc-wps jobs {args.action}: cannot use the job table at {where} ({reason});"
            " is it created (hpc-wps db upgrade)?",
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()


def _add_filters(parser: argparse.ArgumentParser, *, limit: int) -> None:
    states = ", ".join(STATUS_GROUPS)
    parser.add_argument(
        "--status", type=parse_statuses, action="append", help=f"only jobs in these states (comma-separated: {states})"
    )
    parser.add_argument("--process", action="append", help="only jobs of this process (repeatable)")
    parser.add_argument("--owner", action="append", metavar="NAME", help="only jobs of this user (repeatable)")
    parser.add_argument(
        "--older-than",
        type=parse_age,
        metavar="AGE",
        help="only jobs created longer ago than AGE (90s, 30m, 2h, 3d, 1w)",
    )
    parser.add_argument("--limit", type=int, default=limit, help=f"at most this many, newest first (0: all; {limit})")


def add_jobs_parser(commands: Any, load: SettingsLoader) -> None:
    """Register ``jobs`` and its actions on the ``hpc-wps`` subcommands; ``load`` reads the settings."""
    jobs = commands.add_parser("jobs", help="list, show, cancel and purge jobs (for operators)")
    jobs.set_defaults(func=lambda args: run(load(args), args))
    actions = jobs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="jobs as a table, newest first")
    _add_filters(listing, limit=100)
    listing.add_argument("--json", action="store_true", help="a JSON list of rows instead of the table")
    show = actions.add_parser("show", help="every column of one job, its directory and output files")
    show.add_argument("job", help="a job id, or its first characters")
    show.add_argument("--json", action="store_true", help="as a JSON object")
    cancel = actions.add_parser("cancel", help="dismiss jobs as a WPS Dismiss does (running ones are stopped)")
    cancel.add_argument("jobs", nargs="+", metavar="JOB", help="job ids, or their first characters")
    purge = actions.add_parser("purge", help="delete finished jobs (files and rows); never waiting or running ones")
    _add_filters(purge, limit=0)
    purge.add_argument("--all", action="store_true", help="every finished job, when no filter is given")
    purge.add_argument("--dry-run", action="store_true", help="only show what would be purged")
