"""The dispatcher: the one process that hands accepted jobs to executors and follows them to their end.

Web workers only insert, read and dismiss rows; everything that touches an executor happens here, in
one loop: offer accepted jobs to free capacity (round robin between users, first in first out within
each), poll every active job of every executor in one call each, cancel dismissed ones, and settle
those that ended.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import SQLAlchemyError

from processes.container.runtimes import on_runtime
from processes.model import Process
from processes.registry import Registry
from scheduler import lifecycle, queries
from scheduler.db import after_fork
from scheduler.executor_names import LOCAL
from scheduler.executors.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.local import RESTARTED
from scheduler.executors.registry import LocalHooks, build_executors
from scheduler.heartbeat import Heartbeat
from scheduler.launcher import (
    RESULT_FILE,
    STATUS_FILE,
    Outcome,
    ProgressReporter,
    expiry,
    read_result,
    read_status,
    record_outcome,
    run_to_outcome,
    write_result,
)
from scheduler.logs import job_context
from scheduler.maintenance import (
    evict_over_high_water,
    fail_abandoned_web_jobs,
    jobs_of_lost_hosts,
    remove_expired,
)
from scheduler.models import JobStatus, utcnow
from scheduler.notifier import Notifier
from scheduler.payload import Payload, write_payload
from scheduler.pids import identity, running_here
from scheduler.resources import resolve
from scheduler.settings import JobSettings
from scheduler.subscribers import NotificationBody, neutral_body

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 30.0  # seconds between sweeps for abandoned and expired jobs
HANDOVER_GRACE = 120.0  # seconds after its claim before a job without a native id counts as abandoned
RUN_AGAIN_MARK = ".run-again"  # in a job directory: the job was already queued again once after a restart
# Dispatchers a job's hand-over may stop (an exception nothing expected, or killed) before it fails.
HANDOVER_CRASH_LIMIT = 2

Submitted = tuple[str, str | None, SubmitError | None]  # job id, native id, why it was not submitted


class ChildWakeup:
    """Ends the dispatcher's idle wait as soon as a child exits, any signal arrives, or an executor's
    descriptor (a local worker reporting a job done) becomes readable.

    Without it a finished local job would wait out the poll interval before its slot is reused,
    which caps throughput at slots / interval. Signals use the signal wakeup fd, so only in the main
    thread; elsewhere only the executors' descriptors end the timed wait early.
    """

    def __enter__(self) -> ChildWakeup:
        self.read_fd: int | None = None
        try:
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            self.previous_fd = signal.set_wakeup_fd(write_fd)
        except ValueError:  # not the main thread
            os.close(read_fd)
            os.close(write_fd)
            return self
        self.read_fd, self.write_fd = read_fd, write_fd
        self.previous_handler = signal.signal(signal.SIGCHLD, lambda *_: None)
        return self

    def wait(self, stop: threading.Event, seconds: float, fds: list[int]) -> None:
        """Wait until a signal arrives, one of ``fds`` becomes readable, or ``seconds`` pass."""
        if self.read_fd is None:
            if fds:
                select.select(fds, [], [], seconds)
            else:
                stop.wait(seconds)
            return
        ready, _, _ = select.select([self.read_fd, *fds], [], [], seconds)
        if self.read_fd in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.read_fd, 512):
                    pass

    def __exit__(self, *_: object) -> None:
        if self.read_fd is not None:
            signal.set_wakeup_fd(self.previous_fd)
            signal.signal(signal.SIGCHLD, self.previous_handler)
            os.close(self.read_fd)
            os.close(self.write_fd)


class Dispatcher:
    def __init__(
        self,
        settings: JobSettings,
        engine: Engine,
        registry: Registry,
        notification_body: NotificationBody = neutral_body,
    ) -> None:
        """``notification_body``: what subscribers of a job receive, rendered by the binding that
        defines it (``scheduler/subscribers.py``)."""
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.identity = identity()  # host/pid:starttime, in its claims and its local jobs' native ids
        self.executors: dict[str, Executor] = build_executors(
            settings, registry, LocalHooks(self._run_local, self._prepare_worker, self.identity)
        )
        # Batch systems are asked at most every scheduler poll interval; the local pool every cycle.
        self._next_poll: dict[str, float] = {}
        # Back-off per executor after a failed submission (the system is down): (retry at, pause).
        self._backoff: dict[str, tuple[float, float]] = {}
        self._next_maintenance = 0.0
        # Recordings of submitted jobs that the job table did not take yet (it was out of reach).
        self._unrecorded: list[Callable[[Connection], None]] = []
        self.heartbeat = Heartbeat(engine, self.executors, settings.heartbeat_interval)
        self.notifier = Notifier(settings, engine, notification_body)

    def _expires(self) -> dt.datetime:
        return expiry(self.settings.processing.retention)

    def executor_for(self, process: Process) -> Executor:
        name = self.settings.executor_for(process)
        return self.executors.get(name) or self.executors[LOCAL]

    def _prepare_worker(self) -> None:
        """In a freshly forked local worker. Jobs run niced: on a machine whose cores they fill, the
        web workers answering GetStatus and Execute still get the CPU first."""
        after_fork(self.engine)
        os.nice(self.settings.processing.worker_nice)

    def _run_local(self, spec: JobSpec) -> None:
        """Runs in a local worker. It writes its outcome to the job directory only; the dispatcher
        records it, with the other jobs that ended in the same cycle, in one transaction."""
        process = self.registry.get(spec.process_id)
        assert process is not None  # checked before the fork
        spec.job_dir.mkdir(parents=True, exist_ok=True)
        reporter = ProgressReporter(self.engine, spec.job_id)
        write_result(
            spec.job_dir,
            run_to_outcome(
                process, spec.request, spec.job_dir, self.settings.inputs, reporter, docker=self.settings.docker
            ),
        )

    # -- the loop ---------------------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: take up every job an executor may still hold; none is lost or run twice."""
        for executor in self.executors.values():
            for row in queries.active_native_jobs(self.engine, executor.name):
                if row["native_id"]:
                    with job_context(row["id"]):
                        executor.attach(row["native_id"])

    def recover_unsubmitted(self) -> None:
        """Jobs claimed but without a native id, whose dispatcher stopped while handing them over: on
        this host, one no longer running; elsewhere, one whose claim is older than HANDOVER_GRACE (a live
        dispatcher records the ids within a cycle, or retries while the table is out of reach).

        Where the executor left a trace of the hand-over (a local worker writes the native id into
        the job directory), the id is recorded and the job followed as any other. Otherwise such a
        job runs again if it certainly never started (a local job makes its directory first
        thing) or its process is rerunnable; otherwise it may be running unrecorded somewhere, and
        is failed.
        """
        cutoff = utcnow() - dt.timedelta(seconds=HANDOVER_GRACE)
        for executor in self.executors.values():
            for row in queries.active_native_jobs(self.engine, executor.name):
                if row["native_id"]:
                    continue
                found = executor.find_native_id(self.settings.job_dir(row["id"]))
                if found is not None:  # handed over after all: record it, and polls follow it
                    lifecycle.mark_submitted_many(self.engine, [(row["id"], found, None)])
                elif self._hand_over_abandoned(row, cutoff):
                    with job_context(row["id"]):
                        self._recover_hand_over(executor, row)

    @staticmethod
    def _hand_over_abandoned(row: RowMapping, cutoff: dt.datetime) -> bool:
        """Its claimer no longer runs on this host, or, claimed elsewhere (or before claims named their
        dispatcher), the claim is older than ``cutoff``."""
        claimer_runs = running_here(row["claimed_by"] or "")
        return row["updated_at"] < cutoff if claimer_runs is None else not claimer_runs

    def _recover_hand_over(self, executor: Executor, row: RowMapping) -> None:
        never_started = executor.starts_now and not self.settings.job_dir(row["id"]).exists()
        with self.engine.begin() as conn:
            self._hand_over_stopped(conn, executor, row, None, never_started)

    def _hand_over_stopped(
        self, conn: Connection, executor: Executor, row: RowMapping, error: str | None, never_started: bool
    ) -> None:
        """A dispatcher stopped while handing the job over: on ``error`` (the exception, when it could
        say), or killed. The job runs again if it certainly never started or its process is rerunnable,
        else it may be running unrecorded and fails. Once hand-overs of it have stopped
        HANDOVER_CRASH_LIMIT dispatchers it fails with the error, instead of stopping every next one."""
        crashes = lifecycle.count_handover_crash(conn, row["id"])
        if crashes is None:  # recovered meanwhile by another dispatcher, or dismissed
            return
        name = executor.name
        process = self.registry.get(row["process_id"])
        if crashes >= HANDOVER_CRASH_LIMIT:
            last = f", the last time with {error}" if error else ""
            message = f"could not be submitted: handing it over to {name} stopped the dispatcher {crashes} times{last}"
        elif never_started or (process is not None and process.rerunnable):
            why = f": handing it over to {name} stopped the dispatcher with {error}" if error else " after a restart"
            if lifecycle.release(conn, row["id"], f"queued again{why}"):
                log.info("job %s: claimed but never handed over to %s; queued again", row["id"], name)
            return
        elif error:
            message = f"could not be submitted: handing it over to {name} stopped the dispatcher with {error}"
        else:
            message = f"interrupted by a restart of the service before its hand-over to {name} was recorded"
        lifecycle.mark_failed(conn, row["id"], message, self._expires(), native_active=False)

    def settle_jobs_of_lost_hosts(self) -> None:
        """Local jobs of a host gone for good: the job directory is shared between hosts, so a job that
        ended there before its host went is settled from the result it left; the others failed as lost."""
        silent_for = self.settings.host_lost_after
        for row, host in jobs_of_lost_hosts(self.engine, silent_for):
            reason = f"was lost with its host {host}, where no dispatcher has run for over {silent_for:.0f} s"
            with self.engine.begin() as conn:
                self.settle(
                    conn, row, NativeStatus(NativeState.ENDED, reason), read_result(self.settings.job_dir(row["id"]))
                )
            log.warning("job %s: settled as its host %s is gone", row["id"], host)

    def cycle(self) -> bool:
        """One pass; True if it did anything (then the next pass follows without a pause)."""
        self.heartbeat.beat()  # from the loop itself (at most once per interval): a hung loop goes stale
        self.record_submissions()
        busy = self.poll()
        busy = self.submit_waiting() or busy
        self.notifier.cycle()
        if time.monotonic() >= self._next_maintenance:
            self._next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL
            self.maintain()
        return busy

    def maintain(self) -> None:
        self.recover_unsubmitted()
        fail_abandoned_web_jobs(self.engine, self.settings.processing.sync_time_limit, self._expires())
        for executor in self.executors.values():  # after the line above: a dead worker's job is final now
            executor.remove_leftovers(lambda ids: queries.still_active(self.engine, ids))
        self.settle_jobs_of_lost_hosts()
        remove_expired(self.engine, self.settings.jobs_dir)
        processing = self.settings.processing
        evict_over_high_water(self.engine, self.settings.jobs_dir, processing.disk_high_water, processing.jobs_budget)

    def run(self, stop: threading.Event) -> None:
        self.recover()
        for executor in self.executors.values():
            executor.start()
        interval = self.settings.processing.poll_interval
        failure: BaseException | None = None  # what stopped the loop, if not ``stop``: its heartbeat row tells
        with ChildWakeup() as wakeup:
            try:
                while not stop.is_set():
                    try:
                        busy = self.cycle()
                    except SQLAlchemyError:
                        log.exception("the job table is out of reach; trying again")
                        busy = False
                        stop.wait(1.0)
                    if not busy:
                        fds = [fd for executor in self.executors.values() for fd in executor.wakeup_fds()]
                        wakeup.wait(stop, interval, fds)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                # A job dismissed since the last cycle is cancelled now: a busy local worker outlives
                # its dispatcher (it finishes its job for the next one), and must not for a dismissed job.
                with contextlib.suppress(SQLAlchemyError):
                    self.poll()
                for executor in self.executors.values():
                    executor.close()
                self.notifier.close()
                self.heartbeat.stop(failure)

    # -- submitting -------------------------------------------------------------------------------

    def submit_waiting(self) -> bool:
        """Offer accepted jobs to executors with room, fairly across users (see ``_claim``)."""
        batches = list(self._claim().items())
        for index, (name, rows) in enumerate(batches):
            later = [row for _name, rest in batches[index + 1 :] for row in rest]
            self._submit_claimed(self.executors[name], rows, later)
        return bool(batches)

    def _claim(self) -> dict[str, list[RowMapping]]:
        """Take the accepted jobs next in turn (round robin between users, oldest first within one;
        none beyond ``[quotas] running_per_user``) that the executors have room for, by executor.

        One transaction: on PostgreSQL the rows are locked as they are read (SKIP LOCKED), so
        dispatchers running side by side each take different jobs instead of racing for the same
        ones; the conditional claim is what guarantees, on every database, that none runs twice.
        """
        capacities = {name: e.capacity() for name, e in self.executors.items()}
        per_cycle = {name: e.per_cycle() for name, e in self.executors.items()}
        room = min(
            sum(per_cycle[name] if c is None else max(0, c) for name, c in capacities.items()),
            max(per_cycle.values(), default=0),
        )
        if room == 0:
            return {}
        claims: dict[str, list[RowMapping]] = {}
        with self.engine.begin() as conn:
            groups: dict[str, list[RowMapping]] = {}
            cap = self.settings.quotas.running_per_user
            for row in queries.next_to_start(conn, room, cap, lock=True):
                process = self.registry.get(row["process_id"])
                if process is None:
                    message = f"process {row['process_id']} is no longer offered"
                    lifecycle.mark_failed(conn, row["id"], message, self._expires())
                    continue
                groups.setdefault(self.executor_for(process).name, []).append(row)
            for name, rows in groups.items():
                executor = self.executors[name]
                if self._backoff.get(name, (0.0, 0.0))[0] > time.monotonic():
                    continue
                capacity = capacities[name]
                rows = rows[: per_cycle[name] if capacity is None else max(0, capacity)]
                ids = [r["id"] for r in rows]
                claimed = lifecycle.claim_many(conn, ids, name, executor.starts_now, self.identity)
                if claimed:
                    claims[name] = [row for row in rows if row["id"] in claimed]
        return claims

    def _submit_claimed(self, executor: Executor, rows: list[RowMapping], later: list[RowMapping]) -> None:
        """Hand claimed jobs to their executor, all in one ``submit_many`` (a job array on batch systems);
        ``later``: the claims of the next executors."""
        submitted: list[Submitted] = []
        prepared: list[tuple[RowMapping, JobSpec]] = []
        for index, row in enumerate(rows):
            with job_context(row["id"]):
                try:
                    prepared.append((row, self._prepare(executor, row)))
                except (OSError, ValueError) as exc:
                    submitted.append((row["id"], None, SubmitError(f"cannot prepare the job: {exc}", retry=False)))
                except Exception as exc:
                    self._stop_handing_over(
                        executor, row, exc, False, [r for r, _ in prepared] + rows[index + 1 :] + later
                    )
                    raise
        results = executor.submit_many([spec for _row, spec in prepared])
        for index, (row, _spec) in enumerate(prepared):
            with job_context(row["id"]):
                try:
                    result = next(results)
                except Exception as exc:  # the executor was asked: the job may have started
                    self._record(executor, submitted)
                    self._stop_handing_over(executor, row, exc, True, [r for r, _ in prepared[index + 1 :]] + later)
                    raise
                if isinstance(result, SubmitError):
                    submitted.append((row["id"], None, result))
                else:
                    submitted.append((row["id"], result, None))
        self._record(executor, submitted)

    def _record(self, executor: Executor, submitted: list[Submitted]) -> None:
        """Record what the submissions gave: native ids, a job released to wait for its executor
        (back-off), or failed."""
        name = executor.name
        started = [
            (job_id, native_id, None if executor.starts_now else executor.describe_queued(native_id))
            for job_id, native_id, _error in submitted
            if native_id is not None
        ]
        retry = [error for _job, native, error in submitted if native is None and error and error.retry]
        pause = self._note_submissions(name, failed=bool(retry))
        expires = self._expires()

        def record(conn: Connection) -> None:
            lifecycle.mark_submitted_many(conn, started)
            for job_id, native_id, error in submitted:
                if native_id is not None:
                    continue
                if error is not None and error.retry:
                    lifecycle.release(conn, job_id, f"waiting for {name}: {error}; next try in {pause:.0f} s")
                else:
                    message = f"could not be submitted: {error}"
                    lifecycle.mark_failed(conn, job_id, message, expires, native_active=False)

        self._unrecorded.append(record)
        self.record_submissions()

    def _stop_handing_over(
        self, executor: Executor, row: RowMapping, exc: Exception, reached: bool, untried: list[RowMapping]
    ) -> None:
        """Handing ``row`` over raised what nothing expects (a package missing, a bug). The dispatcher
        stops, as on any bug, and a fresh one takes over; this leaves the table true first. The jobs
        not tried yet (``untried``) wait again as they were; the job itself runs again or fails with the error
        (``_hand_over_stopped``), so that it cannot stop dispatchers for ever. If the table is out of
        reach now, the next dispatcher's recovery does the same without the error."""
        log.exception("handing the job over to %s failed unexpectedly; the dispatcher stops", executor.name)
        error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(SQLAlchemyError), self.engine.begin() as conn:
            for other in untried:
                lifecycle.release(conn, other["id"], "accepted")
            self._hand_over_stopped(conn, executor, row, error, never_started=not reached)

    def record_submissions(self) -> None:
        """Write what submissions gave (native ids above all) to the table, oldest first.

        The jobs already run: if the table is out of reach now, what they gave is kept and written by
        a later cycle, since a job whose native id is lost could never be followed to its end.
        """
        while self._unrecorded:
            try:
                with self.engine.begin() as conn:
                    self._unrecorded[0](conn)
            except SQLAlchemyError as exc:
                log.warning("submissions not recorded yet, the job table is out of reach: %s", exc)
                return
            self._unrecorded.pop(0)

    def _note_submissions(self, name: str, failed: bool) -> float:
        """Exponential back-off while an executor refuses submissions; reset by the first success."""
        if not failed:
            self._backoff.pop(name, None)
            return 0.0
        pause = min(self.settings.scheduler.retry_max, max(1.0, self._backoff.get(name, (0.0, 0.5))[1] * 2))
        self._backoff[name] = (time.monotonic() + pause, pause)
        return pause

    def _prepare(self, executor: Executor, row: RowMapping) -> JobSpec:
        """What the executor gets; for batch systems, the payload written into the job directory."""
        job_id = row["id"]
        process = self.registry.get(row["process_id"])
        assert process is not None
        job_dir = self.settings.job_dir(job_id)
        resources = None
        if executor.needs_payload:
            request = row["request"]
            resources = resolve(self.settings.scheduler, process.resources, request.get("resources"))
            payload = Payload(
                job_id,
                on_runtime(process, self.settings.scheduler.container_runtime),
                request,
                self.settings.database_url,
                self.settings.inputs,
                self.settings.processing.retention,
                self.settings.docker,
            )
            write_payload(job_dir, payload)
        return JobSpec(job_id, process.identifier, job_dir, row["request"], resources)

    # -- following ------------------------------------------------------------------------------

    def poll(self) -> bool:
        did = False
        now = time.monotonic()
        for executor in self.executors.values():
            # The local pool's children are reaped every cycle; other systems once per poll interval.
            if not executor.starts_now:
                if self._next_poll.get(executor.name, 0.0) > now:
                    continue
                self._next_poll[executor.name] = now + self.settings.scheduler.poll_interval
            rows = [r for r in queries.active_native_jobs(self.engine, executor.name) if r["native_id"]]
            if not rows:
                continue
            try:
                statuses = executor.poll_many([r["native_id"] for r in rows])
            except SubmitError as exc:  # the system does not answer now: ask again next interval
                log.warning("%s: polling failed: %s", executor.name, exc)
                continue
            ended = []
            for row in rows:
                status = statuses.get(row["native_id"])
                if status is None:
                    continue
                if status.state is NativeState.ENDED:
                    ended.append((row, status))
                elif row["status"] == JobStatus.DISMISSED.value:
                    with job_context(row["id"]):
                        executor.cancel(row["native_id"])
                elif status.state is NativeState.RUNNING and not executor.starts_now:
                    self.follow_running(row)
                elif status.progress is not None:
                    lifecycle.update_progress(self.engine, row["id"], status.progress.message, status.progress.percent)
            ended = self._retrieved(executor, ended)
            if ended:
                # Result files are read before the transaction: on SQLite it holds the one write lock.
                outcomes = {row["id"]: read_result(self.settings.job_dir(row["id"])) for row, _status in ended}
                with self.engine.begin() as conn:
                    for row, status in ended:
                        self.settle(conn, row, status, outcomes[row["id"]])
                for row, _status in ended:
                    if row["status"] == JobStatus.DISMISSED.value:
                        shutil.rmtree(self.settings.job_dir(row["id"]), ignore_errors=True)
                did = True
        return did

    def _retrieved(
        self, executor: Executor, ended: list[tuple[RowMapping, NativeStatus]]
    ) -> list[tuple[RowMapping, NativeStatus]]:
        """The ended jobs whose results are in their job directories now; a job whose results cannot be
        brought back yet (a login host out of reach) stays as it is, to be settled at a later poll."""
        ready = []
        for row, status in ended:
            with job_context(row["id"]):
                try:
                    executor.retrieve(self.settings.job_dir(row["id"]))
                except SubmitError as exc:
                    log.warning("%s: the job's results cannot be brought back now: %s", executor.name, exc)
                    continue
            ready.append((row, status))
        return ready

    def follow_running(self, row: RowMapping) -> None:
        """A batch job the system reports running: mark it so (the launcher may not reach the table)
        and carry over the progress it left in its job directory."""
        with job_context(row["id"]):
            if row["status"] == JobStatus.QUEUED.value:
                lifecycle.mark_running(self.engine, row["id"], "running")
            progress = read_status(self.settings.job_dir(row["id"]))
            if progress is not None:
                message = progress.get("message") or "running"
                lifecycle.update_progress(self.engine, row["id"], message, progress.get("percent"))

    def _run_again(self, conn: Connection, row: RowMapping) -> bool:
        """Queue a job of a rerunnable process that a restart interrupted, from a clean directory.

        Once only: a job that keeps ending with the service (say, it exhausts the machine's memory)
        would otherwise come back for ever. The mark left in its directory remembers the first time.
        """
        process = self.registry.get(row["process_id"])
        job_dir = self.settings.job_dir(row["id"])
        mark = job_dir / RUN_AGAIN_MARK
        if process is None or not process.rerunnable or mark.exists():
            return False
        for name in ("work", "outputs"):
            shutil.rmtree(job_dir / name, ignore_errors=True)
        for name in (RESULT_FILE, STATUS_FILE):
            (job_dir / name).unlink(missing_ok=True)
        job_dir.mkdir(parents=True, exist_ok=True)
        mark.touch()
        return lifecycle.release(conn, row["id"], "queued again: interrupted by a restart of the service")

    def settle(self, conn: Connection, row: RowMapping, status: NativeStatus, outcome: Outcome | None) -> None:
        """The executor no longer holds the job: make sure its row reaches a final state."""
        with job_context(row["id"]):
            job_id = row["id"]
            retention = self.settings.processing.retention
            recorded = False
            if not JobStatus(row["status"]).is_final:
                if outcome is not None:
                    recorded = record_outcome(conn, job_id, outcome, retention, native_active=False)
                elif status.reason == RESTARTED and self._run_again(conn, row):
                    return
                else:
                    reason = status.reason or "ended without a result"
                    message = f"the job's process {reason}"
                    recorded = lifecycle.mark_failed(conn, job_id, message, expiry(retention), native_active=False)
            if not recorded:  # already final (dismissed, or recorded by the job itself): only release it
                lifecycle.mark_native_done(conn, job_id)
