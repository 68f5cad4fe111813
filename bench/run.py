#!/usr/bin/env python3
"""hpc-wps vs PyWPS 4.8.1, side by side in one run. See bench/README.md.

    .venv/bin/python bench/run.py [--only pywps|ours] [--quick]

Standard library only (plus the `wrk` program). Servers listen on 127.0.0.1
only and are killed (their whole process groups) at the end, whatever
happens. Figures are printed and written to bench/results/<stamp>.json.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import jobfill
import load
import servers

CAPS = "service=WPS&request=GetCapabilities"
DESCRIBE = "service=WPS&version=1.0.0&request=DescribeProcess&identifier=ALL"
SAY_HELLO = "service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=World"
SLEEP_ASYNC = (
    "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0"
    "&storeExecuteResponse=true&status=true"
)
BIGOUTPUT = "service=WPS&version=1.0.0&request=Execute&identifier=bigoutput&DataInputs=size_mb={}&RawDataOutput=output"
GETSTATUS = "service=WPS&version=2.0.0&request=GetStatus&jobId={}"

PROCESS_IDS = (b"say_hello", b"sleep", b"bigoutput")
# hpc-wps serving the PyWPS processes PyWPS serves (the [pywps] extra, in .venv with the test extra).
PYWPS_PROCESSES = "demo_processes = false\nprocesses = pywps_app.processes:PROCESSES\n"
TABLE_KEYS = ("scenario", "pywps", "bare_flask", "ours", "ratio", "target", "met")
SCENARIOS = ("getcapabilities", "describe_all", "say_hello", "memory", "async_jobs", "getstatus")

FULL = dict(
    wrk_s=10,
    warm_s=2,
    jobs=500,
    submit_threads=16,
    poll_threads=4,
    jobs_timeout_s=600,
    mem_pywps_mb=256,
    mem_ours_mb=1024,
    status_jobs=100,
    status_fill=100_000,
    status_requests=3000,
    ready_s=90,
)
QUICK = dict(
    wrk_s=3,
    warm_s=1,
    jobs=50,
    submit_threads=16,
    poll_threads=4,
    jobs_timeout_s=120,
    mem_pywps_mb=32,
    mem_ours_mb=128,
    status_jobs=100,
    status_fill=5_000,
    status_requests=500,
    ready_s=90,
)


def log(msg):
    print("[{}] {}".format(time.strftime("%H:%M:%S"), msg), flush=True)


class Results:
    """Nested dict of figures: results[scenario][server] = {...}."""

    def __init__(self):
        self.data = {}

    def put(self, scenario, server, value):
        self.data.setdefault(scenario, {})[server] = value

    def get(self, scenario, server, key=None):
        v = self.data.get(scenario, {}).get(server)
        if key is None or not isinstance(v, dict):
            return v if key is None else None
        return v.get(key)


def guarded(results, scenario, server, fn, *args):
    """Runs one measurement, fn(*args); a failure is recorded, not fatal."""
    try:
        value = fn(*args)
    except Exception as e:  # keep going: the other figures still count
        value = {"error": f"{type(e).__name__}: {e}"}
        log("  {} / {}: FAILED: {}".format(scenario, server, value["error"]))
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
    results.put(scenario, server, value)
    return value


def check_get(server, query, must_contain):
    status, body = load.http_get(server.url(query), timeout=60)
    missing = [m for m in must_contain if m not in body]
    if status != 200 or missing:
        raise RuntimeError(f"{query} answered HTTP {status} ({len(body)} bytes), missing {missing}: {body[:300]!r}")
    return len(body)


def rates(results, scenario, names, srv, query, must_for, cfg):
    """wrk on every server in `names`, in ABBA order (A B C, then C B A) so
    that a load drifting on the shared machine hits each alike; each
    server's figure is the mean of its two runs (both kept in the JSON)."""
    ok = []
    for n in names:
        try:
            size = check_get(srv[n], query, must_for(n))
            ok.append((n, size))
        except Exception as e:
            guarded(results, scenario, n, _raise, e)
    runs = {n: [] for n, _ in ok}
    for n, _ in ok:
        try:
            load.wrk(srv[n].url(query), cfg["warm_s"])  # warm-up, not counted
        except Exception as e:
            log(f"  {n}: warm-up failed: {e}")
    for n, _ in ok + ok[::-1]:
        try:
            runs[n].append(load.wrk(srv[n].url(query), cfg["wrk_s"]))
        except Exception as e:
            runs[n].append({"error": f"{type(e).__name__}: {e}"})
    for n, size in ok:
        good = [r for r in runs[n] if "requests_per_s" in r]
        if not good:
            results.put(scenario, n, {"error": runs[n][0].get("error"), "runs": runs[n]})
            log(f"  {n:10s} FAILED: {runs[n][0].get('error')}")
            continue
        value = {
            "requests_per_s": sum(r["requests_per_s"] for r in good) / len(good),
            "runs_requests_per_s": [r["requests_per_s"] for r in good],
            "non_2xx": sum(r["non_2xx"] for r in good),
            "socket_errors": sum(r["socket_errors"] for r in good),
            "body_bytes": size,
            "command": good[0]["command"],
            "runs": runs[n],
        }
        bad = value["non_2xx"] + value["socket_errors"]
        log(
            "  {:10s} {:>9.1f} req/s  (runs {}; {} bytes{})".format(
                srv[n].name,
                value["requests_per_s"],
                " / ".join(f"{x:.1f}" for x in value["runs_requests_per_s"]),
                size,
                f", {bad} non-2xx/socket errors!" if bad else "",
            )
        )
        results.put(scenario, n, value)


