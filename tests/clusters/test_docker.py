"""Container processes end to end: ``hpc-wps serve`` with the docker executor on Podman's Docker API.

Every test talks HTTP to a real service and the service runs real containers; the few in-process
tests at the end drive the executor itself against the same engine. Outside CI they skip when Podman
is down (``scripts/podman.sh start``); in CI they fail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests

from tests.conftest import BUSYBOX_IMAGE, EXAMPLES_IMAGE, LiveServer, wait_for
from tests.xsd import OWS11, ROOT, WPS10, WPS20, validate

NS = {"wps": WPS20, "wps1": WPS10, "ows": OWS11}
HTTP_TIMEOUT = 30

# Test processes on the busybox image, beside the two shipped examples.
TEST_PROCESSES = r"""
[[process]]
identifier = "t_fail"
title = "Fails with a message on stderr"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", 'echo "half done"; echo "early noise" >&2; echo "broken on purpose: $1" >&2; exit 3', "t_fail", "{why}"]
inputs = [{ identifier = "why" }]
outputs = [{ identifier = "out", from = "stdout" }]

[[process]]
identifier = "t_sleep"
title = "Sleeps"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", 'sleep "$1"; echo "slept $1"', "t_sleep", "{seconds}"]
inputs = [{ identifier = "seconds", type = "integer", minimum = 0, maximum = 600 }]
outputs = [{ identifier = "said", from = "stdout" }]

[[process]]
identifier = "t_oom"
title = "Asks for more memory than it may have"
image = "localhost/hpc-wps/busybox:latest"
command = ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]
resources = { memory = "32MB" }

[[process]]
identifier = "t_args"
title = "Prints each argument on a line of its own"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", 'for a in "$@"; do printf "<%s>\n" "$a"; done', "t_args", "{value}", "{more}", ["--absent={absent}"]]
inputs = [
  { identifier = "value" },
  { identifier = "more", min_occurs = 0, max_occurs = 3 },
  { identifier = "absent", min_occurs = 0 },
]
outputs = [{ identifier = "args", formats = ["text/plain"], from = "stdout" }]

