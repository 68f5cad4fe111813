"""The local pool's workers, driven directly: reuse, retirement, crashes, Dismiss and a dispatcher that goes away.

Real forked workers run a small runner whose behaviour each job's request picks; what a job did is read
back from files it writes into its job directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scheduler.executors.base import JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.local import RESTARTED, LocalExecutor
from scheduler.pids import alive, process_key, start_time
from tests.conftest import wait_for


def runner(spec: JobSpec) -> None:
    spec.job_dir.mkdir(parents=True, exist_ok=True)
    (spec.job_dir / "pid").write_text(str(os.getpid()))
    action = spec.request.get("action")
    if action == "thread":
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    elif action == "exit":
        os._exit(3)
    elif action == "system-exit":
        raise SystemExit(4)
    elif action == "sleep":
        time.sleep(spec.request["seconds"])
    elif action == "grandchild":
        child = subprocess.Popen(["sleep", "60"])
        (spec.job_dir / "grandchild").write_text(str(child.pid))
        child.wait()
    (spec.job_dir / "done").write_text("yes")


@pytest.fixture
def pool():  # type: ignore[no-untyped-def]
    executors: list[LocalExecutor] = []

    def make(slots: int = 1, max_jobs: int = 100, dispatcher: str | None = None) -> LocalExecutor:
        executors.append(LocalExecutor(slots, runner, lambda: None, max_jobs, dispatcher))
        return executors[-1]

    yield make
    for executor in executors:
        for worker in list(executor._workers.values()):
            if worker.job:
                executor.cancel(worker.job)
        executor.close()


def run(executor: LocalExecutor, job_dir: Path, **request: object) -> tuple[str, NativeStatus]:
    """Submit one job and wait for its end; returns its native id and final status."""
    native_id = executor.submit(JobSpec(job_dir.name, "test", job_dir, dict(request)))
    status = wait_for(lambda: (s := executor.poll_many([native_id])[native_id]).state is NativeState.ENDED and s)
    return native_id, status


def pid_of(job_dir: Path) -> int:
    return int((job_dir / "pid").read_text())


def test_a_worker_runs_job_after_job(pool, tmp_path):
    executor = pool()
    ended = [run(executor, tmp_path / f"job{i}") for i in range(3)]
    assert [status.reason for _, status in ended] == ["", "", ""]
    assert len({pid_of(tmp_path / f"job{i}") for i in range(3)}) == 1
    assert pid_of(tmp_path / "job0") != os.getpid()
    keys = {native_id.rsplit(":", 1)[0] for native_id, _ in ended}
    assert len(keys) == 1 and len({native_id for native_id, _ in ended}) == 3


def test_a_worker_is_retired_after_max_jobs(pool, tmp_path):
    executor = pool(max_jobs=2)
    for i in range(3):
        run(executor, tmp_path / f"job{i}")
    pids = [pid_of(tmp_path / f"job{i}") for i in range(3)]
    assert pids[0] == pids[1] != pids[2]
    # capacity() reaps the retired worker, so it leaves no zombie behind
    wait_for(lambda: executor.capacity() == 1 and not os.path.exists(f"/proc/{pids[0]}"))


def test_a_job_leaving_a_thread_behind_gets_the_next_job_a_fresh_worker(pool, tmp_path):
    executor = pool()
    run(executor, tmp_path / "a", action="thread")
    run(executor, tmp_path / "b")
    assert pid_of(tmp_path / "a") != pid_of(tmp_path / "b")


@pytest.mark.parametrize(
    ("action", "reason"), [("exit", "exited with code 3"), ("system-exit", "raised SystemExit(4)")]
)
def test_a_worker_that_dies_or_exits_is_reported_and_replaced(pool, tmp_path, action, reason):
    executor = pool()
    native_id, status = run(executor, tmp_path / "crash", action=action)
    assert status.reason == reason
    # a poll whose settling failed asks again, and hears the same reason
    assert executor.poll_many([native_id])[native_id] == status
    assert not (tmp_path / "crash" / "done").exists()
    _, status = run(executor, tmp_path / "after")
    assert status.reason == "" and (tmp_path / "after" / "done").exists()
    assert pid_of(tmp_path / "after") != pid_of(tmp_path / "crash")


def test_cancel_kills_the_job_and_what_it_started(pool, tmp_path):
    executor = pool()
    job_dir = tmp_path / "long"
    native_id = executor.submit(JobSpec("long", "test", job_dir, {"action": "grandchild"}))
    grandchild = int(wait_for(lambda: (job_dir / "grandchild").exists() and (job_dir / "grandchild").read_text()))
    assert executor.poll_many([native_id])[native_id].state is NativeState.RUNNING
    executor.cancel(native_id)
    status = wait_for(lambda: (s := executor.poll_many([native_id])[native_id]).state is NativeState.ENDED and s)
    assert status.reason == "killed by signal SIGKILL"
    wait_for(lambda: start_time(grandchild) is None)  # gone, or a zombie waiting for init
    _, status = run(executor, tmp_path / "after")
    assert status.reason == ""


def test_slots_bound_the_jobs_running_at_once(pool, tmp_path):
    executor = pool(slots=2)
    sleep = {"action": "sleep", "seconds": 1}
    ids = [executor.submit(JobSpec(f"j{i}", "test", tmp_path / f"j{i}", sleep)) for i in range(2)]
    assert executor.capacity() == 0
    with pytest.raises(SubmitError, match="all local slots are busy"):
        executor.submit(JobSpec("j3", "test", tmp_path / "j3", {}))
    wait_for(lambda: all(s.state is NativeState.ENDED for s in executor.poll_many(ids).values()))
    assert executor.capacity() == 2


def test_a_busy_worker_outlives_its_dispatcher_and_the_next_one_follows_it(pool, tmp_path):
    """close() is what a stopping dispatcher does: the running job still finishes and leaves its files; a
    new executor (the restarted dispatcher) sees it running, then ended without an exit status of its own."""
    first = pool(slots=2, dispatcher=f"{socket.gethostname()}/1:0")  # pid 1 started at another time: gone
    job_dir = tmp_path / "survivor"
    native_id = first.submit(JobSpec("survivor", "test", job_dir, {"action": "sleep", "seconds": 1.5}))
    wait_for(lambda: (job_dir / "pid").exists())
    first.close()
    second = pool()
    assert second.poll_many([native_id])[native_id].state is NativeState.RUNNING
    status = wait_for(lambda: (s := second.poll_many([native_id])[native_id]).state is NativeState.ENDED and s)
    assert status.reason == RESTARTED
    assert (job_dir / "done").exists()
    wait_for(lambda: not alive(native_id))


def test_jobs_of_other_dispatchers_are_left_to_them(pool, tmp_path):
    """Another host's job, or one of a live dispatcher on this host, is neither followed nor cancelled."""
    ours = pool()
    theirs = pool(dispatcher=f"{socket.gethostname()}/{process_key(os.getppid())}")  # a live other dispatcher
    job_dir = tmp_path / "theirs"
    native_id = theirs.submit(JobSpec("theirs", "test", job_dir, {"action": "sleep", "seconds": 1}))
    elsewhere = f"another-host/{process_key(os.getpid())}/1:1:1"
    assert ours.poll_many([native_id, elsewhere]) == {}
    ours.cancel(native_id)
    status = wait_for(lambda: (s := theirs.poll_many([native_id])[native_id]).state is NativeState.ENDED and s)
    assert status.reason == "" and (job_dir / "done").exists()
