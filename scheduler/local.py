"""The local pool: each job runs in a child forked from the dispatcher, at most ``slots`` at once.

Forking from a process that has already imported every process module starts a job in a few
milliseconds, and a child of its own means a crash or a Dismiss (SIGKILL to its process group) never
touches the dispatcher. The native id is ``pid:starttime``, so a dispatcher restarted while a child
still runs can find it again without mistaking a recycled pid for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence

from scheduler.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError

log = logging.getLogger(__name__)

Runner = Callable[[JobSpec], int]


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # a zombie has ended; only its exit status is left
        return None
    return fields[19]


def describe_wait_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"killed by signal {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class LocalExecutor(Executor):
    name = "local"
    starts_now = True

    def __init__(self, slots: int, runner: Runner) -> None:
        self.slots = slots
        self.runner = runner
        self._children: dict[int, str] = {}  # pid -> native id, for the children this process forked
        self._ended: dict[str, str] = {}  # native id -> why it ended, until polled

    def capacity(self) -> int:
        return self.slots - len(self._children)

    def submit(self, spec: JobSpec) -> str:
        if self.capacity() <= 0:
            raise SubmitError("all local slots are busy")
        pid = os.fork()
        if pid == 0:  # the child: never return into the dispatcher's loop
            code = 1
            try:
                os.setpgid(0, 0)
                signal.set_wakeup_fd(-1)  # the dispatcher's, not the job's
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                code = self.runner(spec)
            except BaseException:
                log.exception("job %s: the local runner failed", spec.job_id)
            finally:
                os._exit(code)
        with contextlib.suppress(OSError):  # also set in the parent, so a cancel right after the fork finds the group
            os.setpgid(pid, pid)
        start = _start_time(pid) or "0"
        native_id = f"{pid}:{start}"
        self._children[pid] = native_id
        return native_id

    def _reap(self) -> None:
        for pid, native_id in list(self._children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                del self._children[pid]
                self._ended[native_id] = "" if status == 0 else describe_wait_status(status)

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        self._reap()
        statuses = {}
        for native_id in native_ids:
            if native_id in self._ended:
                statuses[native_id] = NativeStatus(NativeState.ENDED, self._ended.pop(native_id))
                continue
            pid, _, start = native_id.partition(":")
            if int(pid) in self._children or _start_time(int(pid)) == start:
                statuses[native_id] = NativeStatus(NativeState.RUNNING)
            else:  # not our child and gone: it ran under a dispatcher that has since restarted
                statuses[native_id] = NativeStatus(NativeState.ENDED, "interrupted by a restart of the service")
        return statuses

    def cancel(self, native_id: str) -> None:
        pid, _, start = native_id.partition(":")
        if int(pid) not in self._children and _start_time(int(pid)) != start:
            return
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