def _raise(exc):
    raise exc


def memory(server, size_mb):
    res = load.stream_and_sample(server.url(BIGOUTPUT.format(size_mb)), server.rss_bytes)
    res["size_mb"] = size_mb
    expected = size_mb * 1024 * 1024
    if res["http"] != 200 or res["received_bytes"] != expected:
        res["error"] = "HTTP {}, received {} of {} bytes ({})".format(
            res["http"], res["received_bytes"], expected, res["error"]
        )
    log(
        "  {:10s} {} MiB raw output: RSS +{:.1f} MiB (baseline {:.1f}, peak {:.1f}) in {:.1f}s{}".format(
            server.name,
            size_mb,
            res["growth_mib"],
            res["rss_baseline_mib"],
            res["rss_peak_mib"],
            res["seconds"],
            "  ERROR " + res["error"] if res.get("error") else "",
        )
    )
    return res


def async_jobs(server, cfg, count=None):
    count = count or cfg["jobs"]
    res = load.async_jobs(
        server.url(SLEEP_ASYNC),
        count,
        submit_threads=cfg["submit_threads"],
        poll_threads=cfg["poll_threads"],
        timeout_s=cfg["jobs_timeout_s"],
    )
    log(
        "  {:10s} {} jobs: submit p50 {} / p99 {} ms; {} succeeded, {} failed, {} unfinished; "
        "{} jobs/s ({} s){}".format(
            server.name,
            count,
            _f(res["latency_p50_ms"]),
            _f(res["latency_p99_ms"]),
            res["succeeded"],
            res["failed"],
            res["unfinished"],
            _f(res["completed_jobs_per_s"]),
            _f(res["first_submit_to_last_completion_s"]),
            "; submit errors: {}".format(res["errors"]) if res["errors"] else "",
        )
    )
    return res


