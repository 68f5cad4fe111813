#!/usr/bin/env python3
"""The native Slurm executor on the single-node Slurm of scripts/clusters.sh.

    .venv/bin/python bench/bench_slurm.py [--quick] [--keep-tmp]

(a) submission overhead: SlurmExecutor.submit() (script rendered and written, sbatch --parsable) vs a
    bare `sbatch --parsable` of the same script rendered beforehand, N of each, interleaved, jobs held
    (--hold) so that nothing runs, then all cancelled; target: median ratio <= 1.3.
(c) end-to-end latency of one `sleep delay=0` job through the service (Execute to ProcessSucceeded,
    statusLocation polled every 50 ms) vs a bare `sbatch --wrap true` job from submission to COMPLETED
    seen by polling squeue at the service's own poll interval; repeated, interleaved; the gap.
(b) 200 `sleep delay=0` jobs submitted at once through `hpc-wps serve` in scheduler mode: all must
    succeed, and the scheduler commands per poll cycle must not grow with the jobs in flight: one
    squeue, and one sacct when some jobs have left squeue (MinJobAge) before the dispatcher saw their
    end. Slurm's commands reach the server through wrappers first on its PATH that log each call, so
    the count is Slurm's own view of what the dispatcher ran, not the executor's word for it.

Prints a table and writes every figure as JSON to bench/results/ (git-ignored). Every job it starts
is cancelled and the server's process group killed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import servers
from command_log import read_calls, write_wrappers

sys.path.insert(0, servers.REPO_DIR)

from app.settings import load_settings
from scheduler.executors.base import JobSpec
from scheduler.executors.batch.slurm import SlurmExecutor
from scheduler.resources import Resources

RESULTS = Path(servers.BENCH_DIR) / "results"
SLURM_COMMANDS = ("sbatch", "squeue", "scancel", "sacct")
POLL_INTERVAL = 0.5  # the service's [scheduler] poll_interval, and the bare job's squeue interval
CLIENT_POLL = 0.05
SLEEP0 = (
    "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0"
    "&storeExecuteResponse=true&status=true"
)
FULL = {"submit_n": 50, "latency_runs": 10, "jobs": 200, "jobs_timeout_s": 900}
QUICK = {"submit_n": 15, "latency_runs": 3, "jobs": 40, "jobs_timeout_s": 300}

_SUBMITTED: list[str] = []  # every Slurm job id this run created: cancelled at the end


def slurm(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=check)


def cancel_all(tmp: Path | None = None) -> None:
    """Cancel every job this run submitted itself, and every job still queued or running whose
    directory lies under ``tmp`` (the service's)."""
    ids = list(dict.fromkeys(_SUBMITTED))
    if tmp is not None:
        listing = slurm("squeue", "-h", "-t", "pending,running", "-O", "JobID:|,WorkDir:|", check=False).stdout
        for line in listing.splitlines():
            native_id, _, workdir = line.removesuffix("|").partition("|")
            if workdir.startswith(str(tmp)):
                ids.append(native_id)
    for start in range(0, len(ids), 500):
        slurm("scancel", *ids[start : start + 500], check=False)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "min": ordered[0],
        "max": ordered[-1],
    }


# -- (a) submission overhead ------------------------------------------------------------------------


