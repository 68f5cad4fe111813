#!/usr/bin/env python3
"""Per-job overhead of the docker executor on Podman's Docker API (scripts/podman.sh start).

    .venv/bin/python bench/bench_docker.py [--n 20] [--quick] [--no-service] [--keep-tmp]

One job of the shipped `container_wordcount` example (image localhost/hpc-wps/examples, command
`wordcount /inputs/text.txt`, a 3 KB text) four ways, N times each, interleaved (the order rotates
every round, so the noise of a shared machine hits all alike):

  bare            `podman run --rm` of the same image and command, with the input and output
                  directories mounted: the engine's own cost of one run
  bare hardened   the same with our hardening flags (no network, read-only root, tmpfs /tmp, no
                  capabilities, no-new-privileges, uid 65534, memory/CPU/process limits)
  executor        DockerExecutor in this process: submit() (staging child: inputs staged, image
                  checked, container created and started) then poll_many() until the job has ENDED
                  (the finalizer child has saved the logs, collected the outputs and written
                  result.json); the container's removal trails by a few ms and is timed separately
  service         through `hpc-wps serve`: WPS 2.0 Execute (async) to GetStatus Succeeded, the
                  client polling every 20 ms

Target: executor median <= 1.3 x bare median. Prints a table and writes every figure as JSON to
bench/results/ (git-ignored). Every container and the server's process group are removed at the end.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, servers.REPO_DIR)

from app.settings import load_settings
from processes.container.config import load_config
from processes.registry import Registry
from scheduler.executors.base import JobSpec, NativeState
from scheduler.executors.docker import DockerExecutor

REPO = Path(servers.REPO_DIR)
RESULTS = Path(servers.BENCH_DIR) / "results"
IMAGE = "localhost/hpc-wps/examples:latest"
EXAMPLES = REPO / "config" / "containers.example.toml"
TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps.\n" * 50
EXPECTED_TOTAL = "600"
HARDENING = [
    "--network=none",
    "--read-only",
    "--tmpfs=/tmp:rw,size=64m,mode=1777",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--user=65534:65534",
    "--pids-limit=32",
    "--memory=64m",
    "--memory-swap=64m",
    "--cpus=0.5",
]
LABEL = "hpc-wps.bench"


def docker_url() -> str:
    exported = subprocess.run([str(REPO / "scripts" / "podman.sh"), "env"], capture_output=True, text=True).stdout
    return os.environ.get("DOCKER_HOST") or exported.strip().rpartition("DOCKER_HOST=")[2]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min": ordered[0],
        "max": ordered[-1],
    }


class Bare:
    def __init__(self, tmp: Path, hardened: bool) -> None:
        self.tmp = tmp
        self.hardened = hardened
        self.inputs = tmp / "bare-inputs"
        self.inputs.mkdir(exist_ok=True)
        (self.inputs / "text.txt").write_text(TEXT)

    def run(self) -> float:
        outputs = self.tmp / f"bare-out-{uuid.uuid4().hex[:8]}"
        outputs.mkdir(mode=0o777)
        outputs.chmod(0o777)
        argv = ["podman", "run", "--rm", f"--label={LABEL}=1"]
        argv += HARDENING if self.hardened else []
        argv += ["-v", f"{self.inputs}:/inputs:ro", "-v", f"{outputs}:/outputs", IMAGE, "wordcount", "/inputs/text.txt"]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        elapsed = time.perf_counter() - start
        assert done.returncode == 0 and done.stdout.startswith('{"the": 150'), done.stderr
        assert (outputs / "total.txt").read_text().strip() == EXPECTED_TOTAL
        shutil.rmtree(outputs, ignore_errors=True)
        return elapsed


class InProcess:
    def __init__(self, tmp: Path, url: str) -> None:
        self.settings = load_settings(
            environ={
                "HPC_WPS_SERVER_WORKDIR": str(tmp / "executor"),
                "HPC_WPS_DOCKER_URL": url,
                "HPC_WPS_DOCKER_IMAGES": IMAGE,
                "HPC_WPS_DOCKER_PROCESSES": str(EXAMPLES),
            }
        )
        processes = load_config(EXAMPLES, self.settings.docker.images).processes
        self.executor = DockerExecutor(self.settings.jobs, Registry(processes).get)
        self.request = {"inputs": [{"id": "text", "value": TEXT, "mime_type": "text/plain"}], "outputs": []}
        self.removed: list[float] = []

    def run(self) -> float:
        executor = self.executor
        job_id = str(uuid.uuid4())
        start = time.perf_counter()
        native = executor.submit(JobSpec(job_id, "container_wordcount", self.settings.jobs_dir / job_id, self.request))
        while executor.poll_many([native])[native].state is not NativeState.ENDED:
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
        while executor._children:  # the finalizer still removing the container
            executor._reap()
            time.sleep(0.001)
        self.removed.append(time.perf_counter() - start)
        result = json.loads((self.settings.jobs_dir / job_id / "result.json").read_text())
        assert result["status"] == "succeeded", result
        assert [o.get("value") for o in result["outputs"] if o["id"] == "total"] == [EXPECTED_TOTAL]
        return elapsed


class Service:
    def __init__(self, tmp: Path, url: str) -> None:
        port = servers.free_port()
        wdir = tmp / "service"
        wdir.mkdir()
        config = wdir / "hpc-wps.cfg"
        config.write_text(
            f"[server]\nurl = http://127.0.0.1:{port}/wps\nport = {port}\nworkdir = {wdir / 'work'}\n"
            "[processing]\n"
            f"[docker]\nurl = {url}\nprocesses = {EXAMPLES}\nimages = {IMAGE}\n"
        )
        env = servers.base_env(str(wdir))
        env["HPC_WPS_CONFIG"] = str(config)
        exe = os.path.join(servers.REPO_VENV, "bin", "hpc-wps")
        self.server = servers.Server(
            "ours-docker", [exe, "serve"], servers.REPO_DIR, env, f"http://127.0.0.1:{port}/wps", str(wdir)
        )
        self.server.start()
        self.server.wait_ready(120)
        self.body = (
            '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
            'service="WPS" version="2.0.0" mode="async" response="document">'
            "<ows:Identifier>container_wordcount</ows:Identifier>"
            f'<wps:Input id="text"><wps:Data mimeType="text/plain">{TEXT}</wps:Data></wps:Input></wps:Execute>'
        ).encode()

    def run(self) -> float:
        endpoint = self.server.endpoint
        start = time.perf_counter()
        request = urllib.request.Request(endpoint, data=self.body, headers={"Content-Type": "text/xml"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        job_id = text.split("<wps:JobID>")[1].split("</wps:JobID>")[0]
        status_url = f"{endpoint}?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}"
        while True:
            with urllib.request.urlopen(status_url, timeout=30) as response:
                status = response.read().decode()
            if "<wps:Status>Succeeded</wps:Status>" in status:
                return time.perf_counter() - start
            assert "<wps:Status>Failed</wps:Status>" not in status, status
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.stop()


def remove_leftovers() -> None:
    listed = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label={LABEL}"], capture_output=True, text=True, check=False
    ).stdout.split()
    if listed:
        subprocess.run(["podman", "rm", "-f", *listed], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="runs of each variant (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 runs of each")
    parser.add_argument("--no-service", action="store_true", help="skip the run through hpc-wps serve")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--out", help="JSON file (default bench/results/docker-STAMP.json)")
    args = parser.parse_args()
    n = 5 if args.quick else args.n
    subprocess.run([str(REPO / "scripts" / "build-example-images.sh")], check=True)
    url = docker_url()
    tmp = Path(tempfile.mkdtemp(prefix="bench-docker-"))
    variants: dict[str, object] = {}
    service = None
    try:
        variants["bare"] = Bare(tmp, hardened=False)
        variants["bare hardened"] = Bare(tmp, hardened=True)
        executor = variants["executor"] = InProcess(tmp, url)
        if not args.no_service:
            service = variants["service"] = Service(tmp, url)
        for variant in variants.values():  # warm-up: page cache, API version, first fork
            variant.run()  # type: ignore[attr-defined]
        executor.removed.clear()
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(n):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                times[name].append(variants[name].run())  # type: ignore[attr-defined]
            print(f"round {round_ + 1}/{n}: " + ", ".join(f"{k} {times[k][-1]:.3f}" for k in names), flush=True)
    finally:
        if service is not None:
            service.stop()
        remove_leftovers()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    figures = {name: summary(values) for name, values in times.items()}
    figures["executor, container removed"] = summary(executor.removed)
    bare = figures["bare"]["median"]
    ratio = figures["executor"]["median"] / bare
    print()
    print(f"{'variant':<30} {'median s':>9} {'p90 s':>8} {'mean s':>8} {'x bare':>7}")
    for name, fig in figures.items():
        print(f"{name:<30} {fig['median']:9.3f} {fig['p90']:8.3f} {fig['mean']:8.3f} {fig['median'] / bare:7.2f}")
    print(f"\nexecutor / bare (medians): {ratio:.2f} (target <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'})")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else RESULTS / f"docker-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": stamp,
        "n": n,
        "image": IMAGE,
        "command": "wordcount /inputs/text.txt",
        "input_bytes": len(TEXT),
        "figures": figures,
        "raw": times,
        "ratio_executor_to_bare": ratio,
        "target": 1.3,
        "met": ratio <= 1.3,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