def getstatus_scaling(tmpdir, cfg):
    """Ours only: GetStatus latency with `status_jobs` finished jobs in the
    table vs `status_fill` of them. Two fresh servers run side by side, each
    with `status_jobs` real jobs; the second's table is then filled. Both
    are timed in ABBA order (small, big, big, small), half the requests per
    run, asking for the ids of the real jobs; percentiles are over the
    pooled latencies of each server."""
    small = servers.make_ours(tmpdir, name="ours-status-100").start()
    big = servers.make_ours(tmpdir, name="ours-status-fill").start()
    try:
        urls, out = {}, {"jobs": {}}
        for server in (small, big):
            server.wait_ready(cfg["ready_s"])
            jobs = async_jobs(server, cfg, count=cfg["status_jobs"])
            ids = [load.job_id_from_location(loc) for loc in jobs.pop("locations")]
            out["jobs"][server.name] = jobs
            if jobs["succeeded"] != cfg["status_jobs"]:
                raise RuntimeError(
                    "{}: only {} of {} jobs succeeded".format(server.name, jobs["succeeded"], cfg["status_jobs"])
                )
            check_get(server, GETSTATUS.format(ids[0]), [b"Succeeded"])
            urls[server.name] = [server.url(GETSTATUS.format(i)) for i in ids]
            out["job_ids_example"] = ids[:3]
        t0 = time.perf_counter()
        table, added = jobfill.fill_finished_jobs(big.db_url, cfg["status_fill"])
        out["fill"] = {"table": table, "added": added, "seconds": time.perf_counter() - t0}
        lat = {small.name: [], big.name: []}
        bad = {small.name: 0, big.name: 0}
        half = max(1, cfg["status_requests"] // 2)
        for server in (small, big, big, small):
            run = load.latency_run(urls[server.name], half, expect=b"Succeeded")
            lat[server.name] += run.pop("latencies")
            bad[server.name] += run["bad"]
            if run["bad_examples"]:
                out.setdefault("bad_examples", []).extend(run["bad_examples"])
        for key, server in (("small", small), ("big", big)):
            summary = load.summarize_latencies(lat[server.name])
            summary["bad"] = bad[server.name]
            summary["rows"] = jobfill.count_rows(server.db_url)
            out[key] = summary
            log(
                "  {:>7} jobs in table: GetStatus p50 {} / p99 {} ms ({} requests, {} bad)".format(
                    summary["rows"],
                    _f(summary["p50_ms"]),
                    _f(summary["p99_ms"]),
                    summary["requests"],
                    summary["bad"],
                )
            )
        return out
    finally:
        small.stop()
        big.stop()


# ------------------------------------------------------------ table ----


def _f(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "{:.{}f}".format(v, digits)
    return str(v)


def build_table(res, cfg, ran):
    rows = []

    def val(scn, srv, key):
        return res.get(scn, srv, key)

    def ratio(a, b):
        return (a / b) if (a is not None and b) else None

    def met(ok):
        return "n/a" if ok is None else ("yes" if ok else "NO")

    same = "  the same, PyWPS's own process served by ours"

    def times_pywps(label, scenario, key, ours, at_least):
        """A row of ours against PyWPS: the figures, their ratio and whether it reaches ``at_least``."""
        p, o = (val(scenario, s, key) for s in ("pywps", ours))
        r = ratio(o, p)
        target = f">= {at_least:g}x PyWPS"
        rows.append(
            [label, _f(p), "", _f(o), _f(r, 2) + "x" if r else "-", target, met(None if r is None else r >= at_least)]
        )

    for scn, label in (("getcapabilities", "GetCapabilities req/s"), ("describe_all", "DescribeProcess ALL req/s")):
        times_pywps(label + " (ours/PyWPS)", scn, "requests_per_s", "ours", 10)
        o, b = (val(scn, s, "requests_per_s") for s in ("ours", "bare"))
        r = ratio(o, b)
        rows.append(
            [
                label + " (ours/bare)",
                "",
                _f(b),
                _f(o),
                _f(r, 2) if r else "-",
                ">= 0.70 of bare",
                met(None if r is None else r >= 0.7),
            ]
        )
    times_pywps("Execute say_hello sync req/s", "say_hello", "requests_per_s", "ours", 5)
    times_pywps(same, "say_hello", "requests_per_s", "ours_pywps", 5)
    p, o = (val("async_jobs", s, "latency_p50_ms") for s in ("pywps", "ours"))
    rows.append(["async submit latency p50 ms", _f(p), "", _f(o), _f(ratio(o, p), 2), "", ""])
    p, o = (val("async_jobs", s, "latency_p99_ms") for s in ("pywps", "ours"))
    rows.append(
        [
            "async submit latency p99 ms",
            _f(p),
            "",
            _f(o),
            _f(ratio(o, p), 2),
            "ours < 50 ms",
            met(None if o is None else o < 50),
        ]
    )
    times_pywps(
        "async jobs completed/s ({} jobs)".format(cfg["jobs"]), "async_jobs", "completed_jobs_per_s", "ours", 10
    )
    times_pywps(same, "async_jobs", "completed_jobs_per_s", "ours_pywps", 10)
    p, o = (val("async_jobs", s, "succeeded") for s in ("pywps", "ours"))
    rows.append(
        [
            "async jobs succeeded",
            _f(p),
            "",
            _f(o),
            "",
            "ours = {}".format(cfg["jobs"]),
            met(None if o is None else o == cfg["jobs"]),
        ]
    )
    o = val("async_jobs", "ours_pywps", "succeeded")
    rows.append(
        [
            "  the same, PyWPS's own process served by ours",
            "",
            "",
            _f(o),
            "",
            "= {}".format(cfg["jobs"]),
            met(None if o is None else o == cfg["jobs"]),
        ]
    )
    p, o = (val("memory", s, "growth_mib") for s in ("pywps", "ours"))
    p_err, o_err = (val("memory", s, "error") for s in ("pywps", "ours"))
    rows.append(
        [
            "RSS growth MiB, raw output PyWPS {} / ours {} MiB".format(cfg["mem_pywps_mb"], cfg["mem_ours_mb"]),
            _f(p) + (" (err)" if p_err else ""),
            "",
            _f(o) + (" (err)" if o_err else ""),
            "",
            "ours < 50 MiB",
            met(None if (o is None or o_err) else o < 50),
        ]
    )
    gs = res.get("getstatus", "ours") or {}
    s_p99 = (gs.get("small") or {}).get("p99_ms")
    b_p99 = (gs.get("big") or {}).get("p99_ms")
    rows.append(["GetStatus p99 ms, {} finished jobs".format(cfg["status_jobs"]), "", "", _f(s_p99, 2), "", "", ""])
    r = ratio(b_p99, s_p99)
    rows.append(
        [
            "GetStatus p99 ms, {} finished jobs".format(cfg["status_fill"]),
            "",
            "",
            _f(b_p99, 2),
            _f(r, 2) if r else "-",
            "<= 1.5x the {} case".format(cfg["status_jobs"]),
            met(None if r is None else r <= 1.5),
        ]
    )
    return rows


def print_table(rows):
    head = ["scenario", "PyWPS", "bare Flask", "ours", "ratio", "target", "met?"]
    widths = [max(len(str(r[i])) for r in [*rows, head]) for i in range(len(head))]
    line = "  ".join("{:<" + str(w) + "}" for w in widths)
    print()
    print(line.format(*head))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))
    print()


