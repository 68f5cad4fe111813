"""Notifications to a job's subscribers, sent by the dispatcher: when the job starts running, as its
progress changes (at most every ``[callbacks] progress_interval``), and when it succeeds or fails.

Why the dispatcher, for every job, synchronous ones included: the table is the truth about every
job whichever executor or web worker moves it, so one reader of the table notifies them all, and
nothing that ends a job (a local worker, a batch job on a node, a web worker answering a synchronous
Execute) ever waits for a subscriber. The dispatcher's loop only reads the few rows that may owe a
notification (``notify_due``, a partial index) at most every :data:`SCAN_INTERVAL` and claims what
it sends with a conditional UPDATE, so several dispatchers never send the same one; the POSTs, with
their retries, run in a small pool of threads (``[callbacks] threads``), one job's notifications one
after the other, in the order of its states. A notification claimed by a dispatcher that then dies is
not sent again: at most once, never blocking.

Each POST goes through the guarded path of remote inputs (``processes.fetch.post_http``): the same
destinations (``[inputs] allowed_hosts`` and ``denied_hosts``; never a private address or the
service itself otherwise), redirects and credential rules, with ``[callbacks] timeout`` for each try.
Timeouts, network errors and HTTP 5xx, 408 and 429 are tried again ``retries`` times with a doubling
``backoff``; a refused destination and other answers are not. Every outcome is logged, the URI shown
with its credentials as ``***``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import SQLAlchemyError

from processes.fetch import FetchLimits, InputError, post_http
from scheduler import lifecycle, queries
from scheduler.job import Job
from scheduler.logs import job_context
from scheduler.models import JobStatus
from scheduler.settings import CallbackSettings, JobSettings
from scheduler.subscribers import Event, Notification, NotificationBody, destination, unsealed

log = logging.getLogger(__name__)

SCAN_INTERVAL = 0.25  # seconds between two reads of the rows that may owe a notification
RETRIED_STATUSES = frozenset({408, 429})  # besides 5xx: the receiver asks to be tried again


@dataclass(frozen=True)
class Due:
    """What a job owes its subscribers now: ``event`` to send (None: nothing to send), and whether
    that is the last it will ever owe (``settled``: the row leaves the notifier's reads)."""

    event: Event | None
    settled: bool


def decide(
    status: JobStatus,
    entries: list[dict[str, Any]] | None,
    notified: str | None,
    changed: bool,
    since_sent: float | None,
    interval: float,
) -> Due | None:
    """The notification policy for one job, None when nothing is owed now.

    A succeeded or failed job owes its end, once, to the URI of that end if one was given; a
    dismissed job owes nothing more. A running job with an in-progress URI owes a notification as it
    starts running (``notified`` is not yet ``running``) and then whenever its row ``changed`` since
    the last one, but not sooner than ``interval`` seconds after it (``since_sent``: None when this
    dispatcher sent none). Accepted and queued jobs owe nothing.
    """
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        event = Event.SUCCESS if status is JobStatus.SUCCEEDED else Event.FAILED
        return Due(event if destination(entries, event) else None, settled=True)
    if status is JobStatus.DISMISSED:
        return Due(None, settled=True)
    if status is not JobStatus.RUNNING or destination(entries, Event.IN_PROGRESS) is None:
        return None
    if notified != JobStatus.RUNNING.value:
        return Due(Event.IN_PROGRESS, settled=False)
    if changed and (since_sent is None or since_sent >= interval):
        return Due(Event.IN_PROGRESS, settled=False)
    return None


def worth_retrying(status: int) -> bool:
    """An HTTP answer after which the same notification may be delivered later."""
    return status >= 500 or status in RETRIED_STATUSES


def callback_limits(inputs: FetchLimits, callbacks: CallbackSettings) -> FetchLimits:
    """The rules of remote inputs (destinations, redirects, credentials), with the timeout of a notification."""
    seconds = callbacks.timeout
    return dataclasses.replace(
        inputs, connect_timeout=seconds, read_timeout=seconds, total_timeout=seconds, deadline=None
    )


class Notifier:
    """One per dispatcher: :meth:`cycle` from its loop, deliveries in threads of their own."""

    def __init__(self, settings: JobSettings, engine: Engine, body: NotificationBody) -> None:
        self.settings = settings
        self.engine = engine
        self.body = body
        self.limits = callback_limits(settings.inputs, settings.callbacks)
        # Threads start with the first notification: a dispatcher without subscribers forks its
        # local workers from a process without them.
        self._pool = ThreadPoolExecutor(max_workers=settings.callbacks.threads, thread_name_prefix="notify")
        self._stop = threading.Event()
        self._in_flight: set[str] = set()  # jobs with a delivery under way: their next one waits for it
        self._sent_at: dict[str, float] = {}  # running jobs: when this dispatcher last notified them
        self._next_scan = 0.0

    def cycle(self) -> None:
        """Claim and hand to the threads what is owed now; one indexed read, never a wait on a subscriber."""
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + SCAN_INTERVAL
        for row in queries.notifications_due(self.engine):
            if row["id"] in self._in_flight:
                continue
            try:
                self._consider(row, now)
            except SQLAlchemyError:
                raise  # the table out of reach: the dispatcher's loop waits for it
            except Exception:  # a row this code cannot read (edited by hand?) must not stop the dispatcher
                log.exception("job %s: notifications not considered", row["id"])

    def _consider(self, row: RowMapping, now: float) -> None:
        job_id = row["id"]
        sent_at = self._sent_at.get(job_id)
        due = decide(
            JobStatus(row["status"]),
            row["subscribers"],
            row["notified"],
            row["updated_at"] != row["notified_at"],
            None if sent_at is None else now - sent_at,
            self.settings.callbacks.progress_interval,
        )
        if due is None or not lifecycle.claim_notification(self.engine, row, still_due=not due.settled):
            return
        if due.settled:
            self._sent_at.pop(job_id, None)
        else:
            self._sent_at[job_id] = now
        if due.event is None:
            return
        entry = destination(row["subscribers"], due.event)
        assert entry is not None  # decide() sends only where a URI was given
        self._in_flight.add(job_id)
        future = self._pool.submit(self._deliver, Job.from_row(row), due.event, entry)
        future.add_done_callback(lambda _done: self._in_flight.discard(job_id))

    def _deliver(self, job: Job, event: Event, entry: dict[str, Any]) -> None:
        """In a delivery thread: render, POST, retry, log; never raises."""
        with job_context(job.id):
            what = f"job {job.id}: {event.value} notification to {entry['href']}"  # stored: credentials as ***
            try:
                href = unsealed(entry, self.settings.jobs_dir)
                notification = self.body(job, event)
            except InputError as exc:
                log.warning("%s not sent: %s", what, exc)
                return
            except Exception:  # a binding's renderer failing must not end the thread
                log.exception("%s could not be rendered", what)
                return
            callbacks = self.settings.callbacks
            tries = callbacks.retries + 1
            for attempt in range(1, tries + 1):
                outcome, again = self._post(event, href, notification)
                if outcome is None:
                    log.info("%s delivered", what)
                    return
                if not again or attempt == tries:
                    log.warning("%s not delivered (%d tries): %s", what, attempt, outcome)
                    return
                pause = callbacks.backoff * 2 ** (attempt - 1)
                log.info("%s, try %d of %d: %s; next in %g s", what, attempt, tries, outcome, pause)
                if self._stop.wait(pause):
                    log.warning("%s not delivered: the dispatcher stopped", what)
                    return

    def _post(self, event: Event, href: str, notification: Notification) -> tuple[str | None, bool]:
        """One try: None when delivered (HTTP 2xx), else what went wrong and whether to try again."""
        try:
            status = post_http(event.value, href, notification.content, notification.media_type, self.limits)
        except InputError as exc:
            return str(exc), exc.transient
        if 200 <= status < 300:
            return None, False
        return f"answered HTTP {status}", worth_retrying(status)

    def close(self) -> None:
        """Stop retrying and drop what has not started; a POST under way ends within its timeout."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