def bench_submit(tmp: Path, n: int) -> dict:
    settings = load_settings(environ={}).scheduler
    ours_dir, bare_dir = tmp / "submit-ours", tmp / "submit-bare"
    executor = SlurmExecutor(settings, ours_dir)
    resources = Resources(1, 1024**3, 600, "", "--hold")
    ours: list[float] = []
    bare: list[float] = []
    warm = 3
    for i in range(n + warm):
        job_id = str(uuid.uuid4())
        spec = JobSpec(job_id, "sleep", ours_dir / job_id, {}, resources)
        spec.job_dir.mkdir(parents=True)
        (spec.job_dir / "payload.dill").write_bytes(b"\0" * 2048)  # written by the dispatcher before submit
        equivalent = JobSpec(job_id, "sleep", bare_dir / job_id, {}, resources)
        equivalent.job_dir.mkdir(parents=True)
        script = equivalent.job_dir / "slurm.sh"
        script.write_text(executor.render_script(equivalent), encoding="utf-8")

        def run_ours(spec: JobSpec = spec) -> float:
            start = time.perf_counter()
            _SUBMITTED.append(executor.submit(spec))
            return time.perf_counter() - start

        def run_bare(script: Path = script) -> float:
            start = time.perf_counter()
            done = slurm("sbatch", "--parsable", str(script))
            elapsed = time.perf_counter() - start
            _SUBMITTED.append(done.stdout.strip())
            return elapsed

        first, second = (run_ours, run_bare) if i % 2 == 0 else (run_bare, run_ours)
        times = {first: first(), second: second()}
        if i >= warm:
            ours.append(times[run_ours] * 1000)
            bare.append(times[run_bare] * 1000)
    cancel_all()
    result = {"ours_ms": summary(ours), "bare_ms": summary(bare), "executor_queries": executor.queries}
    result["ratio_median"] = result["ours_ms"]["median"] / result["bare_ms"]["median"]
    result["ratio_mean"] = result["ours_ms"]["mean"] / result["bare_ms"]["mean"]
    result["target"] = "ratio of medians <= 1.3"
    result["met"] = result["ratio_median"] <= 1.3
    return result


# -- the service ------------------------------------------------------------------------------------


def start_service(tmp: Path, tools: Path) -> servers.Server:
    exe = os.path.join(servers.REPO_VENV, "bin", "hpc-wps")
    port = servers.free_port()
    wdir = tmp / "service"
    wdir.mkdir()
    config = wdir / "hpc-wps.cfg"
    config.write_text(
        f"[server]\nhost = 127.0.0.1\nport = {port}\nworkdir = {wdir / 'var'}\nworkers = 2\n"
        "[processing]\nmode = scheduler\nqueue_length = 5000\n"
        f"[scheduler]\nsystem = slurm\npoll_interval = {POLL_INTERVAL}\nwalltime = 600\nmemory = 256MB\n"
        "[logging]\nlevel = WARNING\n",
        encoding="utf-8",
    )
    env = servers.base_env(str(wdir))
    env["PATH"] = f"{tools}:{env['PATH']}"
    env["HPC_WPS_CONFIG"] = str(config)
    server = servers.Server(
        "slurm-service", [exe, "serve"], servers.REPO_DIR, env, f"http://127.0.0.1:{port}/wps", str(wdir)
    )
    server.config = config
    server.start()
    server.wait_ready(timeout=90)
    return server