# ------------------------------------------------------------- main ----


def environment_info():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:
            return None

    info = {
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "nproc": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "wrk": (run(["wrk", "--version"]) or "").splitlines()[:1],
        "git_commit": run(["git", "-C", servers.REPO_DIR, "rev-parse", "HEAD"]),
    }
    pip = os.path.join(servers.PYWPS_VENV, "bin", "pip")
    if os.path.exists(pip):
        info["pywps_venv"] = (run([pip, "freeze"]) or "").splitlines()
    return info


def save_logs(tmpdir, dest, limit=20 * 1024 * 1024):
    """Copies the servers' log files (each up to `limit` bytes) next to the JSON."""
    copied = 0
    for root, _dirs, files in os.walk(tmpdir):
        for name in files:
            src = os.path.join(root, name)
            # logs, truncated; job databases too when small (PyWPS's, for a
            # post-mortem of jobs that never finished)
            if not (name.endswith(".log") or (name.endswith(".sqlite") and os.path.getsize(src) <= limit)):
                continue
            target = os.path.join(dest, os.path.relpath(src, tmpdir))
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(src, "rb") as fi, open(target, "wb") as fo:
                    fo.write(fi.read(limit))
                copied += 1
            except OSError:
                continue
    return dest if copied else None


def _on_signal(signum, frame):
    raise SystemExit(f"interrupted by signal {signum}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="hpc-wps vs PyWPS 4.8.1 benchmark")
    ap.add_argument("--only", choices=("pywps", "ours"), help="run one server only (default: both)")
    ap.add_argument("--quick", action="store_true", help="short smoke run: fewer jobs, shorter loads")
    ap.add_argument(
        "--pywps-mode",
        default="multiprocessing",
        choices=("multiprocessing", "detachprocessing"),
        help="PyWPS [processing] mode (default: multiprocessing)",
    )
    ap.add_argument(
        "--pywps-queue-pause",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="PyWPS queue drainer period, 0 = off (see pywps_app/drainer.py; default 0.5)",
    )
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of: " + ",".join(SCENARIOS)
    )
    ap.add_argument(
        "--bare-fixed",
        metavar="CAPS,DESCRIBE",
        help="bare Flask serves filler bytes of these sizes instead of our documents",
    )
    ap.add_argument("--no-bare", action="store_true", help="skip the bare Flask view")
    ap.add_argument(
        "--no-pywps-processes",
        action="store_true",
        help="skip hpc-wps serving PyWPS's own process classes (pywps_app/processes.py)",
    )
    ap.add_argument("--no-getstatus", action="store_true", help="skip the GetStatus scaling test")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory")
    ap.add_argument("--out", help="JSON file to write (default bench/results/<stamp>.json)")
    args = ap.parse_args(argv)

    cfg = dict(QUICK if args.quick else FULL)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error("unknown scenario(s): {}".format(", ".join(sorted(unknown))))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends wrk")

    want = ("pywps", "ours") if not args.only else (args.only,)
    tmpdir = tempfile.mkdtemp(prefix="hpc-wps-bench-")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    res = Results()
    meta = {
        "started": stamp,
        "mode": "quick" if args.quick else "full",
        "servers": list(want),
        "config": cfg,
        "scenarios": scenarios,
        "pywps_mode": args.pywps_mode,
        "pywps_queue_pause_s": args.pywps_queue_pause,
        "tmpdir": tmpdir,
        "env": environment_info(),
    }
    log(f"temporary directory {tmpdir}")
    srv = {}
    try:
        # -- start everything first, then measure scenario by scenario, each
        #    server right after the other (side by side in time).
        main_scenarios = set(scenarios) - {"getstatus"}
        if "pywps" in want and main_scenarios:
            srv["pywps"] = servers.make_pywps(tmpdir, mode=args.pywps_mode, queue_pause=args.pywps_queue_pause).start()
        if "ours" in want and main_scenarios:
            srv["ours"] = servers.make_ours(tmpdir).start()
        if "ours" in want and {"say_hello", "async_jobs"} & main_scenarios and not args.no_pywps_processes:
            # The very PyWPS process classes PyWPS serves, served unchanged by hpc-wps (issue 11).
            srv["ours_pywps"] = servers.make_ours(
                tmpdir, "ours_pywps", processing=PYWPS_PROCESSES, pythonpath=servers.BENCH_DIR
            ).start()
        for name, s in list(srv.items()):
            try:
                s.wait_ready(cfg["ready_s"])
                log(f"{name} ready at {s.endpoint} (pid {s.pid})")
            except Exception as e:
                log(f"{name} did not start: {e}")
                res.put("startup", name, {"error": str(e)})
                s.stop()
                del srv[name]

        need_bare = {"getcapabilities", "describe_all"} & set(scenarios)
        if not args.no_bare and srv and need_bare:
            if "ours" in srv and not args.bare_fixed:
                bare = servers.make_bare_flask(tmpdir, source_endpoint=srv["ours"].endpoint)
                meta["bare_source"] = "ours"
            else:
                sizes = (4096, 4096)
                if args.bare_fixed:
                    sizes = tuple(int(x) for x in args.bare_fixed.split(","))
                elif "pywps" in srv:  # similar sizes: PyWPS's own documents
                    sizes = (
                        len(load.http_get(srv["pywps"].url(CAPS))[1]),
                        len(load.http_get(srv["pywps"].url(DESCRIBE))[1]),
                    )
                bare = servers.make_bare_flask(tmpdir, fixed_sizes=sizes)
                meta["bare_source"] = "fixed {} / {} bytes".format(*sizes)
            try:
                bare.start().wait_ready(cfg["ready_s"])
                srv["bare"] = bare
                log("bare Flask ready at {} ({})".format(bare.endpoint, meta["bare_source"]))
            except Exception as e:
                log(f"bare Flask did not start: {e}")
                res.put("startup", "bare", {"error": str(e)})
                bare.stop()

        order = [n for n in ("pywps", "ours", "bare") if n in srv]
        wps = [n for n in order if n != "bare"]
        executing = [*wps, *(["ours_pywps"] if "ours_pywps" in srv else [])]

        wrk_note = "wrk -t2 -c4 -d{}s, twice per server, ABBA order".format(cfg["wrk_s"])
        if "getcapabilities" in scenarios:
            log(f"GetCapabilities ({wrk_note})")
            rates(res, "getcapabilities", order, srv, CAPS, lambda n: [b"Capabilities"], cfg)
        if "describe_all" in scenarios:
            log(f"DescribeProcess identifier=ALL ({wrk_note})")
            rates(res, "describe_all", order, srv, DESCRIBE, lambda n: [] if n == "bare" else list(PROCESS_IDS), cfg)
        if "bare" in srv:
            srv.pop("bare").stop()

        if "say_hello" in scenarios:
            log(f"Execute say_hello, sync KVP ({wrk_note})")
            rates(res, "say_hello", executing, srv, SAY_HELLO, lambda n: [b"Hello World"], cfg)

        if "memory" in scenarios:
            log("memory: RawDataOutput of bigoutput")
            for n in wps:
                size = cfg["mem_pywps_mb"] if n == "pywps" else cfg["mem_ours_mb"]
                guarded(res, "memory", n, memory, srv[n], size)

        if "async_jobs" in scenarios:
            log("{} async sleep jobs (delay=0), {} submitting threads".format(cfg["jobs"], cfg["submit_threads"]))
            for n in executing:
                out = guarded(res, "async_jobs", n, async_jobs, srv[n], cfg)
                out.pop("locations", None)

        for n in list(srv):
            srv.pop(n).stop()

        if "ours" in want and "getstatus" in scenarios and not args.no_getstatus:
            log(
                "GetStatus p99, {} vs {} finished jobs (two fresh servers, ABBA)".format(
                    cfg["status_jobs"], cfg["status_fill"]
                )
            )
            guarded(res, "getstatus", "ours", getstatus_scaling, tmpdir, cfg)
    finally:
        servers.stop_all()
        meta["loadavg_end"] = os.getloadavg()
        meta["finished"] = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        rows = build_table(res, cfg, want)
        print_table(rows)
        print(
            "load average at start {:.2f}, at end {:.2f}, on {} cores: other work makes figures noisy".format(
                meta["env"]["loadavg_start"][0], meta["loadavg_end"][0], os.cpu_count()
            )
        )
        out = args.out or os.path.join(
            servers.BENCH_DIR, "results", "{}{}.json".format(stamp, "-quick" if args.quick else "")
        )
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(
                {"meta": meta, "results": res.data, "table": [dict(zip(TABLE_KEYS, r, strict=True)) for r in rows]},
                f,
                indent=2,
                default=str,
            )
        log(f"figures written to {out}")
        logs = save_logs(tmpdir, out[: -len(".json")] + "-logs" if out.endswith(".json") else out + "-logs")
        if logs:
            log(f"server logs copied to {logs}")
        if args.keep_tmp:
            log(f"kept {tmpdir}")
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
