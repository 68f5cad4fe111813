#!/usr/bin/env python3
"""How fast the dispatcher hands accepted jobs over to Slurm and Grid Engine, against a bare submit loop.

    .venv/bin/python bench/handover.py [--jobs 200] [--systems slurm,ssh,gridengine,qsub,qsub-ssh]

Hand-over only, apart from completion: every job is submitted held (Slurm ``--hold``, Grid Engine
``-h``), so nothing runs and the single-node cluster's start rate (about 2 jobs every 3 s on Slurm)
does not enter the figures; all of them are cancelled at the end, by id (other people's jobs on the
shared cluster are left alone). In one run, for each system:

- bare: a shell loop of N plain submissions of a trivial job (``sbatch --parsable --hold --wrap true``,
  ``qsub -terse -h -b y /bin/true``), one process per submission as a user's script would;
- per job: the dispatcher's hand-over of N accepted jobs with job arrays switched off (one sbatch, or
  one DRMAA runJob, per job: the hand-over before job arrays);
- arrays: the dispatcher's hand-over as it is (one ``sbatch --array`` / one DRMAA ``runBulkJobs`` /
  one ``qsub -t`` per dispatcher cycle).

A hand-over is timed from the first claim to every job recorded in the job table with its native id:
the jobs are accepted (Execute through the WSGI app in this process, SQLite job table) before the
clock starts, then a real Dispatcher runs its submit step until all are recorded. ``gridengine`` is
Grid Engine through DRMAA, ``qsub`` through its command-line tools (``system = gridengine``). ``ssh``
and ``qsub-ssh`` are Slurm and Grid Engine's tools through ``[scheduler] remote`` on the test sshd
(scripts/sshd.sh, shared job directories), where the per-job overhead is compared with the same
system run locally on job directories in the same shared directory (``..., shared dir``).
Prints a table and the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_drmaa import ROOT, cluster_env, ensure_preloaded

EXECUTE = (
    '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
    'service="WPS" version="2.0.0" mode="async" response="document"><ows:Identifier>sleep</ows:Identifier>'
    '<wps:Input id="delay"><wps:Data>0</wps:Data></wps:Input></wps:Execute>'
)
SSHD = ROOT / "scripts" / "sshd.sh"
TIMEOUT = 600.0  # seconds a hand-over may take before the run gives up
SLURM_BARE = ["sbatch", "--parsable", "--hold", "-o", "/dev/null", "--wrap", "true"]
GE_BARE = ["qsub", "-terse", "-h", "-b", "y", "-o", "/dev/null", "-e", "/dev/null", "/bin/true"]


def bare_loop(argv: list[str], n: int) -> tuple[float, list[str]]:
    """N submissions from one shell loop; seconds taken and the ids printed."""
    script = f"for i in $(seq {n}); do {shlex.join(argv)} || exit 1; done"
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return time.perf_counter() - started, [line.split(";")[0] for line in done.stdout.split()]


def handover(environ: dict[str, str], n: int, arrays: bool) -> tuple[float, list[str], dict[str, int]]:
    """Seconds from the first claim to N jobs recorded with their native ids; the ids; the requests
    the executor made."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from app import create_app
    from app.settings import load_settings
    from migrations import upgrade
    from scheduler.db import make_engine
    from scheduler.dispatcher import Dispatcher
    from scheduler.executors.batch.base import BatchExecutor
    from scheduler.models import JOBS

    settings = load_settings(environ=environ)
    upgrade(settings.database_url)
    client = create_app(settings).test_client()
    for _ in range(n):
        response = client.post("/wps", data=EXECUTE, content_type="text/xml")
        assert response.status_code in (200, 201), response.data[:300]
    engine = make_engine(settings.database_url)
    dispatcher = Dispatcher(settings.jobs, engine, client.application.extensions["hpc_wps"].registry)
    executor = dispatcher.executors[settings.jobs.scheduler.system]
    assert isinstance(executor, BatchExecutor)
    if not arrays:
        executor.array_key = lambda spec: None  # type: ignore[method-assign]
    # A dispatcher that runs has its SSH master connection open already: opened before the clock starts.
    executor.runner.run(["true"], 60.0)
    recorded = select(JOBS.c.native_id).where(JOBS.c.native_id.is_not(None))
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < TIMEOUT:
            dispatcher.submit_waiting()
            with engine.connect() as conn:
                ids = list(conn.execute(recorded).scalars())
            if len(ids) >= n:
                break
        elapsed = time.perf_counter() - started
    finally:
        executor.close()
        engine.dispose()
    return elapsed, ids, dict(executor.calls)


def cancel(command: list[str], ids: list[str]) -> None:
    """Cancel these jobs (a task's array, once, for all its tasks), 500 ids per command."""
    unique = list(dict.fromkeys(native_id.split("_")[0].split(".")[0] for native_id in ids))
    for start in range(0, len(unique), 500):
        subprocess.run([*command, *unique[start : start + 500]], capture_output=True, timeout=120, check=False)


def measure(
    name: str, n: int, bare: list[str] | None, environ: Callable[[str], dict[str, str]], cancel_with: list[str]
) -> dict:
    """The bare loop (if any) and both hand-overs of one system, each on its own fresh job table."""
    figures: dict = {"system": name, "jobs": n}
    if bare:
        seconds, ids = bare_loop(bare, n)
        cancel(cancel_with, ids)
        figures["bare_jobs_per_s"] = round(n / seconds, 1)
    for label, arrays in (("per_job", False), ("arrays", True)):
        with tempfile.TemporaryDirectory(prefix="hpc-wps-handover-") as workdir:
            seconds, ids, calls = handover(environ(workdir), n, arrays)
            cancel(cancel_with, ids)
        if len(ids) < n:
            figures[f"{label}_error"] = f"only {len(ids)} of {n} recorded within {TIMEOUT:.0f} s"
        figures[f"{label}_jobs_per_s"] = round(len(ids) / seconds, 1)
        figures[f"{label}_ms_per_job"] = round(seconds * 1000 / max(1, len(ids)), 3)
        figures[f"{label}_calls"] = calls
    if bare:
        for label in ("per_job", "arrays"):
            figures[f"{label}_vs_bare"] = round(figures[f"{label}_jobs_per_s"] / figures["bare_jobs_per_s"], 2)
    return figures


