"""Task arrays on a real Grid Engine through DRMAA (scripts/clusters.sh start): the jobs one dispatcher
cycle hands over go as one ``runBulkJobs`` (``qsub -t 1-N``), and each task ("NUMBER.TASK") is
followed, dismissed, deleted from outside and re-attached as a job is.

To hand several jobs over in one cycle, the server's ``qstat`` (the dispatcher's one listing per poll)
is a wrapper that waits while a gate file exists: the test closes the gate, waits until a poll is
held in it, submits its jobs, and opens the gate; the dispatcher's next submit step claims them all.
A blocker job keeps one job active so that polls run; it is dismissed once the jobs are handed over.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusters.test_drmaa import (
    NS,
    QUEUED,
    Server,
    config,
    failure_text,
    gone_from_grid_engine,
    qacct,
    record_id,
    wait_launched,
)
from tests.clusters.test_drmaa import grid_engine as grid_engine  # the fixture, re-used
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


class Gate:
    """A ``qstat`` first on the server's PATH that waits while ``closed`` exists, saying so in ``held``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.dir = directory
        self.closed = directory / "closed"
        self.held = directory / "held"
        real = shutil.which("qstat")
        assert real, "qstat is not installed"
        wrapper = directory / "qstat"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"while [ -e {shlex.quote(str(self.closed))} ]; do touch {shlex.quote(str(self.held))}; sleep 0.1; done\n"
            f'exec {shlex.quote(real)} "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(0o755)

    def one_cycle(self, server: Server, submissions: list[tuple[str, str]]) -> list[str]:
        """Submit these jobs while the dispatcher waits in a poll, so that one cycle hands them all over.
        A blocker job, handed over first, makes the polls run; it is dismissed after."""
        blocker = server.submit10("sleep", "delay=300")
        server.native_id(blocker)
        self.held.unlink(missing_ok=True)
        self.closed.touch()
        try:
            wait_for(self.held.exists, timeout=30, interval=0.1)
            job_ids = [server.submit10(identifier, inputs) for identifier, inputs in submissions]
        finally:
            self.closed.unlink()
        for job_id in job_ids:
            server.native_id(job_id)
        assert server.dismiss(blocker) == "Dismissed"
        return job_ids


@contextlib.contextmanager
def gated_server(base: Path, extra_config: str) -> Iterator[tuple[Server, Gate]]:
    """A server with this configuration whose qstat is a Gate; our jobs left on Grid Engine are deleted after."""
    gate = Gate(base / "tools")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{gate.dir}:{os.environ['PATH']}")
        server = Server(base / "server", extra_config)
        try:
            yield server, gate
        finally:
            server.stop()
            for line in subprocess.run(["qstat"], capture_output=True, text=True, timeout=30).stdout.splitlines():
                words = line.split()
                if words and words[0].isdigit() and "wps-" in line:
                    subprocess.run(["qdel", words[0]], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def gated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Gate]]:
    env = request.getfixturevalue("grid_engine")
    with gated_server(tmp_path_factory.mktemp("drmaa-arrays"), config(env)) as started:
        yield started


@pytest.fixture(scope="module")
def arrays(gated: tuple[Server, Gate]) -> dict[str, str]:
    server, gate = gated
    names = ("short", "hello", "dismissed", "deleted", "over", "within")
    job_ids = gate.one_cycle(
        server,
        [
            ("sleep", "delay=1"),
            ("say_hello", "name=arrays"),
            ("sleep", "delay=60"),
            ("sleep", "delay=60"),
            ("sleep", "delay=60;resources.walltime=5"),
            ("sleep", "delay=1;resources.walltime=5"),
        ],
    )
    return dict(zip(names, job_ids, strict=True))


def test_jobs_of_one_cycle_go_as_one_task_array_per_resources(gated, arrays):
    server, _gate = gated
    ids = {name: server.native_id(job_id) for name, job_id in arrays.items()}
    numbers = {name: native_id.partition(".") for name, native_id in ids.items()}
    first = [numbers[name] for name in ("short", "hello", "dismissed", "deleted")]
    assert len({number for number, _, _ in first}) == 1 and [task for _, _, task in first] == ["1", "2", "3", "4"]
    assert numbers["over"][0] == numbers["within"][0] != first[0][0]
    assert (numbers["over"][2], numbers["within"][2]) == ("1", "2")
    assert QUEUED.match(f"queued on Grid Engine as job {ids['short']}")
    server.wait10(arrays["short"], "ProcessSucceeded")
    server.wait10(arrays["hello"], "ProcessSucceeded")
    literal = "//wps2:LiteralValue/text()"
    assert server.result20(arrays["short"]).xpath(literal, namespaces=NS) == ["slept for 1.0 seconds"]
    assert server.result20(arrays["hello"]).xpath(literal, namespaces=NS) == ["Hello arrays"]
    for name in ("short", "hello"):  # each task ran once, in its own job directory, and exited 0
        (record,) = wait_for(lambda n=ids[name]: qacct("", n), timeout=20)
        assert record_id(record) == ids[name] and record["failed"] == "0"
        assert (server.job_dir(arrays[name]) / "stdout").exists()


def test_one_task_dismissed_while_the_others_go_on(gated, arrays):
    server, _gate = gated
    job_id = arrays["dismissed"]
    wait_launched(server, job_id)
    native_id = server.native_id(job_id)
    assert server.dismiss(job_id) == "Dismissed"
    wait_for(lambda: not server.row(job_id)["native_active"], timeout=30)
    wait_for(lambda: not server.job_dir(job_id).exists(), timeout=10)
    assert gone_from_grid_engine(native_id)
    assert server.state20(arrays["deleted"]) in ("Accepted", "Running")  # its array's next task goes on


def test_one_task_deleted_with_qdel_fails_with_the_reason(gated, arrays):
    server, _gate = gated
    job_id = arrays["deleted"]
    wait_launched(server, job_id)
    native_id = server.native_id(job_id)
    subprocess.run(["qdel", native_id], check=True, capture_output=True, timeout=30)
    failed = server.wait10(job_id, "ProcessFailed", timeout=30)
    assert failure_text(failed) == "the job's process was deleted on Grid Engine (qdel)"
    assert gone_from_grid_engine(native_id)


def test_a_task_over_its_walltime_fails_with_the_h_rt_reason(gated, arrays):
    server, _gate = gated
    server.wait10(arrays["within"], "ProcessSucceeded", timeout=90)
    failed = server.wait10(arrays["over"], "ProcessFailed", timeout=90)
    assert failure_text(failed) == "the job's process exceeded its wall-clock limit (h_rt) on Grid Engine"


def test_restart_reattaches_the_tasks_of_an_array(gated, arrays):
    server, gate = gated
    wait_for(lambda: server.state20(arrays["over"]) == "Failed", timeout=90)  # the node's slots are free
    job_ids = gate.one_cycle(server, [("sleep", "delay=6"), ("sleep", "delay=6")])
    native_ids = [server.native_id(job_id) for job_id in job_ids]
    assert len({native_id.partition(".")[0] for native_id in native_ids}) == 1
    wait_launched(server, job_ids[0])
    started = time.monotonic()
    server.restart()
    for job_id in job_ids:
        server.wait10(job_id, "ProcessSucceeded", timeout=max(1.0, 90 - (time.monotonic() - started)))
        wait_for(lambda j=job_id: not server.row(j)["native_active"], timeout=30)
    for native_id in native_ids:  # submitted once, ran once
        (record,) = wait_for(lambda n=native_id: qacct("", n), timeout=20)
        assert record_id(record) == native_id and record["failed"] == "0"
