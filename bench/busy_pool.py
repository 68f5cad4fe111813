"""Request latency while the local pool's jobs fill both cores, with [processing] worker_nice 0 and 10.

For each niceness, in ABBA order (0, 10, 10, 0), this starts hpc-wps (gunicorn with 2 workers, 2 local
slots), times WPS 2.0 GetStatus requests with the pool idle, then starts two ``cpu_burn`` jobs (one
busy core each, bench/cpu_burn.py), waits until both run, and times the same requests again before it
dismisses them. A job that fills the cores should not make the service slow to answer: the figure is
the p50/p99 under load next to idle. Rerun with ``.venv/bin/python bench/busy_pool.py [--requests N]``.
Standard library only, loopback only, every load bounded.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import load
import servers

from scheduler.executors.local import NATIVE_ID_FILE, worker_pid
from scheduler.pids import start_time

BURN = (
    "service=WPS&version=1.0.0&request=Execute&identifier=cpu_burn&storeExecuteResponse=true&status=true"
    "&DataInputs=seconds={}"
)
GETSTATUS = "service=WPS&version=2.0.0&request=GetStatus&jobId={}"
DISMISS = "service=WPS&version=2.0.0&request=Dismiss&jobId={}"


def _job_id(body):
    location = load.status_location(body)
    if not location:
        raise RuntimeError(f"no statusLocation in {body[:300]!r}")
    return load.job_id_from_location(location)


def _state(server, job_id):
    _status, body = load.http_get(server.url(GETSTATUS.format(job_id)))
    match = re.search(rb"<wps:Status>([^<]+)</wps:Status>", body)
    return match.group(1).decode() if match else body[:200].decode("utf-8", "replace")


def _wait(server, job_ids, state, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [_state(server, j) for j in job_ids]
        if all(s == state for s in states):
            return
        time.sleep(0.2)
    raise RuntimeError(f"jobs not {state} after {timeout:.0f} s: {states}")


def _dismiss(server, job_ids):
    """Dismiss the jobs and wait until their workers are gone: the server is stopped next, and a busy
    local worker would outlive it (by design: it finishes its job for the next dispatcher)."""
    jobs_dir = os.path.join(server.tmpdir, "work", "jobs")
    pids = []
    for job_id in job_ids:
        with open(os.path.join(jobs_dir, job_id, NATIVE_ID_FILE)) as native:
            pids.append(worker_pid(native.read().strip()))
        load.http_get(server.url(DISMISS.format(job_id)))
    deadline = time.monotonic() + 10
    while any(start_time(p) for p in pids) and time.monotonic() < deadline:  # None once gone or a zombie
        time.sleep(0.05)
    left = [p for p in pids if start_time(p)]
    for pid in left:
        os.kill(pid, 9)
    if left:
        raise RuntimeError(f"Dismiss did not stop the workers {left} within 10 s")


def measure(tmpdir, nice, requests, burn_s):
    server = servers.make_ours(
        tmpdir,
        name=f"ours-nice{nice}-{len(os.listdir(tmpdir))}",
        processing=f"worker_nice = {nice}\nprocesses = bench.cpu_burn:PROCESS\n",
    )
    server.start()
    try:
        server.wait_ready(90)
        # One finished job to ask about.
        _status, body = load.http_get(server.url(BURN.format(0)))
        probe = _job_id(body)
        _wait(server, [probe], "Succeeded")
        urls = [server.url(GETSTATUS.format(probe))]
        load.latency_run(urls, 200, expect=b"Succeeded")  # warm-up
        idle = load.latency_run(urls, requests, expect=b"Succeeded")
        burners = [_job_id(load.http_get(server.url(BURN.format(burn_s)))[1]) for _ in range(2)]
        _wait(server, burners, "Running")
        busy = load.latency_run(urls, requests, expect=b"Succeeded")
        still = [_state(server, j) for j in burners]
        _dismiss(server, burners)
        if still != ["Running", "Running"]:
            raise RuntimeError(f"the burning jobs ended before the measurement did: {still}")
        return {"nice": nice, "idle": _summary(idle), "busy": _summary(busy)}
    finally:
        server.stop()


def _summary(run):
    return {key: run[key] for key in ("requests", "bad", "p50_ms", "p99_ms", "max_ms")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="GetStatus requests per measurement")
    parser.add_argument("--burn", type=float, default=120.0, help="seconds each cpu_burn job may run")
    args = parser.parse_args(argv)
    tmpdir = tempfile.mkdtemp(prefix="hpc-wps-busy-")
    results = []
    try:
        for nice in (0, 10, 10, 0):
            result = measure(tmpdir, nice, args.requests, args.burn)
            results.append(result)
            idle, busy = result["idle"], result["busy"]
            print(
                f"worker_nice {nice:2d}: GetStatus idle p50 {idle['p50_ms']:.1f} / p99 {idle['p99_ms']:.1f} ms;"
                f" two cores busy p50 {busy['p50_ms']:.1f} / p99 {busy['p99_ms']:.1f} ms"
                f" ({busy['requests']} requests, {idle['bad'] + busy['bad']} bad)",
                flush=True,
            )
    finally:
        servers.stop_all()
        shutil.rmtree(tmpdir, ignore_errors=True)
    for nice in (0, 10):
        runs = [r for r in results if r["nice"] == nice]
        for key in ("idle", "busy"):
            p99 = sorted(r[key]["p99_ms"] for r in runs)
            print(f"worker_nice {nice:2d} {key}: p99 {' / '.join(f'{v:.1f}' for v in p99)} ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