[[process]]
identifier = "t_probe"
title = "Reports what the container may do"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", '''
echo "uid $(id -u) gid $(id -g)"
touch /probe 2>/dev/null && echo root-writable || echo root-read-only
touch /inputs/probe 2>/dev/null && echo inputs-writable || echo inputs-read-only
touch /outputs/probe 2>/dev/null && echo outputs-writable || echo outputs-read-only
touch /tmp/probe 2>/dev/null && echo tmp-writable || echo tmp-read-only
grep -E "^(CapEff|NoNewPrivs)" /proc/self/status
echo "memory $(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)"
echo "pids $(cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null)"
echo "input $(cat "$1")"
''', "t_probe", "{text}"]
inputs = [{ identifier = "text", formats = ["text/plain"] }]
outputs = [{ identifier = "report", formats = ["text/plain"], from = "stdout" }]
resources = { memory = "48MB", pids = 40 }

[[process]]
identifier = "t_net"
title = "Tries to open a TCP connection"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", 'if nc -w 2 "$1" "$2" </dev/null; then echo reached; else echo unreachable; fi', "t_net", "{host}", "{port}"]
inputs = [{ identifier = "host" }, { identifier = "port", type = "integer" }]
outputs = [{ identifier = "result", from = "stdout" }]

[[process]]
identifier = "t_net_open"
title = "The same, with the network granted by the administrator"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", 'if nc -w 2 "$1" "$2" </dev/null; then echo reached; else echo unreachable; fi', "t_net", "{host}", "{port}"]
inputs = [{ identifier = "host" }, { identifier = "port", type = "integer" }]
outputs = [{ identifier = "result", from = "stdout" }]
relax = { network = "bridge" }

[[process]]
identifier = "t_limits"
title = "Reports its memory, CPU and time limits"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", '''
echo "memory $(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)"
echo "cpu $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us))"
sleep "$1"
''', "t_limits", "{seconds}"]
inputs = [{ identifier = "seconds", type = "integer", minimum = 0, maximum = 60 }]
outputs = [{ identifier = "report", formats = ["text/plain"], from = "stdout" }]
resources = { memory = "48MB", cores = 0.5 }
"""


# The same progress reporter asynchronously in the docker executor and, as t_progress_local, in the local pool.
PROGRESS_PROCESS = r"""
[[process]]
identifier = "t_progress"
title = "Reports progress in both forms of the progress file"
image = "localhost/hpc-wps/busybox:latest"
command = ["sh", "-c", '''
echo "40 reading the grid" > "$HPC_WPS_PROGRESS"
sleep "$1"
printf '{{"percent": 175, "message": "writing\033[31m the result"}}' > "$HPC_WPS_PROGRESS"
sleep "$1"
echo done
''', "t_progress", "{seconds}"]
inputs = [{ identifier = "seconds", type = "integer", minimum = 0, maximum = 60 }]
outputs = [{ identifier = "said", from = "stdout" }]
"""
TEST_PROCESSES += PROGRESS_PROCESS + PROGRESS_PROCESS.replace(
    'identifier = "t_progress"', 'identifier = "t_progress_local"'
)


def docker_config(docker_url: str, processes: Path) -> str:
    return (
        "[processing]\n"
        "[scheduler]\n"
        "local_processes = t_progress_local\n"
        "[docker]\n"
        f"url = {docker_url}\n"
        f"processes = {processes}\n"
        f"images = {BUSYBOX_IMAGE}, {EXAMPLES_IMAGE}\n"
        "memory = 64MB\n"
        "walltime = 120\n"
        "max_containers = 4\n"
        "max_memory = 256MB\n"
        "max_cores = 2\n"
        "max_walltime = 600\n"
    )


def make_server(root: Path, docker_url: str) -> LiveServer:
    processes = root / "containers.toml"
    processes.write_text((ROOT / "config" / "containers.example.toml").read_text() + TEST_PROCESSES)
    return LiveServer(root, docker_config(docker_url, processes))


@pytest.fixture(scope="module")
def server(docker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = make_server(tmp_path_factory.mktemp("docker"), docker_url).start()
    yield live
    live.stop()


# -- the protocol ---------------------------------------------------------------------------------------


def execute20(identifier: str, literals: dict[str, str | list[str]], texts: dict[str, str], mode: str) -> bytes:
    inputs = []
    for name, values in literals.items():
        for value in [values] if isinstance(values, str) else values:
            inputs.append(
                f'<wps:Input id="{name}"><wps:Data><wps:LiteralValue>{escape(value)}</wps:LiteralValue></wps:Data></wps:Input>'
            )
    for name, text in texts.items():
        inputs.append(f'<wps:Input id="{name}"><wps:Data mimeType="text/plain">{escape(text)}</wps:Data></wps:Input>')
    return (
        f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" '
        f'mode="{mode}" response="document"><ows:Identifier>{identifier}</ows:Identifier>{"".join(inputs)}</wps:Execute>'
    ).encode()


def submit(server: LiveServer, identifier: str, literals=None, texts=None) -> str:  # type: ignore[no-untyped-def]
    response = requests.post(
        server.url,
        data=execute20(identifier, literals or {}, texts or {}, "async"),
        headers={"Content-Type": "text/xml"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    root = validate(response.content)
    assert root.findtext(f"{{{WPS20}}}Status") == "Accepted"
    return root.findtext(f"{{{WPS20}}}JobID")


def kvp(server: LiveServer, **params: str):  # type: ignore[no-untyped-def]
    response = requests.get(server.url, params={"service": "WPS", "version": "2.0.0", **params}, timeout=HTTP_TIMEOUT)
    return validate(response.content)


def status(server: LiveServer, job_id: str) -> str:
    return kvp(server, request="GetStatus", jobId=job_id).findtext(f"{{{WPS20}}}Status")


def wait_final(server: LiveServer, job_id: str, timeout: float = 90) -> str:
    return wait_for(lambda: (s := status(server, job_id)) in ("Succeeded", "Failed", "Dismissed") and s, timeout, 0.1)


def outputs(server: LiveServer, job_id: str) -> dict[str, str]:
    root = kvp(server, request="GetResult", jobId=job_id)
    found = {}
    for output in root.iterfind(f"{{{WPS20}}}Output"):
        data = output.find(f"{{{WPS20}}}Data")
        literal = data.find(f"{{{WPS20}}}LiteralValue")
        found[output.get("id")] = (literal if literal is not None else data).text or ""
    return found


def failure_message(server: LiveServer, job_id: str) -> str:
    """The exception text of the WPS 1.0.0 status document (WPS 2.0 status carries no message)."""
    response = requests.get(f"{server.url}/jobs/{job_id}", timeout=HTTP_TIMEOUT)
    root = validate(response.content)
    assert root.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed") is not None
    return root.findtext(f".//{{{OWS11}}}ExceptionText")


def containers_of(docker_client, job_id: str) -> list:  # type: ignore[no-untyped-def]
    """The job's containers, listed in one call (sparse: no inspect that could race with a removal)."""
    return docker_client.containers.list(all=True, filters={"label": f"hpc-wps.job={job_id}"}, sparse=True)


def job_dir(server: LiveServer, job_id: str) -> Path:
    return server.workdir / "var" / "jobs" / job_id


def job_dirs(server: LiveServer) -> list[str]:
    jobs = server.workdir / "var" / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


# -- the shipped examples --------------------------------------------------------------------------------

TEXT = "The quick brown fox jumps over the lazy dog.\nThe dog sleeps; the fox runs!\n"


def test_wordcount_example_runs_asynchronously_to_success(server, docker_client):
    job_id = submit(server, "container_wordcount", texts={"text": TEXT})
    assert wait_final(server, job_id) == "Succeeded"
    result = outputs(server, job_id)
    counts = json.loads(result["counts"])
    assert counts == {
        "the": 4,
        "dog": 2,
        "fox": 2,
        "brown": 1,
        "jumps": 1,
        "lazy": 1,
        "over": 1,
        "quick": 1,
        "runs": 1,
        "sleeps": 1,
    }
    assert list(counts)[:3] == ["the", "dog", "fox"]  # most frequent first
    assert result["total"] == "15"
    wait_for(lambda: not containers_of(docker_client, job_id))  # removed once finalized
    kept = job_dir(server, job_id)
    assert (kept / "stdout.log").read_text().startswith('{"the": 4')
    assert not (kept / "container").exists()


def test_split_example_writes_several_files(server):
    text = "".join(f"line {n}\n" for n in range(1, 8))
    job_id = submit(server, "container_split", literals={"lines": "3"}, texts={"text": text})
    assert wait_final(server, job_id) == "Succeeded"
    result = outputs(server, job_id)
    assert result["head"] == "line 1\nline 2\nline 3\n"
    assert result["tail"] == "line 4\nline 5\nline 6\nline 7\n"
    assert result["line_count"] == "7"


def test_synchronous_execute_runs_the_container_in_the_web_worker(server):
    query = "service=WPS&version=1.0.0&request=Execute&identifier=t_args&DataInputs=value=sync%20run&RawDataOutput=args"
    response = requests.get(f"{server.url}?{query}", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.text == "<sync run>\n"


# -- failures --------------------------------------------------------------------------------------------


def test_non_zero_exit_fails_with_the_tail_of_stderr(server, docker_client):
    job_id = submit(server, "t_fail", literals={"why": "disk on fire"})
    assert wait_final(server, job_id) == "Failed"
    message = failure_message(server, job_id)
    assert message.startswith("the container exited with code 3:"), message
    assert message.endswith("early noise\nbroken on purpose: disk on fire"), message
    assert "half done" not in message  # stdout is no error
    wait_for(lambda: not containers_of(docker_client, job_id))
    assert (job_dir(server, job_id) / "stderr.log").read_text().endswith("broken on purpose: disk on fire\n")


def test_memory_limit_exceeded_is_reported_as_oom(server, docker_client):
    job_id = submit(server, "t_oom")
    assert wait_final(server, job_id) == "Failed"
    assert failure_message(server, job_id) == ("the container exceeded its memory limit of 32 MB (OOM) and was killed")
    wait_for(lambda: not containers_of(docker_client, job_id))


def test_dismiss_kills_and_removes_a_running_container(server, docker_client):
    job_id = submit(server, "t_sleep", literals={"seconds": "300"})
    wait_for(lambda: [c for c in containers_of(docker_client, job_id) if c.status == "running"], 30)
    assert status(server, job_id) == "Running"
    dismissed = kvp(server, request="Dismiss", jobId=job_id)
    assert dismissed.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    wait_for(lambda: not containers_of(docker_client, job_id), 30)
    assert status(server, job_id) == "Dismissed"
    wait_for(lambda: not job_dir(server, job_id).exists(), 30)


# -- progress and requested resources ----------------------------------------------------------------------


def progress(server: LiveServer, job_id: str) -> tuple[str | None, str | None]:
    """The percentage of WPS 2.0 GetStatus and the message of the WPS 1.0.0 status document (a job
    submitted through WPS 2.0 shows its message in ProcessAccepted there)."""
    percent = kvp(server, request="GetStatus", jobId=job_id).findtext(f"{{{WPS20}}}PercentCompleted")
    root = validate(requests.get(f"{server.url}/jobs/{job_id}", timeout=HTTP_TIMEOUT).content)
    return percent, root.find(f"{{{WPS10}}}Status")[0].text


@pytest.mark.parametrize("identifier", ["t_progress", "t_progress_local"])
def test_a_container_reports_progress_through_its_progress_file(server, identifier):
    job_id = submit(server, identifier, literals={"seconds": "4"})
    assert wait_for(lambda: progress(server, job_id) == ("40", "reading the grid"), 30, 0.1)
    # The JSON form; its percentage is kept within 0..100, its message loses the control character.
    assert wait_for(lambda: progress(server, job_id) == ("100", "writing[31m the result"), 30, 0.1)
    assert wait_final(server, job_id) == "Succeeded"
    assert outputs(server, job_id) == {"said": "done"}


def limits_report(server: LiveServer, literals: dict[str, str | list[str]]) -> list[str]:
    job_id = submit(server, "t_limits", literals={"seconds": "0", **literals})
    assert wait_final(server, job_id) == "Succeeded"
    return outputs(server, job_id)["report"].splitlines()


def test_requested_resources_set_the_container_limits(server):
    # The process's own limits (48 MB, half a core) when the request asks for none...
    assert limits_report(server, {}) == [f"memory {48 * 1024**2}", "cpu 50000 100000"]
    # ... and the request's, in fractions of a core too, within [docker] max_memory and max_cores.
    asked = {"resources.memory": "100MB", "resources.cores": "1.5"}
    assert limits_report(server, asked) == [f"memory {100 * 1024**2}", "cpu 150000 100000"]


def test_requested_walltime_ends_the_container(server, docker_client):
    job_id = submit(server, "t_limits", literals={"seconds": "60", "resources.walltime": "2"})
    assert wait_final(server, job_id, 40) == "Failed"
    assert failure_message(server, job_id) == "the container exceeded its time limit of 2 s and was killed"
    wait_for(lambda: not containers_of(docker_client, job_id))


def test_requested_walltime_ends_a_synchronous_container(server, docker_client):
    before = docker_client.containers.list(all=True, filters={"label": "hpc-wps.process=t_limits"}, sparse=True)
    query = "service=WPS&version=1.0.0&request=Execute&identifier=t_limits&DataInputs=seconds=60;resources.walltime=2"
    started = time.monotonic()
    response = requests.get(f"{server.url}?{query}", timeout=HTTP_TIMEOUT)
    assert time.monotonic() - started < 30
    root = validate(response.content)
    assert (
        root.findtext(f".//{{{OWS11}}}ExceptionText") == "the container exceeded its time limit of 2 s and was killed"
    )
    after = docker_client.containers.list(all=True, filters={"label": "hpc-wps.process=t_limits"}, sparse=True)
    assert len(after) == len(before)


@pytest.mark.parametrize(
    ("name", "value"), [("memory", "1GB"), ("cores", "2.5"), ("walltime", "601"), ("cores", "0"), ("queue", "long")]
)
def test_resources_beyond_the_docker_maxima_are_refused_before_a_job_exists(server, docker_client, name, value):
    before = docker_client.containers.list(all=True, filters={"label": "hpc-wps.process=t_limits"}, sparse=True)
    jobs = job_dirs(server)
    response = requests.post(
        server.url,
        data=execute20("t_limits", {"seconds": "0", f"resources.{name}": value}, {}, "async"),
        headers={"Content-Type": "text/xml"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 400, response.text
    found = validate(response.content).find("{*}Exception")
    assert (found.get("exceptionCode"), found.get("locator")) == ("InvalidParameterValue", f"resources.{name}")
    assert job_dirs(server) == jobs
    after = docker_client.containers.list(all=True, filters={"label": "hpc-wps.process=t_limits"}, sparse=True)
    assert len(after) == len(before)


# -- isolation ---------------------------------------------------------------------------------------------


def test_shell_looking_inputs_arrive_verbatim_as_single_arguments(server):
    tricky = ["; rm -rf / #", "$(reboot)", "`id`", "a b\tc", "'quoted' \"double\" \\ back", "{value}", "--x=$HOME"]
    job_id = submit(server, "t_args", literals={"value": tricky[0], "more": tricky[1:4]})
    assert wait_final(server, job_id) == "Succeeded"
    assert outputs(server, job_id)["args"] == "".join(f"<{v}>\n" for v in tricky[:4])
    job_id = submit(server, "t_args", literals={"value": tricky[4], "more": tricky[5:]})
    assert wait_final(server, job_id) == "Succeeded"
    assert outputs(server, job_id)["args"] == "".join(f"<{v}>\n" for v in tricky[4:])


def test_the_container_is_hardened(server):
    job_id = submit(server, "t_probe", texts={"text": "staged"})
    assert wait_final(server, job_id) == "Succeeded"
    report = outputs(server, job_id)["report"].splitlines()
    assert report[:5] == [
        "uid 65534 gid 65534",
        "root-read-only",
        "inputs-read-only",
        "outputs-writable",
        "tmp-writable",
    ]
    assert "CapEff:\t0000000000000000" in report
    assert "NoNewPrivs:\t1" in report
    assert f"memory {48 * 1024**2}" in report
    assert "pids 40" in report
    assert report[-1] == "input staged"


def host_address() -> str:
    """This machine's address on its main interface, which a container on a bridge reaches as well."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.255", 9))  # no packet is sent: this only picks the route
            address = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        address = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()[0]
    return address


@pytest.fixture
def listener() -> Iterator[tuple[str, int, list[str]]]:
    """A TCP listener on every interface of the host; yields its address, port and the peers it accepted."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            accepted.append(peer[0])
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield host_address(), server.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_container_cannot_reach_the_network(server, listener):
    host, port, accepted = listener
    # Positive control: the same probe from the host reaches the listener...
    busybox = "/bin/busybox" if Path("/bin/busybox").exists() else "busybox"
    from_host = subprocess.run([busybox, "nc", "-w", "2", host, str(port)], stdin=subprocess.DEVNULL, timeout=10)
    assert from_host.returncode == 0
    wait_for(lambda: len(accepted) == 1, 5)
    # ... and so does a container the administrator granted a network to.
    job_id = submit(server, "t_net_open", literals={"host": host, "port": str(port)})
    assert wait_final(server, job_id) == "Succeeded"
    assert outputs(server, job_id)["result"] == "reached"
    wait_for(lambda: len(accepted) == 2, 5)
    # The hardened container does not.
    job_id = submit(server, "t_net", literals={"host": host, "port": str(port)})
    assert wait_final(server, job_id) == "Succeeded"
    assert outputs(server, job_id)["result"] == "unreachable"
    time.sleep(0.5)
    assert len(accepted) == 2


# -- a restart of the service --------------------------------------------------------------------------------


def test_restart_while_a_container_runs_reattaches_and_finalizes_once(docker_url, docker_client, tmp_path):
    first = make_server(tmp_path, docker_url).start()
    try:
        job_id = submit(first, "t_sleep", literals={"seconds": "4"})
        running = wait_for(lambda: [c for c in containers_of(docker_client, job_id) if c.status == "running"], 30)
        container_id = running[0].id
    finally:
        first.stop()
    assert [c.id for c in containers_of(docker_client, job_id)] == [container_id]  # it outlived the service
    second = make_server(tmp_path, docker_url).start()
    try:
        assert wait_final(second, job_id, 60) == "Succeeded"
        assert outputs(second, job_id) == {"said": "slept 4"}
        wait_for(lambda: not containers_of(docker_client, job_id), 30)
        assert (job_dir(second, job_id) / "stdout.log").read_text() == "slept 4\n"
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        second.stop()


# -- a synchronous run whose web worker is killed ------------------------------------------------------------


def sync_sleeps(docker_client) -> list:  # type: ignore[no-untyped-def]
    return docker_client.containers.list(
        all=True, filters={"label": ["hpc-wps.mode=sync", "hpc-wps.process=t_sleep"]}, sparse=True
    )


def test_a_killed_web_worker_leaves_no_synchronous_container_behind(docker_url, docker_client, tmp_path):
    """kill -9 of the gunicorn worker waiting on a synchronous container: the dispatcher's sweep fails the
    job (its worker is gone) and removes the container, labelled with the job and this service's jobs."""
    live = make_server(tmp_path, docker_url).start()
    answers: list[object] = []

    def execute() -> None:
        query = "service=WPS&version=1.0.0&request=Execute&identifier=t_sleep&DataInputs=seconds=300"
        try:
            answers.append(requests.get(f"{live.url}?{query}", timeout=120).status_code)
        except requests.RequestException as exc:
            answers.append(exc)

    client = threading.Thread(target=execute, daemon=True)
    earlier = sync_sleeps(docker_client)
    try:
        client.start()
        running = wait_for(lambda: [c for c in sync_sleeps(docker_client) if c not in earlier], 30)
        job_id = running[0].attrs["Labels"]["hpc-wps.job"]
        with sqlite3.connect(tmp_path / "var" / "jobs.sqlite") as db:
            (holder,) = db.execute("SELECT claimed_by FROM jobs WHERE id = ?", (job_id,)).fetchone()
        worker = int(holder.split("/", 1)[1].split(":", 1)[0])  # host/pid:starttime|pidnamespace
        assert status(live, job_id) == "Running"
        os.kill(worker, signal.SIGKILL)
        client.join(30)
        assert answers and isinstance(answers[0], requests.ConnectionError)  # the client's answer died with it
        # Gone within the sweep interval (30 s), and the job failed with the true reason.
        wait_for(lambda: not containers_of(docker_client, job_id), 45, 0.5)
        assert status(live, job_id) == "Failed"
        assert failure_message(live, job_id) == "interrupted: the web worker running it stopped before it ended"
        assert "removing the container its stopped run left" in (tmp_path / "server.log").read_text()
    finally:
        live.stop()


# -- the executor in this process: images ------------------------------------------------------------------


def run_executor(tmp_path: Path, docker_url: str, image: str, allowed: str) -> dict:
    """Run one job of a busybox ``true`` process through the executor here; returns its result file."""
    from app.settings import load_settings
    from processes.container import container_process
    from processes.registry import Registry
    from scheduler.executors.base import JobSpec, NativeState
    from scheduler.executors.docker import DockerExecutor

    process = container_process(f"img_{abs(hash(image + allowed))}", "image check", image, ["true"])
    settings = load_settings(
        environ={
            "HPC_WPS_SERVER_WORKDIR": str(tmp_path),
            "HPC_WPS_DOCKER_URL": docker_url,
            "HPC_WPS_DOCKER_IMAGES": allowed,
        }
    )
    executor = DockerExecutor(settings.jobs, Registry([process]).get)
    job_id = f"job-{time.monotonic_ns()}"
    native = executor.submit(JobSpec(job_id, process.identifier, settings.jobs_dir / job_id, {"inputs": []}))
    wait_for(lambda: executor.poll_many([native])[native].state is NativeState.ENDED, 30)
    return json.loads((settings.jobs_dir / job_id / "result.json").read_text())


def test_images_outside_the_allow_list_are_refused(tmp_path, docker_url):
    result = run_executor(tmp_path, docker_url, BUSYBOX_IMAGE, EXAMPLES_IMAGE)
    assert result["status"] == "failed"
    assert result["message"] == f"image {BUSYBOX_IMAGE} is not among the images [docker] images allows"


def test_pinned_digests_are_checked_against_the_local_image(tmp_path, docker_url, docker_client):
    image = docker_client.images.get(BUSYBOX_IMAGE)
    repo_digest = image.attrs["RepoDigests"][0].rpartition("@")[2]
    for pinned in (image.id, repo_digest):  # the image id and the repository digest both pin it
        result = run_executor(tmp_path, docker_url, BUSYBOX_IMAGE, f"localhost/hpc-wps/busybox@{pinned}")
        assert result["status"] == "succeeded", result
    wrong = "sha256:" + "0" * 64
    result = run_executor(tmp_path, docker_url, BUSYBOX_IMAGE, f"localhost/hpc-wps/busybox@{wrong}")
    assert result["status"] == "failed"
    assert f"does not have the pinned digest {wrong}" in result["message"]
    result = run_executor(tmp_path, docker_url, "localhost/hpc-wps/nosuch:latest", "localhost/hpc-wps/*")
    assert result["message"].endswith("is not present on the container engine (hpc-wps never pulls images)")