def base_environ(workdir: str, n: int) -> dict[str, str]:
    return {
        "HPC_WPS_SERVER_WORKDIR": workdir,
        "HPC_WPS_PROCESSING_MODE": "scheduler",
        "HPC_WPS_PROCESSING_QUEUE_LENGTH": str(n + 1),
        "HPC_WPS_LOGGING_LEVEL": "WARNING",
    }


def sshd_env() -> dict[str, str]:
    status = subprocess.run(["bash", str(SSHD), "status"], capture_output=True, text=True, timeout=60)
    if status.returncode != 0:
        sys.exit(f"the test sshd is down ({status.stdout.strip()}): run scripts/sshd.sh start")
    printed = subprocess.run(["bash", str(SSHD), "env"], capture_output=True, text=True, timeout=30, check=True)
    return dict(line.split("=", 1) for line in printed.stdout.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--systems", default="slurm,ssh,gridengine,qsub,qsub-ssh")
    args = parser.parse_args()
    systems = args.systems.split(",")
    n = args.jobs
    if {"gridengine", "qsub", "qsub-ssh"} & set(systems):
        ge = cluster_env()
        ensure_preloaded(ge)  # re-executes this script once, with libdrmaa's LD_PRELOAD
    results = []

    def environ(workdir: str, system: str, native: str) -> dict[str, str]:
        return base_environ(workdir, n) | {"HPC_WPS_SCHEDULER_SYSTEM": system, "HPC_WPS_SCHEDULER_NATIVE": native}

    def here(name: str, bare: list[str], system: str, native: str, cancel_with: list[str], **extra: str) -> None:
        results.append(measure(name, n, bare, lambda w: environ(w, system, native) | extra, cancel_with))

    sshd = sshd_env() if {"ssh", "qsub-ssh"} & set(systems) else {}

    def over_ssh(local: str, system: str, native: str, cancel_with: list[str]) -> None:
        """``local`` on job directories in the directory both sides see, then the same over SSH: the
        remote figure is compared with that local one, not with job directories in /tmp (the shared
        directory's default ACL makes every file cost more there, which is not SSH's doing)."""

        def shared_environ(workdir: str) -> dict[str, str]:
            jobs_dir = Path(sshd["HPC_WPS_TEST_SSH_SHARED"]) / f"bench-{Path(workdir).name}"
            jobs_dir.mkdir()  # made with mkdir: the set-up's default ACL lets the login user in
            return environ(workdir, system, native) | {"HPC_WPS_SCHEDULER_WORKDIR": str(jobs_dir)}

        def ssh_environ(workdir: str) -> dict[str, str]:
            return shared_environ(workdir) | {
                "HPC_WPS_SCHEDULER_REMOTE": sshd["HPC_WPS_TEST_SSH_REMOTE"],
                "HPC_WPS_SCHEDULER_SSH_KEY": sshd["HPC_WPS_TEST_SSH_KEY"],
                "HPC_WPS_SCHEDULER_SSH_KNOWN_HOSTS": sshd["HPC_WPS_TEST_SSH_KNOWN_HOSTS"],
            }

        try:
            results.append(measure(f"{local}, shared dir", n, None, shared_environ, cancel_with))
            results.append(measure(f"{local} over ssh", n, None, ssh_environ, cancel_with))
        finally:
            for leftover in Path(sshd["HPC_WPS_TEST_SSH_SHARED"]).glob("bench-hpc-wps-handover-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    if "slurm" in systems:
        here("slurm", SLURM_BARE, "slurm", "--hold", ["scancel"])
    if "ssh" in systems:
        over_ssh("slurm", "slurm", "--hold", ["scancel"])
    if "gridengine" in systems:
        library = {"HPC_WPS_SCHEDULER_DRMAA_LIBRARY": ge["DRMAA_LIBRARY_PATH"]}
        here("gridengine", GE_BARE, "drmaa", "-h", ["qdel"], **library)
    if "qsub" in systems:
        here("qsub", GE_BARE, "gridengine", "-h", ["qdel"])
    if "qsub-ssh" in systems:
        over_ssh("qsub", "gridengine", "-h", ["qdel"])
    for local_name in ("slurm", "qsub"):
        local = next((r for r in results if r["system"] == f"{local_name}, shared dir"), None)
        remote = next((r for r in results if r["system"] == f"{local_name} over ssh"), None)
        if local and remote:
            for label in ("per_job", "arrays"):
                remote[f"{label}_overhead_vs_local"] = round(
                    remote[f"{label}_ms_per_job"] / local[f"{label}_ms_per_job"], 2
                )
    print(f"{'system':18} {'bare/s':>8} {'per-job/s':>10} {'arrays/s':>9} {'per-job:bare':>13} {'arrays:bare':>12}")
    for r in results:
        print(
            f"{r['system']:18} {r.get('bare_jobs_per_s', '-'):>8} {r['per_job_jobs_per_s']:>10} "
            f"{r['arrays_jobs_per_s']:>9} {r.get('per_job_vs_bare', '-'):>13} {r.get('arrays_vs_bare', '-'):>12}"
        )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
