"""Benchmark of the DRMAA executor on the single-node Grid Engine of scripts/clusters.sh.

    .venv/bin/python bench/bench_drmaa.py [--submits 50] [--jobs 200] [--held 200] [--latency-runs 5]

1. Submission overhead: our ``DrmaaExecutor.submit()`` against a bare DRMAA ``runJob`` of an equivalent
   template, interleaved, N each. Jobs are submitted on hold (``-h``) and deleted unrun, so the
   figures are the submission alone. Target: ours <= 1.3x bare.
2. One poll of ``--held`` jobs in flight (submitted on hold): ``poll_many`` (one ``qstat -xml`` for all)
   against what DRMAA alone offers, one ``jobStatus`` per job; queries counted by the executor.
3. Throughput: ``--jobs`` asynchronous ``sleep`` jobs (delay=0) through a real ``hpc-wps serve`` in
   drmaa mode; all must succeed. The dispatcher's DEBUG lines give every poll's queries against the
   jobs in flight, and Grid Engine's commands reach the server through logging wrappers first on its
   PATH, which count the processes it really ran. Target: a constant number of queries per poll.
4. Latency: one ``sleep`` job through the service (Execute -> ProcessSucceeded seen by a client polling
   every 50 ms) against a bare ``runJob`` + ``wait`` of ``/bin/true``.

Prints a table and writes every figure as JSON to bench/results/drmaa-<time>.json. Needs Grid Engine up
(``scripts/clusters.sh start``); the process restarts itself once with the LD_PRELOAD libdrmaa needs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from command_log import read_calls, write_wrappers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
CLUSTERS = ROOT / "scripts" / "clusters.sh"
WPS10 = "http://www.opengis.net/wps/1.0.0"
POLL_LINE = re.compile(r"drmaa poll: (\d+) jobs, (\d+) queries \(([^)]*)\), (\d+) reaps in ([\d.]+) ms")
# Grid Engine's commands the service may run: each reaches it through a wrapper that logs the call.
COMMANDS = ("qstat", "qacct", "qdel")


def cluster_env() -> dict[str, str]:
    status = subprocess.run(["bash", str(CLUSTERS), "status"], capture_output=True, text=True, timeout=60)
    if "sge: up" not in status.stdout:
        sys.exit(f"Grid Engine is not up ({status.stdout.strip()}): run scripts/clusters.sh start")
    exported = subprocess.run(["bash", str(CLUSTERS), "env"], capture_output=True, text=True, timeout=30, check=True)
    return dict(re.findall(r"^export (\w+)=(.*)$", exported.stdout, re.MULTILINE))


def ensure_preloaded(env: dict[str, str]) -> None:
    """libdrmaa's libjemalloc must be loaded at process start: re-execute once with LD_PRELOAD."""
    preload = env["HPC_WPS_DRMAA_PRELOAD"]
    if preload in os.environ.get("LD_PRELOAD", "").split(":"):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env, "LD_PRELOAD": preload})


# -- 1. submission overhead ------------------------------------------------------------------------------


