"""Container processes on Slurm: ``hpc-wps serve`` in scheduler mode with ``[scheduler] container_runtime``.

Each job goes to Slurm with sbatch, and on the node ``python -m scheduler.run_job`` runs the image with the
runtime's command line (no Docker Engine API there): Podman, and Charliecloud (Debian's ``charliecloud``)
on a directory image exported from the same busybox image. The tests talk WPS over HTTP as a client
would and check the bytes of the outputs, the failure messages and the hardening seen from inside.
Outside CI they skip without Slurm, Podman's busybox image or ``ch-run``; in CI they fail.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.clusters.test_docker import failure_message, listener, outputs, submit, wait_final
from tests.conftest import BUSYBOX_IMAGE, LiveServer, need_backend, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm")]
__all__ = ["listener"]  # the fixture, used by name

JOB = 120  # seconds for a short job: Slurm starts about two jobs every three seconds on the test node

PROCESSES = r"""
[[process]]
identifier = "c_args"
title = "Prints its arguments and writes a file"
image = "IMAGE"
command = ["sh", "-c", 'for a in "$@"; do printf "<%s>\n" "$a"; done; printf "%s" "$1" > /outputs/first.txt', "c_args", "{value}", "{more}"]
inputs = [{ identifier = "value" }, { identifier = "more", min_occurs = 0, max_occurs = 3 }]
outputs = [
  { identifier = "args", formats = ["text/plain"], from = "stdout" },
  { identifier = "first", formats = ["text/plain"], from = "first.txt" },
]

[[process]]
identifier = "c_sleep"
title = "Sleeps"
image = "IMAGE"
command = ["sleep", "{seconds}"]
inputs = [{ identifier = "seconds", type = "integer", minimum = 0, maximum = 600 }]

[[process]]
identifier = "c_fail"
title = "Fails with a message on stderr"
image = "IMAGE"
command = ["sh", "-c", 'echo "half done"; echo "broken on purpose: $1" >&2; exit 3', "c_fail", "{why}"]
inputs = [{ identifier = "why" }]
outputs = [{ identifier = "out", from = "stdout" }]

[[process]]
identifier = "c_probe"
title = "Reports what the container may do"
image = "IMAGE"
command = ["sh", "-c", '''
echo "uid $(id -u)"
touch /probe 2>/dev/null && echo root-writable || echo root-read-only
touch /inputs/probe 2>/dev/null && echo inputs-writable || echo inputs-read-only
echo changed 2>/dev/null > "$1" && echo input-changed || echo input-unchanged
touch /outputs/probe 2>/dev/null && echo outputs-writable || echo outputs-read-only
grep -E "^(CapEff|NoNewPrivs)" /proc/self/status
echo "input $(cat "$1")"
''', "c_probe", "{text}"]
inputs = [{ identifier = "text", formats = ["text/plain"] }]
outputs = [{ identifier = "report", formats = ["text/plain"], from = "stdout" }]

[[process]]
identifier = "c_net"
title = "Tries to open a TCP connection"
image = "IMAGE"
command = ["sh", "-c", 'if nc -w 2 "$1" "$2" </dev/null; then echo reached; else echo unreachable; fi', "c_net", "{host}", "{port}"]
inputs = [{ identifier = "host" }, { identifier = "port", type = "integer" }]
outputs = [{ identifier = "result", from = "stdout" }]

[[process]]
identifier = "c_net_open"
title = "The same, with the host's network granted by the administrator"
image = "IMAGE"
command = ["sh", "-c", 'if nc -w 2 "$1" "$2" </dev/null; then echo reached; else echo unreachable; fi', "c_net", "{host}", "{port}"]
inputs = [{ identifier = "host" }, { identifier = "port", type = "integer" }]
outputs = [{ identifier = "result", from = "stdout" }]
relax = { network = "host" }
"""


def podman_image() -> str:
    listed = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
    )
    if shutil.which("podman") is None or BUSYBOX_IMAGE not in listed.stdout.split():
        need_backend(f"podman with {BUSYBOX_IMAGE} is missing (scripts/podman.sh start && scripts/podman.sh images)")
    return BUSYBOX_IMAGE


def charliecloud_image(root: Path) -> str:
    """A Charliecloud directory image: podman's busybox exported, with the mount points ch-run binds onto."""
    if shutil.which("ch-run") is None:
        need_backend("Charliecloud's ch-run is missing (scripts/podman.sh start installs charliecloud-runtime)")
    image = root / "busybox-ch"
    image.mkdir()
    created = subprocess.run(["podman", "create", podman_image(), "true"], capture_output=True, text=True, check=True)
    container = created.stdout.strip()
    try:
        exported = subprocess.run(["podman", "export", container], capture_output=True, check=True)
    finally:
        subprocess.run(["podman", "rm", container], capture_output=True, check=False)
    subprocess.run(["tar", "-x", "-C", str(image)], input=exported.stdout, check=True)
    for mount_point in ("dev", "proc", "sys", "tmp", "inputs", "outputs", "home"):
        (image / mount_point).mkdir(exist_ok=True)
    return str(image)


