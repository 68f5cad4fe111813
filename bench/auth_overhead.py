#!/usr/bin/env python3
"""What users cost: GetStatus and a synchronous Execute with [auth] mode = oidc against mode = none.

    PYTHONPATH=. .venv/bin/python bench/auth_overhead.py [--seconds 10]

Two fresh servers side by side (`hpc-wps serve`, gunicorn with 2 sync workers, SQLite), the same but
for [auth]: one with mode = none, one with mode = oidc checking RS256 tokens against a jwks_file.
Both are sent the same requests with the same `Authorization: Bearer` header (the first ignores it),
so they read the same bytes: what differs is the token's verification and the owner check. Each
scenario runs wrk on both in ABBA order (off, on, on, off) after a warm-up; a server's figure is the
mean of its two runs. Target: the requests per second with auth are at least 1/1.10 of those without,
i.e. a request costs at most 10% more. Prints the figures, their ratio and the load average (the
machine is shared: other work moves single runs by more than the target).

Needs PyJWT and cryptography (the project's and its test extra's dependencies) and the `wrk` program.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.dirname(BENCH_DIR))

import load  # noqa: E402
import servers  # noqa: E402
from run import GETSTATUS, SAY_HELLO, SLEEP_ASYNC  # noqa: E402

from tests.tokens import AUDIENCE, ISSUER, Provider  # noqa: E402

TARGET = 1.10


def start(tmpdir: str, name: str, auth: str) -> servers.Server:
    """`hpc-wps serve` of this checkout (PYTHONPATH), with `auth` as its [auth] section."""
    port = servers.free_port()
    wdir = os.path.join(tmpdir, name)
    os.makedirs(wdir, exist_ok=True)
    config, _ = servers.write_ours_config(wdir, port, processing=f"\n[auth]\n{auth}")
    env = servers.base_env(wdir) | {"HPC_WPS_CONFIG": config, "PYTHONPATH": servers.REPO_DIR}
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    server = servers.Server(name, cmd, servers.REPO_DIR, env, f"http://127.0.0.1:{port}/wps", wdir).start()
    server.wait_ready()
    return server


def finished_job(server: servers.Server, headers: dict[str, str]) -> str:
    """The id of an asynchronous job run to its end, for GetStatus to read."""
    status, body = load.http_request("GET", server.url(SLEEP_ASYNC), headers=headers)
    job_id = load.job_id_from_location(load.status_location(body))
    if status != 200 or not job_id:
        raise RuntimeError(f"{server.name}: the job was not accepted: HTTP {status} {body[:300]!r}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, body = load.http_request("GET", server.url(GETSTATUS.format(job_id)), headers=headers)
        if re.search(rb"<wps:Status>Succeeded</wps:Status>", body):
            return job_id
        time.sleep(0.2)
    raise RuntimeError(f"{server.name}: job {job_id} did not succeed within 60 s")


def measure(pair: dict[str, servers.Server], queries: dict[str, str], header: str, seconds: int) -> dict[str, float]:
    """Requests per second of each server, wrk in ABBA order, the mean of two runs each."""
    runs: dict[str, list[float]] = {name: [] for name in pair}
    for name in pair:  # every answer checked once: a 401 would be measured as fast
        status, body = load.http_request("GET", pair[name].url(queries[name]), headers=dict([header.split(": ", 1)]))
        if status != 200:
            raise RuntimeError(f"{name}: HTTP {status} {body[:300]!r}")
        load.wrk(pair[name].url(queries[name]), 2, headers=(header,))  # warm-up, not counted
    for name in [*pair, *reversed(pair)]:
        result = load.wrk(pair[name].url(queries[name]), seconds, headers=(header,))
        if result["non_2xx"] or result["socket_errors"]:
            raise RuntimeError(f"{name}: {result['non_2xx']} non-2xx answers, {result['socket_errors']} socket errors")
        runs[name].append(result["requests_per_s"])
    return {name: sum(values) / len(values) for name, values in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run (default 10)")
    args = parser.parse_args()
    load_start = os.getloadavg()
    provider = Provider("bench")
    token = provider.token("bench-user", exp=int(time.time()) + 3600)
    header = f"Authorization: Bearer {token}"
    with tempfile.TemporaryDirectory(prefix="hpc-wps-auth-bench-") as tmpdir:
        jwks = provider.write_jwks(Path(tmpdir) / "jwks.json")
        oidc = f"mode = oidc\njwks_file = {jwks}\nissuer = {ISSUER}\naudience = {AUDIENCE}\n"
        try:
            pair = {"auth off": start(tmpdir, "off", "mode = none\n"), "auth on": start(tmpdir, "on", oidc)}
            headers = {"Authorization": f"Bearer {token}"}
            jobs = {name: finished_job(server, headers) for name, server in pair.items()}
            figures = {
                "GetStatus": measure(pair, {n: GETSTATUS.format(jobs[n]) for n in pair}, header, args.seconds),
                "Execute say_hello (sync)": measure(pair, dict.fromkeys(pair, SAY_HELLO), header, args.seconds),
            }
        finally:
            servers.stop_all()
    print(f"\nwrk -t2 -c4 -d{args.seconds}s, ABBA; gunicorn 2 sync workers per server; requests/s")
    print(f"{'scenario':<26}{'auth off':>10}{'auth on':>10}{'cost':>9}  target <= {TARGET - 1:.0%}")
    met = True
    for scenario, rates in figures.items():
        ratio = rates["auth off"] / rates["auth on"]
        met &= ratio <= TARGET
        print(
            f"{scenario:<26}{rates['auth off']:>10.1f}{rates['auth on']:>10.1f}{ratio - 1:>+9.1%}"
            f"  {'met' if ratio <= TARGET else 'NOT met'}"
        )
    load_end = os.getloadavg()
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}, on {os.cpu_count()} cores")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
