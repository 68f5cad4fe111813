"""The local pool: long-lived worker processes forked from the dispatcher, one job at a time each.

Why pre-forked: a fork per job cost the dispatcher about 1.7 ms and the child about 5 ms of
copy-on-write faults and teardown, for a job that does nothing; a worker forked once, from a
dispatcher that has already imported every process module, starts a job by reading it from a pipe.
Isolation is kept where it matters: each worker is a process group of its own, so a crash or a
Dismiss (SIGKILL to the group) ends that worker only and the pool forks a replacement. A worker is
retired after ``max_jobs`` jobs, and at once when a job leaves threads behind, changes the working
directory or grows it past ``RECYCLE_RSS``, so one job's leftovers cannot pile up in the next ones.

Native ids are ``HOST/DISPATCHER/WORKER:n``: the host, the dispatcher and the worker as
``pid:starttime`` (never mistaken for a recycled pid), and the worker's n-th job. A dispatcher follows
its own jobs, and adopts those of a dispatcher on its host that is no longer running (a restart): the
orphaned worker finishes its job, writes the result file, sees its pipe closed and exits. Jobs of
another host, or of another live dispatcher on this host, are left to their own dispatcher, so
dispatchers side by side never cancel or settle each other's local jobs.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

from scheduler.executor_names import LOCAL
from scheduler.executors.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.launcher import disk_full_reason
from scheduler.logs import job_context
from scheduler.pids import alive, describe_wait_status, identity, process_key, running_here

log = logging.getLogger(__name__)

Runner = Callable[[JobSpec], None]
RECYCLE_RSS = 512 * 1024**2  # bytes of resident memory after a job beyond which its worker is replaced
NATIVE_ID_FILE = ".native-id"  # in a job directory: written by the worker that took the job
RESTARTED = "was interrupted by a restart of the service"  # completes "the job's process ..."


def worker_pid(native_id: str) -> int:
    """The pid of the worker that runs (or ran) a local job."""
    return int(native_id.rsplit("/", 1)[-1].split(":", 1)[0])


@dataclass
class _Worker:
    pid: int
    key: str  # pid:starttime
    conn: Connection  # the dispatcher's end of the worker's pipe
    jobs: int = 0
    job: str | None = None  # the native id of the job it runs


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _serve(conn: Connection, runner: Runner, max_jobs: int) -> None:
    """The worker's loop: run jobs until retired or until the dispatcher's end of the pipe closes.

    After each job it answers ``(reason, retiring)``: an empty reason when the runner returned (the
    job's outcome is in its result file), else why it did not.
    """
    cwd = os.getcwd()
    for done in range(1, max_jobs + 1):
        try:
            native_id, spec = conn.recv()
        except (EOFError, OSError):  # the dispatcher is gone: nothing more will come
            return
        reason = ""
        with job_context(spec.job_id):
            try:
                spec.job_dir.mkdir(parents=True, exist_ok=True)
                (spec.job_dir / NATIVE_ID_FILE).write_text(native_id, encoding="ascii")
                runner(spec)
            except BaseException as exc:  # even SystemExit from a process must not end the worker unreported
                log.exception("job %s: the local runner failed", spec.job_id)
                disk_full = disk_full_reason(exc)
                reason = f"could not record its outcome: {disk_full}" if disk_full else f"raised {exc!r}"
        leftovers = threading.active_count() > 1 or os.getcwd() != cwd or _resident_bytes() > RECYCLE_RSS
        retiring = done == max_jobs or bool(reason) or leftovers
        try:
            conn.send((reason, retiring))
        except OSError:  # the dispatcher went away while the job ran; the result file is there for the next
            return
        if retiring:
            return


class LocalExecutor(Executor):
    name = LOCAL
    starts_now = True

    def __init__(
        self,
        slots: int,
        runner: Runner,
        prepare_worker: Callable[[], None],
        max_jobs: int,
        dispatcher: str | None = None,
    ) -> None:
        """``dispatcher``: the ``host/pid:starttime`` that owns the jobs; by default this process."""
        self.owner = dispatcher or identity()
        self.slots = slots
        self.runner = runner
        self.prepare_worker = prepare_worker
        self.max_jobs = max_jobs
        self._workers: dict[int, _Worker] = {}  # pid -> worker, for the workers this process forked
        self._retired: set[int] = set()  # pids of workers that said they exit, not yet reaped
        # native id -> why it ended ("" if it wrote its result), kept until a poll no longer asks for it:
        # a poll whose settling transaction failed asks again, and must hear the same reason.
        self._ended: dict[str, str] = {}
        self._reported: set[str] = set()  # ended ids a poll has been told of

    def start(self) -> None:
        """Fork every slot's worker now, so that the first jobs do not wait for forks."""
        while len(self._workers) < self.slots:
            self._spawn()

    def capacity(self) -> int:
        self._collect()
        return self.slots - sum(1 for w in self._workers.values() if w.job is not None)

    def wakeup_fds(self) -> list[int]:
        return [w.conn.fileno() for w in self._workers.values() if w.job is not None]

    def submit(self, spec: JobSpec) -> str:
        idle = [w for w in self._workers.values() if w.job is None]
        if not idle and len(self._workers) >= self.slots:
            raise SubmitError("all local slots are busy")
        worker = idle[0] if idle else self._spawn()
        native_id = f"{self.owner}/{worker.key}:{worker.jobs + 1}"
        try:
            worker.conn.send((native_id, spec))
        except OSError as exc:  # it died while idle; the next cycle forks another
            self._drop(worker)
            raise SubmitError(f"a local worker ended before it took the job: {exc}") from exc
        worker.jobs += 1
        worker.job = native_id
        return native_id

    def find_native_id(self, job_dir: Path) -> str | None:
        """A worker writes the job's native id into its directory before it runs it."""
        try:
            return (job_dir / NATIVE_ID_FILE).read_text(encoding="ascii").strip() or None
        except OSError:
            return None

    def _spawn(self) -> _Worker:
        ours, theirs = Pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never return into the dispatcher's loop
            try:
                os.setpgid(0, 0)
                signal.set_wakeup_fd(-1)  # the dispatcher's, not the worker's
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                # Only its own end stays open, so the worker sees end-of-file once the dispatcher is gone.
                for other in [ours, *(w.conn for w in self._workers.values())]:
                    other.close()
                self.prepare_worker()
                # A context of its own: not the one of the job whose submission forked it (log tags).
                contextvars.Context().run(_serve, theirs, self.runner, self.max_jobs)
            except BaseException:
                log.exception("a local worker failed")
            finally:
                os._exit(0)
        theirs.close()
        with contextlib.suppress(OSError):  # also set here, so a cancel right after the fork finds the group
            os.setpgid(pid, pid)
        worker = _Worker(pid, process_key(pid), ours)
        self._workers[pid] = worker
        return worker

    def _drop(self, worker: _Worker) -> None:
        del self._workers[worker.pid]
        worker.conn.close()
        self._retired.add(worker.pid)

    def _collect(self) -> None:
        """Take in what the workers reported, then reap the ones that ended."""
        for worker in list(self._workers.values()):
            try:
                while worker.job is not None and worker.conn.poll():
                    reason, retiring = worker.conn.recv()
                    self._ended[worker.job] = reason
                    worker.job = None
                    if retiring:
                        self._drop(worker)
            except (EOFError, OSError):  # died; its wait status says how
                pass
        for pid in list(self._retired):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self._retired.discard(pid)
        for worker in list(self._workers.values()):
            try:
                done, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                done, status = worker.pid, 0
            if done:
                if worker.job is not None:
                    self._ended[worker.job] = describe_wait_status(status)
                del self._workers[worker.pid]
                worker.conn.close()

    def _adoptable(self, native_id: str) -> str | None:
        """The worker (``pid:starttime``) of a job this dispatcher may follow without having started
        it: one on this host whose dispatcher is gone. None for the jobs of others."""
        if "/" not in native_id:  # pid:starttime:n, from before native ids named their dispatcher
            return native_id
        owner, _, worker = native_id.rpartition("/")
        return worker if running_here(owner) is False else None

    def _runs(self, native_id: str) -> bool | None:
        """Whether a job this dispatcher follows still runs; None for the jobs of other dispatchers."""
        if native_id.startswith(f"{self.owner}/"):
            return any(w.job == native_id for w in self._workers.values())
        worker = self._adoptable(native_id)
        return None if worker is None else alive(worker)

    def _state(self, native_id: str) -> NativeStatus | None:
        if native_id in self._ended:
            self._reported.add(native_id)
            return NativeStatus(NativeState.ENDED, self._ended[native_id])
        runs = self._runs(native_id)
        if runs is None:
            return None
        if runs:
            return NativeStatus(NativeState.RUNNING)
        # Ours: its result file says how it ended. Adopted: the worker ran under a dispatcher since gone.
        return NativeStatus(NativeState.ENDED, "" if native_id.startswith(f"{self.owner}/") else RESTARTED)

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        """The jobs this dispatcher follows; those of other dispatchers are left out."""
        self._collect()
        for settled in self._reported.difference(native_ids):  # reported, and no longer asked for
            self._reported.discard(settled)
            del self._ended[settled]
        states = {native_id: self._state(native_id) for native_id in native_ids}
        return {native_id: state for native_id, state in states.items() if state is not None}

    def cancel(self, native_id: str) -> None:
        if not self._runs(native_id):
            return
        pid = worker_pid(native_id)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Idle workers exit at once; busy ones finish their job (its result file is there for the next
        dispatcher), then exit too."""
        for worker in list(self._workers.values()):
            worker.conn.close()
        self._workers.clear()
