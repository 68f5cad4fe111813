"""Job arrays on a real Slurm (scripts/clusters.sh start): the jobs one dispatcher cycle hands over go
as one ``sbatch --array``, and each task is followed, dismissed, cancelled and re-attached as a job is.

The module's server is test_slurm's (job directories under a path with spaces, quotes, ``%j`` and
``$``; Slurm's commands through logging wrappers that can play an unreachable controller). To hand
several jobs over in one cycle, they are submitted while the controller "is down": the dispatcher
backs off, and claims them all at once when it is back. The jobs of one array ask for the same
resources; a job asking for another walltime goes in an array of its own in the same cycle.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.clusters.test_slurm import (
    JOB,
    POLL,
    WPS10,
    Service,
    cancel_jobs_under,
    dismiss20,
    document10,
    execute10,
    failure_text,
    slurm_job_dir,
    slurm_state,
    status20,
    wait10,
    wait_launched,
)
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm")]

NS = {"wps": WPS10}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("slurm-arrays"))
    service.start()
    try:
        yield service
    finally:
        service.server.stop()
        service.engine.dispose()
        cancel_jobs_under(service.jobs_dir)


def one_cycle(service: Service, submissions: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Submit jobs while Slurm answers as unreachable, then let the dispatcher claim them all in one
    cycle; the job ids, and the sbatch calls that handed them over."""
    service.tools.down.touch()
    try:
        job_ids = [execute10(service, identifier, inputs) for identifier, inputs in submissions]
        wait_for(lambda: "waiting for slurm" in (service.row(job_ids[-1])["message"] or ""), 30, POLL)
        before = len(service.tools.calls())
    finally:
        service.tools.down.unlink()
    for job_id in job_ids:
        service.native_id(job_id)
    return job_ids, [call for call in service.tools.calls()[before:] if call[0] == "sbatch"]


@pytest.fixture(scope="module")
def arrays(service: Service) -> dict[str, str]:
    """One cycle: four jobs with the default walltime (two short ones first, so that they run while the
    others wait for the node), and two asking for 60 s, one of which sleeps past it."""
    names = ("short", "hello", "dismissed", "cancelled", "over", "within")
    job_ids, sbatch = one_cycle(
        service,
        [
            ("sleep", "delay=1"),
            ("say_hello", "name=arrays"),
            ("sleep", "delay=300"),
            ("sleep", "delay=300"),
            ("sleep", "delay=300;resources.walltime=60"),
            ("sleep", "delay=1;resources.walltime=60"),
        ],
    )
    jobs = dict(zip(names, job_ids, strict=True))
    jobs["sbatch"] = " | ".join(" ".join(call) for call in sbatch)
    return jobs


def array_of(service: Service, job_id: str) -> tuple[str, str]:
    array, _, task = service.native_id(job_id).partition("_")
    return array, task


def test_jobs_of_one_cycle_go_as_one_array_per_resources(service, arrays):
    assert re.fullmatch(r"sbatch --parsable --array=0-3 \S.* \| sbatch --parsable --array=0-1 \S.*", arrays["sbatch"])
    tasks = [array_of(service, arrays[name]) for name in ("short", "hello", "dismissed", "cancelled")]
    assert len({array for array, _ in tasks}) == 1 and [task for _, task in tasks] == ["0", "1", "2", "3"]
    over, within = array_of(service, arrays["over"]), array_of(service, arrays["within"])
    assert over[0] == within[0] != tasks[0][0] and (over[1], within[1]) == ("0", "1")
    for name in ("short", "hello", "over"):  # Slurm runs each task in its own job directory
        assert slurm_job_dir(service.native_id(arrays[name])) == service.jobs_dir / arrays[name]
    wait10(service, arrays["short"], "ProcessSucceeded")
    wait10(service, arrays["hello"], "ProcessSucceeded")
    literal = "//wps:LiteralData/text()"
    assert document10(service, arrays["short"]).xpath(literal, namespaces=NS) == ["slept for 1.0 seconds"]
    assert document10(service, arrays["hello"]).xpath(literal, namespaces=NS) == ["Hello arrays"]
    native_id = service.native_id(arrays["short"])
    logs = sorted(p.name for p in (service.jobs_dir / arrays["short"]).glob("slurm-*"))
    assert logs == [f"slurm-{native_id}.err", f"slurm-{native_id}.out"]  # Slurm's logs, through the link


def test_one_task_dismissed_while_the_others_go_on(service, arrays):
    job_id = arrays["dismissed"]
    wait_launched(service, job_id)
    native_id = service.native_id(job_id)
    assert dismiss20(service, job_id) == "Dismissed"
    wait_for(lambda: slurm_state(native_id) == "CANCELLED", 30, POLL)
    wait_for(lambda: not (service.jobs_dir / job_id).exists(), 30, POLL)
    assert status20(service, job_id)[0] == "Dismissed"
    other = service.native_id(arrays["cancelled"])
    assert slurm_state(other) in ("PENDING", "RUNNING")  # its array's other task goes on
    assert status20(service, arrays["cancelled"])[0] in ("Accepted", "Running")


def test_one_task_cancelled_with_scancel_fails_with_the_reason(service, arrays):
    job_id = arrays["cancelled"]
    wait_launched(service, job_id)
    native_id = service.native_id(job_id)
    subprocess.run(["scancel", native_id], check=True, timeout=30)
    failed = wait10(service, job_id, "ProcessFailed", timeout=30)
    assert failure_text(failed) == "the job's process was cancelled on Slurm (scancel)"
    assert slurm_state(native_id) == "CANCELLED"


def test_restart_reattaches_the_tasks_of_an_array(service, arrays):
    job_ids, sbatch = one_cycle(service, [("sleep", "delay=8"), ("sleep", "delay=8")])
    assert len(sbatch) == 1 and "--array=0-1" in sbatch[0]
    native_ids = [service.native_id(job_id) for job_id in job_ids]
    wait_launched(service, job_ids[0])
    service.server.stop()  # SIGTERM: the dispatcher stops; the array's tasks do not
    assert slurm_state(native_ids[0]) == "RUNNING"
    service.start()
    for job_id in job_ids:
        wait10(service, job_id, "ProcessSucceeded", timeout=JOB)
        wait_for(lambda j=job_id: not service.row(j)["native_active"], JOB, POLL)
    for job_id, native_id in zip(job_ids, native_ids, strict=True):  # each task ran once, in its directory
        logs = [p.name for p in (service.jobs_dir / job_id).glob("slurm-*.out")]
        assert logs == [f"slurm-{native_id}.out"]
        assert slurm_state(native_id) == "COMPLETED"


def test_a_task_over_its_time_limit_fails_with_the_limit(service, arrays):
    """Last: Slurm ends the task about 80 s after it starts."""
    job_id = arrays["over"]
    started = time.monotonic()
    wait10(service, arrays["within"], "ProcessSucceeded", timeout=JOB * 2)
    failed = wait10(service, job_id, "ProcessFailed", timeout=max(1.0, 300 - (time.monotonic() - started)))
    assert failure_text(failed) == "the job's process exceeded its time limit of 0:01:00 on Slurm"
    assert slurm_state(service.native_id(job_id)) == "TIMEOUT"