def bench_submit(env: dict[str, str], n: int, tmp: Path) -> dict:
    import drmaa

    from app.settings import load_settings
    from scheduler.executors.base import JobSpec
    from scheduler.executors.batch.drmaa import DrmaaExecutor, native_specification
    from scheduler.resources import Resources

    settings = load_settings(environ={}).replace("scheduler", system="drmaa", drmaa_library=env["DRMAA_LIBRARY_PATH"])
    executor = DrmaaExecutor(settings.scheduler, tmp)
    session = executor.session()  # opened before timing: the one session both use
    resources = Resources(1, 1024**3, 600, "", "-h")  # held: never runs
    native = native_specification(resources)
    python = executor.python

    def bare_template(job_dir: Path, name: str):  # the same attributes submit() sets
        template = session.createJobTemplate()
        template.remoteCommand = python[0]
        template.args = [*python[1:], "-m", "app.cli", "run-job", str(job_dir)]
        template.jobName = name
        template.workingDirectory = str(job_dir)
        template.outputPath = f":{job_dir / 'stdout'}"
        template.errorPath = f":{job_dir / 'stderr'}"
        template.joinFiles = False
        template.jobEnvironment = executor.environment
        template.nativeSpecification = native
        return template

    prepared = bare_template(tmp / "bare", "bench-bare")
    (tmp / "bare").mkdir()
    ours, bare_run, bare_full, ids = [], [], [], []
    for i in range(n):
        job_dir = tmp / f"job-{i}"
        job_dir.mkdir()
        steps = ["ours", "bare", "full"] if i % 2 == 0 else ["full", "bare", "ours"]
        for step in steps:
            start = time.perf_counter()
            if step == "ours":
                ids.append(executor.submit(JobSpec(f"bench-{i}", "sleep", job_dir, {}, resources)))
                ours.append(time.perf_counter() - start)
            elif step == "bare":
                ids.append(session.runJob(prepared))
                bare_run.append(time.perf_counter() - start)
            else:
                template = bare_template(job_dir, f"bench-full-{i}")
                ids.append(session.runJob(template))
                session.deleteJobTemplate(template)
                bare_full.append(time.perf_counter() - start)
    session.deleteJobTemplate(prepared)
    for native_id in ids:
        with contextlib.suppress(drmaa.errors.DrmaaException):  # already gone
            session.control(native_id, drmaa.JobControlAction.TERMINATE)
    executor.close()

    def ms(values: list[float]) -> dict:
        return {
            "median_ms": statistics.median(values) * 1000,
            "mean_ms": statistics.fmean(values) * 1000,
            "p90_ms": sorted(values)[int(len(values) * 0.9)] * 1000,
        }

    result = {"n": n, "ours": ms(ours), "bare_runjob": ms(bare_run), "bare_template_and_runjob": ms(bare_full)}
    result["ratio_vs_runjob"] = result["ours"]["median_ms"] / result["bare_runjob"]["median_ms"]
    result["ratio_vs_template_and_runjob"] = (
        result["ours"]["median_ms"] / result["bare_template_and_runjob"]["median_ms"]
    )
    return result


# -- 2. one poll of many jobs ----------------------------------------------------------------------------


def bench_poll(env: dict[str, str], n: int, tmp: Path, rounds: int = 5) -> dict:
    """``n`` held jobs in flight: the executor's poll (one listing) against one jobStatus per job."""
    import drmaa

    from app.settings import load_settings
    from scheduler.executors.base import JobSpec, NativeState
    from scheduler.executors.batch.drmaa import DrmaaExecutor
    from scheduler.resources import Resources

    settings = load_settings(environ={}).replace("scheduler", system="drmaa", drmaa_library=env["DRMAA_LIBRARY_PATH"])
    executor = DrmaaExecutor(settings.scheduler, tmp)
    session = executor.session()
    held = Resources(1, 1024**3, 600, "", "-h")
    ids = []
    try:
        for i in range(n):
            job_dir = tmp / f"held-{i}"
            job_dir.mkdir()
            ids.append(executor.submit(JobSpec(f"held-{i}", "sleep", job_dir, {}, held)))
        ours, bare, queries, calls = [], [], set(), []
        for _ in range(rounds):
            start = time.perf_counter()
            statuses = executor.poll_many(ids)
            ours.append(time.perf_counter() - start)
            assert len(statuses) == n and all(s.state is NativeState.QUEUED for s in statuses.values()), statuses
            queries.add(executor.queries)
            calls.append(dict(executor.last_poll))
            start = time.perf_counter()
            states = [session.jobStatus(native_id) for native_id in ids]
            bare.append(time.perf_counter() - start)
            assert set(states) == {drmaa.JobState.USER_ON_HOLD}, set(states)
    finally:
        for native_id in ids:
            with contextlib.suppress(drmaa.errors.DrmaaException):
                session.control(native_id, drmaa.JobControlAction.TERMINATE)
        executor.close()
    return {
        "jobs": n,
        "rounds": rounds,
        "ours_queries_per_poll": sorted(queries),
        "ours_calls_per_poll": calls[0],
        "ours_median_ms": statistics.median(ours) * 1000,
        "per_job_jobstatus_queries": n,
        "per_job_jobstatus_median_ms": statistics.median(bare) * 1000,
    }


# -- 3. a real server ------------------------------------------------------------------------------------


