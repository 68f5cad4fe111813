"""GET /health: is the service ready? JSON, 200 when it is, 503 with the reasons when it is not.

Ready means: the job table answers within ``[monitoring] probe_timeout``, at least one dispatcher
has written its heartbeat within ``heartbeat_timeout`` (without one, accepted asynchronous jobs would
wait for ever), and no host's dispatchers are in a crash loop (``scheduler.heartbeat.crash_loops``:
restarted, a dying dispatcher beats again at once, yet no job gets anywhere). The answer also shows
the queue and every dispatcher the table knows. It never raises: whatever fails becomes a reason, and
the database's own error goes to the log only (it can name hosts and users a public endpoint should
not show).

GET /health/live only says that this web worker answers, with no I/O: a liveness probe that must not
restart the service because its database is down.

Both answer their own errors in JSON too (the blueprint's handler): a probe that reads JSON must not
meet a WPS exception report.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from functools import partial
from typing import Any

from flask import Blueprint, Response

from app import errors
from app.ops.probe import Probe, Snapshot
from scheduler.heartbeat import CRASH_WINDOW, DispatcherState, crash_loops

log = logging.getLogger(__name__)

PASS, FAIL = "pass", "fail"


def blueprint(probe: Probe) -> Blueprint:
    bp = Blueprint("health", __name__)
    bp.add_url_rule("/health", "ready", partial(ready, probe))
    bp.add_url_rule("/health/live", "live", live)
    bp.register_error_handler(Exception, partial(errors.answer, render=_failure))
    return bp


def _reply(body: dict[str, Any], status: int) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _failure(status: int, reason: str) -> Response:
    """What /health answers when it fails itself (the job table's failures are its answer, not errors)."""
    return _reply({"status": FAIL, "reasons": [reason]}, status)


def live() -> Response:
    return _reply({"status": PASS}, 200)


def ready(probe: Probe) -> Response:
    try:
        snapshot = probe.read()
    except Exception as exc:  # any failure of the read is the answer, never an error page
        log.warning("health: the job table does not answer: %s", exc)
        reason = f"the job table does not answer ({type(exc).__name__}); the service log has the details"
        return _reply({"status": FAIL, "reasons": [reason], "checks": {"database": {"status": FAIL}}}, 503)
    return _report(snapshot, probe.heartbeat_timeout)


def _report(snapshot: Snapshot, heartbeat_timeout: float) -> Response:
    reasons = []
    if not snapshot.alive:
        if snapshot.dispatchers:
            latest = snapshot.dispatchers[0]
            reasons.append(
                f"no dispatcher is alive: the last heartbeat, from {latest.host} (pid {latest.pid}), "
                f"is {latest.age:.0f} s old (limit {heartbeat_timeout:g} s)"
            )
        else:
            reasons.append("no dispatcher is running: accepted asynchronous jobs would not start")
    loops = crash_loops(snapshot.dispatchers)
    reasons.extend(_crash_loop(host, ended) for host, ended in loops.items())
    shape = snapshot.shape
    body = {
        "status": FAIL if reasons else PASS,
        "reasons": reasons,
        "checks": {
            "database": {"status": PASS, "seconds": round(snapshot.seconds, 6)},
            "dispatchers": {
                "status": PASS if snapshot.alive and not loops else FAIL,
                "alive": len(snapshot.alive),
                "known": [
                    {
                        "host": d.host,
                        "pid": d.pid,
                        "executors": d.executors.split(",") if d.executors else [],
                        "started_at": _iso(d.started_at),
                        "last_beat_seconds": round(d.age, 3),
                        "alive": d.alive,
                        "failure": d.failure,
                    }
                    for d in snapshot.dispatchers
                ],
            },
        },
        "queue": {
            "waiting": shape.waiting,
            "oldest_waiting_seconds": round(shape.waiting_seconds(), 3),
            "queued": shape.queued,
            "running": shape.running,
        },
    }
    return _reply(body, 503 if reasons else 200)


def _crash_loop(host: str, ended: list[DispatcherState]) -> str:
    """The reason for a crash loop. The exception's type only: its text may name what a public
    endpoint should not show; the service log has it, with the traceback."""
    last = ended[0]
    how = f"the last on {last.failure}" if last.failure else "the last killed or hung, with no error recorded"
    return (
        f"the dispatcher on {host} is in a crash loop: {len(ended)} ended without being stopped in the last"
        f" {CRASH_WINDOW.total_seconds():.0f} s, {how}; the service log has the details"
    )


def _iso(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=dt.UTC).isoformat(timespec="seconds")