def http(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def submit_sleep0(server: servers.Server) -> str:
    body = http(server.url(SLEEP0))
    marker = b'statusLocation="'
    start = body.index(marker) + len(marker)
    return body[start : body.index(b'"', start)].decode()


def outcome(location: str) -> str | None:
    body = http(location)
    for state in (b"ProcessSucceeded", b"ProcessFailed"):
        if state in body:
            return state.decode()
    return None


# -- (c) latency ------------------------------------------------------------------------------------


def bench_latency(server: servers.Server, runs: int) -> dict:
    ours: list[float] = []
    bare: list[float] = []
    # Where ours spends it, as the status document shows: Execute answered, sbatch done ("queued on
    # Slurm as job N"), running on the node (ProcessStarted), succeeded.
    phases: dict[str, list[float]] = {"accepted": [], "on_slurm": [], "started": [], "succeeded": []}
    for _ in range(runs):
        start = time.perf_counter()
        location = submit_sleep0(server)
        seen = {"accepted": time.perf_counter() - start}
        while True:
            body = http(location)
            now = time.perf_counter() - start
            if b"queued on Slurm" in body or b"ProcessStarted" in body or b"ProcessSucceeded" in body:
                seen.setdefault("on_slurm", now)
            if b"ProcessStarted" in body or b"ProcessSucceeded" in body:
                seen.setdefault("started", now)
            if b"ProcessSucceeded" in body or b"ProcessFailed" in body:
                assert b"ProcessSucceeded" in body, body[:2000]
                seen["succeeded"] = now
                break
            time.sleep(CLIENT_POLL)
        ours.append(seen["succeeded"])
        for name, value in seen.items():
            phases[name].append(value)

        start = time.perf_counter()
        native_id = slurm("sbatch", "--parsable", "--output=/dev/null", "--wrap", "true").stdout.strip()
        _SUBMITTED.append(native_id)
        while True:
            state = slurm("squeue", "-h", "-t", "all", "-j", native_id, "-o", "%T", check=False).stdout.strip()
            if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
                break
            time.sleep(POLL_INTERVAL)
        assert state == "COMPLETED", state
        bare.append(time.perf_counter() - start)
    result = {"ours_s": summary(ours), "bare_s": summary(bare)}
    result["ours_phases_median_s"] = {name: statistics.median(values) for name, values in phases.items()}
    result["gap_median_s"] = result["ours_s"]["median"] - result["bare_s"]["median"]
    return result


# -- (b) many jobs ----------------------------------------------------------------------------------


def cycles(calls: list[tuple[float, str, str]]) -> list[dict]:
    """Poll cycles from the command log: each status squeue starts one; the status and accounting
    commands up to the next one are that cycle's. Submissions and cancels are counted apart."""
    found: list[dict] = []
    for _stamp, name, args in calls:
        words = args.split()
        if name == "squeue" and ("-j" in words or "-u" in words):
            in_flight = len(words[words.index("-j") + 1].split(",")) if "-j" in words else None
            found.append({"in_flight": in_flight, "commands": 1, "squeue": 1, "sacct": 0})
        elif name in ("squeue", "sacct") and found:
            found[-1]["commands"] += 1
            found[-1][name] += 1
    return found


def bench_many(server: servers.Server, log: Path, jobs: int, timeout: float) -> dict:
    since = time.time()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        locations = list(pool.map(lambda _: submit_sleep0(server), range(jobs)))
    submitted = time.perf_counter() - start
    pending = set(locations)
    outcomes: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(2.0)
        for location in list(pending):
            state = outcome(location)
            if state:
                outcomes[location] = state
                pending.discard(location)
    elapsed = time.perf_counter() - start
    found = cycles(read_calls(log, since))
    buckets: dict[str, list[int]] = {}
    for cycle in found:
        n = cycle["in_flight"] or 0
        label = (
            next(label for label, hi in (("1-10", 10), ("11-50", 50), ("51-100", 100), ("101-150", 150)) if n <= hi)
            if n <= 150
            else "151+"
        )
        buckets.setdefault(label, []).append(cycle["commands"])
    per_bucket = {
        label: {"cycles": len(v), "mean_commands": statistics.fmean(v), "max_commands": max(v)}
        for label, v in buckets.items()
    }
    calls = read_calls(log, since)
    succeeded = sum(1 for s in outcomes.values() if s == "ProcessSucceeded")
    steady = [c["commands"] for c in found]
    return {
        "jobs": jobs,
        "submitted_in_s": submitted,
        "all_ended_in_s": elapsed,
        "succeeded": succeeded,
        "failed": sum(1 for s in outcomes.values() if s == "ProcessFailed"),
        "unfinished": len(pending),
        "poll_cycles": len(found),
        "max_in_flight": max((c["in_flight"] or 0 for c in found), default=0),
        "commands_per_cycle": per_bucket,
        "steady_max_commands_per_cycle": max(steady, default=0),
        "max_squeue_per_cycle": max((c["squeue"] for c in found), default=0),
        "max_sacct_per_cycle": max((c["sacct"] for c in found), default=0),
        "cycles_with_sacct": sum(1 for c in found if c["sacct"]),
        "sbatch_calls": sum(1 for _s, name, _a in calls if name == "sbatch"),
        "sacct_calls": sum(1 for _s, name, _a in calls if name == "sacct"),
        "met": succeeded == jobs and max(steady, default=0) <= 2,
    }


# -- report -----------------------------------------------------------------------------------------


def table(results: dict) -> str:
    rows = [("figure", "ours", "bare Slurm", "ratio / gap", "target", "met")]
    a = results.get("submit")
    if a:
        rows.append(
            (
                f"(a) submit, median of {a['ours_ms']['n']} (ms)",
                f"{a['ours_ms']['median']:.2f}",
                f"{a['bare_ms']['median']:.2f}",
                f"{a['ratio_median']:.2f}x",
                "<= 1.3x",
                "yes" if a["met"] else "NO",
            )
        )
        rows.append(
            (
                "(a) submit, mean (ms)",
                f"{a['ours_ms']['mean']:.2f}",
                f"{a['bare_ms']['mean']:.2f}",
                f"{a['ratio_mean']:.2f}x",
                "",
                "",
            )
        )
    c = results.get("latency")
    if c:
        rows.append(
            (
                f"(c) end to end, median of {c['ours_s']['n']} (s)",
                f"{c['ours_s']['median']:.2f}",
                f"{c['bare_s']['median']:.2f}",
                f"{c['gap_median_s']:+.2f} s",
                "",
                "",
            )
        )
        phases = c["ours_phases_median_s"]
        rows.append(
            (
                "    ours: accepted / on Slurm / started / done",
                " / ".join(f"{phases[k]:.2f}" for k in ("accepted", "on_slurm", "started", "succeeded")),
                "",
                "",
                "",
                "",
            )
        )
    b = results.get("many")
    if b:
        rows.append(
            (
                f"(b) {b['jobs']} jobs: succeeded",
                f"{b['succeeded']}/{b['jobs']} in {b['all_ended_in_s']:.0f} s",
                "",
                "",
                "all",
                "yes" if b["succeeded"] == b["jobs"] else "NO",
            )
        )
        rows.append(
            (
                "(b) commands per poll cycle (max)",
                f"{b['steady_max_commands_per_cycle']} (squeue {b['max_squeue_per_cycle']}, "
                f"sacct {b['max_sacct_per_cycle']})",
                "",
                f"{b['poll_cycles']} cycles, {b['cycles_with_sacct']} with sacct",
                "constant (<= 2)",
                "yes" if b["steady_max_commands_per_cycle"] <= 2 else "NO",
            )
        )
        for label, figures in sorted(
            b["commands_per_cycle"].items(), key=lambda kv: int(kv[0].rstrip("+").split("-")[0])
        ):
            rows.append(
                (
                    f"    jobs in flight {label}",
                    f"{figures['mean_commands']:.2f} (max {figures['max_commands']})",
                    "",
                    f"{figures['cycles']} cycles",
                    "",
                    "",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs and repetitions (about 2 minutes)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, job dirs)")
    parser.add_argument("--only", choices=("submit", "latency", "many"), action="append", help="run only these parts")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    parts = args.only or ["submit", "latency", "many"]
    if slurm("sinfo", "-h", "-o", "%a", check=False).stdout.split()[:1] != ["up"]:
        print("Slurm is not up: start it with scripts/clusters.sh start", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    results: dict = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": sizes,
        "poll_interval_s": POLL_INTERVAL,
        "slurm": slurm("sinfo", "--version", check=False).stdout.strip(),
        "cpus": os.cpu_count(),
    }
    server = None
    try:
        if "submit" in parts:
            print(f"(a) submission overhead, {sizes['submit_n']} jobs each ...", flush=True)
            results["submit"] = bench_submit(tmp, sizes["submit_n"])
        if "latency" in parts or "many" in parts:
            log = write_wrappers(tmp / "tools", SLURM_COMMANDS)
            server = start_service(tmp, tmp / "tools")
            if "latency" in parts:
                print(f"(c) end-to-end latency, {sizes['latency_runs']} runs ...", flush=True)
                results["latency"] = bench_latency(server, sizes["latency_runs"])
            if "many" in parts:
                print(f"(b) {sizes['jobs']} jobs at once ...", flush=True)
                results["many"] = bench_many(server, log, sizes["jobs"], sizes["jobs_timeout_s"])
    finally:
        if server is not None:
            server.stop()
        servers.stop_all()
        cancel_all(tmp)
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    print()
    print(table(results))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{stamp}-slurm{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nwritten to {out.relative_to(servers.REPO_DIR)}")
    met = [results[k]["met"] for k in ("submit", "many") if k in results]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