class Service:
    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/wps"
        self.tmp = tmp
        self.log = tmp / "server.log"
        config = tmp / "hpc-wps.cfg"
        config.write_text(
            f"[server]\nport = {self.port}\nworkdir = {tmp / 'var'}\nworkers = 2\n"
            "[processing]\nmode = scheduler\n"
            "[scheduler]\nsystem = drmaa\npoll_interval = 0.5\nwalltime = 120\n"
            f"drmaa_library = {env['DRMAA_LIBRARY_PATH']}\ndrmaa_preload = {env['HPC_WPS_DRMAA_PRELOAD']}\n"
            "[logging]\nlevel = DEBUG\n",
            encoding="utf-8",
        )
        self.calls_log = write_wrappers(tmp / "tools", COMMANDS)
        child_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HPC_WPS_CONFIG")}
        child_env["PATH"] = f"{tmp / 'tools'}:{child_env['PATH']}"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "--config", str(config), "serve"],
                cwd=ROOT,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                self.get("service=WPS&request=GetCapabilities")
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server did not answer:\n{self.log.read_text()[-3000:]}")

    def get(self, query: str, url: str | None = None) -> str:
        with urllib.request.urlopen(url or f"{self.url}?{query}", timeout=30) as response:
            return response.read().decode()

    def submit_sleep(self) -> str:
        text = self.get(
            "service=WPS&version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true&status=true"
            "&DataInputs=delay=0"
        )
        return re.search(r'statusLocation="([^"]+)"', text).group(1)

    def state(self, location: str) -> str:
        text = self.get("", location)
        match = re.search(r"<(?:\w+:)?(Process(?:Accepted|Started|Paused|Succeeded|Failed))\b", text)
        return match.group(1) if match else "unknown"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def bench_throughput(service: Service, jobs: int) -> dict:
    start_line = len(service.log.read_text(errors="replace").splitlines())
    since = time.time()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        locations = list(pool.map(lambda _: service.submit_sleep(), range(jobs)))
    submitted = time.monotonic() - started
    final: dict[str, str] = {}
    deadline = time.monotonic() + 60 + jobs * 3
    while len(final) < jobs and time.monotonic() < deadline:
        pending = [loc for loc in locations if loc not in final]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for location, state in zip(pending, pool.map(service.state, pending), strict=True):
                if state in ("ProcessSucceeded", "ProcessFailed"):
                    final[location] = state
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    # (jobs in flight, queries, "qstat 1, ...", reaps, milliseconds) of every poll
    polls = [
        (int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(4)), float(m.group(5)))
        for line in service.log.read_text(errors="replace").splitlines()[start_line:]
        if (m := POLL_LINE.search(line))
    ]
    buckets: dict[str, list[tuple]] = {}
    step = max(1, jobs // 4)
    for poll in polls:
        low = (poll[0] - 1) // step * step + 1
        buckets.setdefault(f"{low}-{low + step - 1}", []).append(poll)
    by_load = {
        name: {
            "polls": len(rows),
            "jobs_mean": statistics.fmean(r[0] for r in rows),
            "queries_mean": statistics.fmean(r[1] for r in rows),
            "queries_max": max(r[1] for r in rows),
            "reaps_mean": statistics.fmean(r[3] for r in rows),
            "poll_ms_mean": statistics.fmean(r[4] for r in rows),
            "poll_ms_max": max(r[4] for r in rows),
        }
        for name, rows in sorted(buckets.items(), key=lambda kv: int(kv[0].split("-")[0]))
    }
    commands: dict[str, int] = {}
    for _when, name, _args in read_calls(service.calls_log, since):
        commands[name] = commands.get(name, 0) + 1
    return {
        "jobs": jobs,
        "succeeded": sum(1 for s in final.values() if s == "ProcessSucceeded"),
        "failed": sum(1 for s in final.values() if s == "ProcessFailed"),
        "unfinished": jobs - len(final),
        "submit_seconds": submitted,
        "total_seconds": elapsed,
        "jobs_per_second": len(final) / elapsed,
        "polls": len(polls),
        "max_jobs_in_flight": max((p[0] for p in polls), default=0),
        "max_queries_per_poll": max((p[1] for p in polls), default=0),
        "query_kinds": sorted({kind for p in polls for kind in p[2].split(", ") if kind}),
        "reaps": sum(p[3] for p in polls),
        "commands_seen_by_wrappers": commands,
        "by_jobs_in_flight": by_load,
    }


# -- 4. latency ------------------------------------------------------------------------------------------


def bench_latency(service: Service, env: dict[str, str], runs: int) -> dict:
    import drmaa

    through_service = []
    for _ in range(runs):
        start = time.monotonic()
        location = service.submit_sleep()
        while service.state(location) not in ("ProcessSucceeded", "ProcessFailed"):
            time.sleep(0.05)
        through_service.append(time.monotonic() - start)
    bare = []
    session = drmaa.Session()
    session.initialize()
    try:
        for _ in range(runs):
            start = time.monotonic()
            template = session.createJobTemplate()
            template.remoteCommand = "/bin/true"
            template.workingDirectory = "/tmp"
            template.outputPath = ":/dev/null"
            template.errorPath = ":/dev/null"
            native_id = session.runJob(template)
            session.deleteJobTemplate(template)
            session.wait(native_id, drmaa.Session.TIMEOUT_WAIT_FOREVER)
            bare.append(time.monotonic() - start)
    finally:
        session.exit()
    return {
        "runs": runs,
        "service_seconds": through_service,
        "bare_seconds": bare,
        "service_median": statistics.median(through_service),
        "bare_median": statistics.median(bare),
        "difference_median": statistics.median(through_service) - statistics.median(bare),
    }


# -- the report ------------------------------------------------------------------------------------------


def table(result: dict) -> str:
    s, p, t, lat = result["submit"], result["poll"], result["throughput"], result["latency"]
    rows = [
        ("submission, ours (median)", f"{s['ours']['median_ms']:.2f} ms", ""),
        ("submission, bare runJob (median)", f"{s['bare_runjob']['median_ms']:.2f} ms", ""),
        ("submission, bare template + runJob", f"{s['bare_template_and_runjob']['median_ms']:.2f} ms", ""),
        ("ratio ours / bare runJob", f"{s['ratio_vs_runjob']:.2f}x", "<= 1.3x"),
        ("ratio ours / bare template + runJob", f"{s['ratio_vs_template_and_runjob']:.2f}x", "<= 1.3x"),
        (
            f"one poll of {p['jobs']} held jobs, ours",
            f"{'/'.join(map(str, p['ours_queries_per_poll']))} queries, {p['ours_median_ms']:.1f} ms",
            f"median of {p['rounds']}",
        ),
        (
            f"  one jobStatus per job ({p['jobs']})",
            f"{p['per_job_jobstatus_queries']} queries, {p['per_job_jobstatus_median_ms']:.1f} ms",
            "DRMAA alone",
        ),
        (f"{t['jobs']} sleep jobs: succeeded", f"{t['succeeded']} ({t['failed']} failed)", "all"),
        ("  wall time / jobs per second", f"{t['total_seconds']:.1f} s / {t['jobs_per_second']:.2f}", ""),
        (
            "  most jobs in one poll / most queries",
            f"{t['max_jobs_in_flight']} / {t['max_queries_per_poll']}",
            f"constant (1); kinds: {', '.join(t['query_kinds'])}",
        ),
        (
            "  polls / processes seen by the wrappers",
            f"{t['polls']} / {t['commands_seen_by_wrappers']}",
            f"{t['reaps']} reaps (local)",
        ),
    ]
    for name, b in t["by_jobs_in_flight"].items():
        rows.append(
            (
                f"  poll with {name} jobs in flight",
                f"{b['queries_mean']:.2f} queries (max {b['queries_max']}), {b['poll_ms_mean']:.1f} ms",
                f"{b['polls']} polls, {b['reaps_mean']:.1f} reaps",
            )
        )
    rows += [
        ("latency, sleep 0 through the service", f"{lat['service_median']:.2f} s", "median"),
        ("latency, bare runJob + wait /bin/true", f"{lat['bare_median']:.2f} s", "median"),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>{value_width}}  {c}" for a, b, c in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--held", type=int, default=200)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args()
    env = cluster_env()
    ensure_preloaded(env)
    os.environ.update(env)
    tmp = Path(tempfile.mkdtemp(prefix="bench-drmaa-"))
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_start": os.getloadavg()}
    try:
        print(f"1. submission overhead, {args.submits} each ...", flush=True)
        (tmp / "submit").mkdir()
        result["submit"] = bench_submit(env, args.submits, tmp / "submit")
        print(f"2. one poll of {args.held} held jobs ...", flush=True)
        (tmp / "poll").mkdir()
        result["poll"] = bench_poll(env, args.held, tmp / "poll")
        (tmp / "service").mkdir()
        service = Service(env, tmp / "service")
        try:
            print(f"3. {args.jobs} jobs through the service ...", flush=True)
            result["throughput"] = bench_throughput(service, args.jobs)
            print(f"4. latency, {args.latency_runs} runs each ...", flush=True)
            result["latency"] = bench_latency(service, env, args.latency_runs)
        finally:
            service.stop()
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    result["load_end"] = os.getloadavg()
    result["drms"] = "SGE 8.1.9, single node, 2 slots, schedule_interval 1 s"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"drmaa-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(table(result))
    print(f"JSON: {out}")
    ok = (
        result["submit"]["ratio_vs_runjob"] <= 1.3
        and result["throughput"]["succeeded"] == args.jobs
        and result["throughput"]["max_queries_per_poll"] <= 1
        and result["poll"]["ours_queries_per_poll"] == [1]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
