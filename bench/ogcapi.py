#!/usr/bin/env python3
"""hpc-wps's OGC API - Processes vs pygeoapi, side by side in one run (issue 12). See bench/README.md.

    bash bench/setup_pygeoapi.sh && .venv/bin/python bench/ogcapi.py [--quick]

pygeoapi runs its hello-world process with its TinyDB job manager, hpc-wps its say_hello (the same
input and answer), both under the same gunicorn settings (2 gthread workers of 16 threads), beside a
bare Flask view serving the bytes of hpc-wps's own /processes. wrk with 4 connections, each server
run several times in turns (ABBA...); the asynchronous scenario with 4 clients submitting (the
issue's wrk connections), then again with 16. Figures are printed and written to
bench/results/ogcapi-<stamp>.json.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

import jobfill
import load
import servers

JSON_ACCEPT = "Accept: application/json"
HELLO = {"pygeoapi": "hello-world", "ours": "say_hello"}
GREETING = {"pygeoapi": b"Hello World", "ours": b"Hello World"}
# clients: the asynchronous scenario's submitting clients, as many as wrk's connections in the issue's
# figures (4); stress_clients: the same scenario again, harder. rounds: wrk runs per server, in turns.
FULL = dict(
    wrk_s=4,
    warm_s=2,
    rounds=8,
    jobs=500,
    clients=4,
    stress_clients=16,
    small=100,
    fill_pygeoapi=5000,
    fill_ours=100_000,
    gets=2000,
)
QUICK = FULL | dict(wrk_s=3, warm_s=1, rounds=2, jobs=50, fill_pygeoapi=500, fill_ours=5000, gets=300)


def log(message):
    print("[{}] {}".format(time.strftime("%H:%M:%S"), message), flush=True)


def root(server):
    """The API root: pygeoapi's endpoint; hpc-wps's endpoint names its WPS, the API is its parent."""
    return server.endpoint.removesuffix("/wps")


def wait_ready(server, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = load.http_request("GET", root(server) + "/processes", headers={"Accept": "application/json"})
            if status == 200 and b"processes" in body:
                return
        except OSError:
            pass
        if server.proc.poll() is not None:
            break
        time.sleep(0.3)
    raise RuntimeError(f"{server.name} not ready; log {server.log_path}:\n{server.log_tail()}")


def post_script(tmpdir, name):
    path = os.path.join(tmpdir, f"post-{name}.lua")
    with open(path, "w") as f:
        f.write(
            'wrk.method = "POST"\n'
            'wrk.body = \'{"inputs": {"name": "World"}}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    return path


# A wrk run whose 4 connections all went to one of the 2 workers is run again, this many times at most.
ONE_WORKER_RETRIES = 3


def _note_split(port, seen):
    seen["split"] = servers.connection_split(port)


def one_run(url, seconds, script):
    """One wrk run, with how its connections were spread over the server's workers (``split``).

    Each run opens its 4 connections anew and the 2 workers race to accept them. A worker that takes
    all 4 serves them alone, at about half the rate of a 3-1 or 2-2 split (measured: 990 against 2,230
    to 2,620 req/s for the bare view), so such a run measures one worker, not the server: it is run
    again, for every server alike, and the runs put aside are kept in the record."""
    port = urllib.parse.urlsplit(url).port
    put_aside = []
    for _ in range(ONE_WORKER_RETRIES + 1):
        seen = {}
        probe = threading.Timer(1.0, _note_split, (port, seen))
        probe.start()
        run = load.wrk(url, seconds, headers=(JSON_ACCEPT,), script=script)
        probe.join()
        run["split"] = seen.get("split", "?")
        if run["split"] != "4":
            break
        put_aside.append(run["requests_per_s"])
    run["one_worker_runs_put_aside"] = put_aside
    return run


def rates(label, urls, cfg, script=None):
    """wrk on each server's URL, ``rounds`` times in turns (ABBA...); the mean of its runs (``one_run``:
    none with every connection on one worker)."""
    names = list(urls)
    for name in names:
        load.wrk(urls[name], cfg["warm_s"], headers=(JSON_ACCEPT,), script=script and script[name])
    runs = {name: [] for name in names}
    for turn in range(cfg["rounds"]):
        for name in names if turn % 2 == 0 else names[::-1]:
            runs[name].append(one_run(urls[name], cfg["wrk_s"], script and script[name]))
    out = {}
    for name in names:
        good = [r["requests_per_s"] for r in runs[name]]
        bad = sum(r["non_2xx"] + r["socket_errors"] for r in runs[name])
        aside = [x for r in runs[name] for x in r["one_worker_runs_put_aside"]]
        out[name] = {
            "requests_per_s": sum(good) / len(good),
            "runs": good,
            "splits": [r["split"] for r in runs[name]],
            "one_worker_runs_put_aside": aside,
            "non_2xx_or_errors": bad,
        }
        shown = " / ".join(f"{r['requests_per_s']:.0f} ({r['split']})" for r in runs[name])
        log(
            f"  {label} {name:9s} {out[name]['requests_per_s']:9.1f} req/s ({shown}; {bad} bad; "
            f"put aside, all connections on one worker: {' / '.join(f'{x:.0f}' for x in aside) or 'none'})"
        )
    return out


def execute_async(server):
    """load.submit_jobs's ``send`` for one asynchronous execution: (HTTP status, body, the job's URL)."""
    url = f"{root(server)}/processes/{HELLO[server.name]}/execution"
    body = json.dumps({"inputs": {"name": "World"}}).encode()
    headers = {"Content-Type": "application/json", "Prefer": "respond-async", "Accept": "application/json"}

    def send(timeout):
        status, answer, content = load.http_exchange("POST", url, body, headers, timeout)
        return status, content, answer.get("Location") if status == 201 else None

    return send


def job_state(body):
    """A statusInfo's status in load.poll_jobs's words: 'succeeded', 'failed' or what it says."""
    status = json.loads(body).get("status")
    return {"successful": "succeeded", "dismissed": "failed"}.get(status, status)


def async_jobs(server, count, clients):
    """``count`` jobs submitted by ``clients`` clients at once, then every job followed to its end."""
    out = load.async_jobs(f"{root(server)}/processes", count, clients, send=execute_async(server), state_of=job_state)
    log(
        "  {:9s} {} jobs, {} clients: submit p50 {:.1f} / p99 {:.1f} ms; {} succeeded, {} unfinished; "
        "{:.1f} jobs/s".format(
            server.name,
            count,
            clients,
            out["latency_p50_ms"],
            out["latency_p99_ms"],
            out["succeeded"],
            out["unfinished"],
            out["completed_jobs_per_s"] or 0,
        )
    )
    return out


def fill_tinydb(path, total):
    """pygeoapi's TinyDB job table grown to ``total`` finished jobs: copies of one it ran, new ids."""
    with open(path) as f:
        data = json.load(f)
    table = data["_default"]
    template = next(iter(table.values()))
    key = max(int(k) for k in table) + 1
    for n in range(total - len(table)):
        job = dict(template)
        job["identifier"] = f"fill-{n:08d}"
        table[str(key + n)] = job
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)
    return len(table)