@pytest.fixture(scope="module", params=["podman", "charliecloud"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    runtime = request.param
    root = tmp_path_factory.mktemp(f"containers-{runtime}")
    image = podman_image() if runtime == "podman" else charliecloud_image(root)
    processes = root / "containers.toml"
    processes.write_text(PROCESSES.replace("IMAGE", image), encoding="utf-8")
    live = LiveServer(
        root / "server",
        "[processing]\nmode = scheduler\n"
        f"[scheduler]\nsystem = slurm\ncontainer_runtime = {runtime}\npoll_interval = 0.5\nwalltime = 300\n"
        f"[docker]\nprocesses = {processes}\nimages = {image}\nmemory = 64MB\nwalltime = 120\n",
    ).start()
    live.runtime = runtime  # type: ignore[attr-defined]
    yield live
    live.stop()


def test_a_container_job_runs_on_slurm_and_returns_its_bytes(server):
    job_id = submit(server, "c_args", literals={"value": "; rm -rf / #", "more": ["$(reboot)", "two words"]})
    assert wait_final(server, job_id, JOB) == "Succeeded"
    assert outputs(server, job_id) == {"args": "<; rm -rf / #>\n<$(reboot)>\n<two words>\n", "first": "; rm -rf / #"}
    job_dir = server.workdir / "var" / "jobs" / job_id
    assert list(job_dir.glob("slurm-*.err"))  # it went through sbatch
    assert not (job_dir / "container").exists() and not (job_dir / "work").exists()


def test_non_zero_exit_fails_the_job_with_the_code_and_stderr(server):
    job_id = submit(server, "c_fail", literals={"why": "disk on fire"})
    assert wait_final(server, job_id, JOB) == "Failed"
    assert failure_message(server, job_id) == "the container exited with code 3: broken on purpose: disk on fire"


def test_the_container_is_hardened(server):
    job_id = submit(server, "c_probe", texts={"text": "input staged"})
    assert wait_final(server, job_id, JOB) == "Succeeded"
    report = outputs(server, job_id)["report"].splitlines()
    assert report[:5] == [
        "uid 65534",
        "root-read-only",
        "inputs-read-only",
        "input-unchanged",
        "outputs-writable",
    ], report
    assert "CapEff:\t0000000000000000" in report
    if server.runtime == "podman":  # ch-run sets no no_new_privs flag; its user namespace holds no privilege
        assert "NoNewPrivs:\t1" in report
    assert report[-1] == "input input staged"


def test_a_container_cannot_reach_the_network(server, listener):
    host, port, accepted = listener
    job_id = submit(server, "c_net_open", literals={"host": host, "port": str(port)})  # the positive control
    assert wait_final(server, job_id, JOB) == "Succeeded"
    assert outputs(server, job_id)["result"] == "reached"
    wait_for(lambda: len(accepted) == 1, 5)
    for target in (host, "127.0.0.1"):
        job_id = submit(server, "c_net", literals={"host": target, "port": str(port)})
        assert wait_final(server, job_id, JOB) == "Succeeded"
        assert outputs(server, job_id)["result"] == "unreachable"
    time.sleep(0.5)
    assert len(accepted) == 1


def container_left(runtime: str, job_id: str) -> bool:
    """Whether anything of the job's container still runs: podman's container, or a ch-run process."""
    if runtime == "podman":
        listed = subprocess.run(
            ["podman", "ps", "-a", "--filter", f"name=hpc-wps-{job_id}", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return bool(listed.stdout.strip())
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if job_id.encode() in cmdline.read_bytes():
                return True
        except OSError:  # ended meanwhile
            continue
    return False


def test_dismiss_of_a_running_container_job_leaves_no_container(server):
    job_id = submit(server, "c_args", literals={"value": "x"})  # warm: the image is in the page cache
    assert wait_final(server, job_id, JOB) == "Succeeded"
    job_id = submit(server, "c_sleep", literals={"seconds": "300"})
    wait_for(lambda: container_left(server.runtime, job_id), JOB, 0.2)
    response = requests.get(
        server.url,
        params={"service": "WPS", "version": "2.0.0", "request": "Dismiss", "jobId": job_id},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    wait_for(lambda: not container_left(server.runtime, job_id), 60, 0.5)