def timed_gets(urls, total):
    run = load.latency_run(urls, total)
    run.pop("latencies")
    return run | {key: round(run[key], 1) for key in ("p50_ms", "p99_ms", "max_ms")}


def status_scaling(server, locations, cfg, fill):
    """GET /jobs/{id} p99 with the jobs it ran, then with the table grown to ``fill`` jobs; for hpc-wps
    also GET /jobs?limit=50 at that size."""
    urls = locations[: cfg["small"]]
    small = timed_gets(urls, cfg["gets"])
    if server.name == "pygeoapi":
        rows = fill_tinydb(server.jobs_db, fill)
    else:
        jobfill.fill_finished_jobs(server.db_url, fill)
        rows = jobfill.count_rows(server.db_url)
    big = timed_gets(urls, cfg["gets"])
    out = {"small": small, "big": big, "rows": rows}
    log(
        f"  {server.name:9s} GET /jobs/{{id}} p99 {small['p99_ms']} ms with {len(locations)} jobs, "
        f"{big['p99_ms']} ms with {rows}"
    )
    if server.name == "ours":
        out["list"] = timed_gets([f"{root(server)}/jobs?limit=50"], cfg["gets"])
        log(f"  {server.name:9s} GET /jobs?limit=50 p99 {out['list']['p99_ms']} ms with {rows} jobs")
    return out


def table(res, cfg):
    def ratio(a, b):
        return a / b if a and b else None

    def row(label, pygeoapi, ours, bare, value, target, ok):
        """target None: a stress row, which is shown but not judged; a judged row whose figure is missing is NO."""
        met = "-" if target is None else "yes" if ok else "NO"
        value = "-" if value is None else f"{value:.2f}"
        return [label, pygeoapi, ours, bare, value, target or "(stress: no target)", met]

    p = res["processes"]
    r = ratio(p["ours"]["requests_per_s"], p["bare"]["requests_per_s"])
    rows = [
        row(
            "/processes req/s",
            *(f"{p[n]['requests_per_s']:.0f}" for n in ("pygeoapi", "ours", "bare")),
            r,
            ">= 0.75 of bare",
            r and r >= 0.75,
        )
    ]
    s = res["sync"]
    r = ratio(s["ours"]["requests_per_s"], s["pygeoapi"]["requests_per_s"])
    rows.append(
        row(
            "sync execution req/s",
            f"{s['pygeoapi']['requests_per_s']:.1f}",
            f"{s['ours']['requests_per_s']:.1f}",
            "",
            r,
            ">= 4x pygeoapi",
            r and r >= 4,
        )
    )
    for key, clients, targets in (("async", cfg["clients"], True), ("async_stress", cfg["stress_clients"], False)):
        a = res[key]
        r = ratio(a["ours"]["completed_jobs_per_s"], a["pygeoapi"]["completed_jobs_per_s"])
        all_done = a["ours"]["succeeded"] == cfg["jobs"]
        rows.append(
            row(
                f"async: {cfg['jobs']} jobs completed/s, {clients} clients",
                f"{a['pygeoapi']['completed_jobs_per_s']:.1f}",
                f"{a['ours']['completed_jobs_per_s']:.1f}",
                "",
                r,
                ">= 10x pygeoapi, all succeed" if targets else None,
                r and r >= 10 and all_done,
            )
        )
        rows.append(
            row(
                f"async submission p99 ms, {clients} clients",
                f"{a['pygeoapi']['latency_p99_ms']:.1f}",
                f"{a['ours']['latency_p99_ms']:.1f}",
                "",
                None,
                "ours < 50 ms" if targets else None,
                a["ours"]["latency_p99_ms"] < 50,
            )
        )
    g = res["status"]
    r = ratio(g["ours"]["big"]["p99_ms"], g["ours"]["small"]["p99_ms"])
    rows.append(
        row(
            f"GET /jobs/{{id}} p99 ms, {cfg['small']} -> {g['ours']['rows']} jobs (pygeoapi {g['pygeoapi']['rows']})",
            f"{g['pygeoapi']['small']['p99_ms']} -> {g['pygeoapi']['big']['p99_ms']}",
            f"{g['ours']['small']['p99_ms']} -> {g['ours']['big']['p99_ms']}",
            "",
            r,
            "ours within 1.5x",
            r and r <= 1.5,
        )
    )
    listing = g["ours"]["list"]["p99_ms"]
    rows.append(
        row(f"GET /jobs?limit=50 p99 ms, {g['ours']['rows']} jobs", "", f"{listing}", "", None, "< 50 ms", listing < 50)
    )
    head = ["scenario", "pygeoapi", "ours", "bare Flask", "ratio", "target", "met?"]
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    for line in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run: fewer jobs, shorter loads")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: bash bench/setup_pygeoapi.sh installs it")
    tmpdir = tempfile.mkdtemp(prefix="hpc-wps-ogcapi-bench-")
    res = {"config": cfg, "loadavg_start": os.getloadavg()}
    try:
        pygeoapi = servers.make_pygeoapi(tmpdir).start()
        ours = servers.make_ours(tmpdir).start()
        for server in (pygeoapi, ours):
            wait_ready(server)
        bare = servers.make_bare_flask(tmpdir, copy=root(ours) + "/processes").start()
        wait_ready(bare)
        srv = {"pygeoapi": pygeoapi, "ours": ours}
        log(f"GET /processes (wrk -t2 -c4, {cfg['rounds']} runs each, in turns)")
        res["processes"] = rates(
            "/processes", {n: root(s) + "/processes" for n, s in {**srv, "bare": bare}.items()}, cfg
        )
        bare.stop()
        log(f"synchronous execution (POST, wrk -t2 -c4, {cfg['rounds']} runs each, in turns)")
        for name, server in srv.items():
            status, body = load.http_request(
                "POST",
                f"{root(server)}/processes/{HELLO[name]}/execution",
                b'{"inputs": {"name": "World"}}',
                {"Content-Type": "application/json"},
            )
            if status != 200 or GREETING[name] not in body:
                raise RuntimeError(f"{name}: synchronous execution answered HTTP {status} {body[:200]!r}")
        scripts = {name: post_script(tmpdir, name) for name in srv}
        res["sync"] = rates(
            "execution", {n: f"{root(s)}/processes/{HELLO[n]}/execution" for n, s in srv.items()}, cfg, scripts
        )
        log(f"{cfg['jobs']} asynchronous executions ({cfg['clients']} clients submitting), each followed to its end")
        res["async"] = {name: async_jobs(server, cfg["jobs"], cfg["clients"]) for name, server in srv.items()}
        log(f"again, {cfg['stress_clients']} clients submitting")
        res["async_stress"] = {
            name: async_jobs(server, cfg["jobs"], cfg["stress_clients"]) for name, server in srv.items()
        }
        for out in res["async_stress"].values():
            out.pop("locations")
        log("job status as the job table grows")
        fills = {"pygeoapi": cfg["fill_pygeoapi"], "ours": cfg["fill_ours"]}
        res["status"] = {
            name: status_scaling(server, res["async"][name].pop("locations"), cfg, fills[name])
            for name, server in srv.items()
        }
    finally:
        servers.stop_all()
        res["loadavg_end"] = os.getloadavg()
        shutil.rmtree(tmpdir, ignore_errors=True)
    rows = table(res, cfg)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(servers.BENCH_DIR, "results", f"ogcapi-{stamp}{'-quick' if args.quick else ''}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"results": res, "table": rows}, f, indent=2, default=str)
    print("load average at start {:.2f}, at end {:.2f}".format(res["loadavg_start"][0], res["loadavg_end"][0]))
    log(f"figures written to {out}")


if __name__ == "__main__":
    main()
