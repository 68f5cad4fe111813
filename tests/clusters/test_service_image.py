"""The service's own image (Dockerfile): built once per session with Podman, then run as a user would,
and used as ``[docker] python_image`` to run Python processes in containers (``mode = docker``).

Slow (the build installs Python and the project: about a minute). Outside CI the tests skip when
Podman or the Debian base image is missing; in CI they fail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.clusters.test_docker import containers_of, kvp, outputs, wait_final
from tests.conftest import LOCAL_HOSTS, LiveServer, free_port, need_backend, serve_directory, wait_for
from tests.xsd import ROOT, WPS10, WPS20, validate

pytestmark = pytest.mark.slow

SERVICE_IMAGE = "localhost/hpc-wps/service:test"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
HTTP_TIMEOUT = 30


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="session")
def service_image(docker_url: str) -> str:
    """The image built from the working tree's Dockerfile, once per test session."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        need_backend(f"{BASE_IMAGE} is missing (scripts/podman.sh images debian)")
    build = subprocess.run(
        [str(ROOT / "scripts" / "build-service-image.sh"), SERVICE_IMAGE],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return SERVICE_IMAGE


@pytest.fixture
def running_service(service_image: str) -> Iterator[tuple[str, str]]:
    """The image run as a user would: port published on 127.0.0.1, the work directory a volume."""
    port = free_port()
    name = f"hpc-wps-test-{port}"
    url = f"http://127.0.0.1:{port}/wps"
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--network=bridge",  # this machine's containers.conf defaults to no network
        "-p",
        f"127.0.0.1:{port}:5000",
        "-e",
        f"HPC_WPS_SERVER_URL={url}",
        "-e",
        "HPC_WPS_PROCESSING_SLOTS=2",
        service_image,
    )
    try:
        yield name, url
    finally:
        logs = podman("logs", name, check=False).stdout
        podman("rm", "-f", "-v", name, check=False)
        assert "Traceback" not in logs, logs


def answers(url: str) -> bool:
    try:
        return requests.get(url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=5).ok
    except requests.RequestException:
        return False


def test_the_image_serves_wps_and_runs_asynchronous_jobs(running_service):
    name, url = running_service
    wait_for(lambda: answers(url), 90, 0.5)
    capabilities = requests.get(url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=HTTP_TIMEOUT)
    root = validate(capabilities.content)
    assert root.tag == f"{{{WPS10}}}Capabilities"
    assert root.xpath("//wps:Process/ows:Identifier/text()", namespaces={"wps": WPS10, "ows": root.nsmap["ows"]})
    query = "service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=1&storeExecuteResponse=true&status=true"
    accepted = validate(requests.get(f"{url}?{query}", timeout=HTTP_TIMEOUT).content)
    location = accepted.get("statusLocation")
    assert location.startswith(f"{url}/jobs/")

    def succeeded():  # type: ignore[no-untyped-def]
        document = validate(requests.get(location, timeout=HTTP_TIMEOUT).content)
        return document.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessSucceeded") is not None and (document,)

    (document,) = wait_for(succeeded, 60, 0.2)
    assert document.xpath("//wps:LiteralData/text()", namespaces={"wps": WPS10}) == ["slept for 1.0 seconds"]
    assert podman("exec", name, "id", "-u").stdout.strip() == "999"  # not root
    assert podman("healthcheck", "run", name, check=False).returncode == 0
    assert "Listening at: http://0.0.0.0:5000" in podman("logs", name).stderr


# -- mode = docker: Python processes in the service image -----------------------------------------------------


def test_mode_docker_runs_python_processes_in_the_service_image(service_image, docker_url, docker_client, tmp_path):
    config = (
        "[processing]\n"
        "mode = docker\n"
        "[docker]\n"
        f"url = {docker_url}\n"
        f"images = {service_image}\n"
        f"python_image = {service_image}\n"
        "memory = 256MB\n"
        "[inputs]\n"
        f"allowed_hosts = {LOCAL_HOSTS}\n"  # the test's own data server on 127.0.0.1
    )
    server = LiveServer(tmp_path / "server", config).start()
    try:
        response = requests.post(
            server.url,
            data=(
                '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
                'service="WPS" version="2.0.0" mode="async" response="document"><ows:Identifier>sleep</ows:Identifier>'
                '<wps:Input id="delay"><wps:Data><wps:LiteralValue>4</wps:LiteralValue></wps:Data></wps:Input>'
                "</wps:Execute>"
            ),
            headers={"Content-Type": "text/xml"},
            timeout=HTTP_TIMEOUT,
        )
        job_id = validate(response.content).findtext("{http://www.opengis.net/wps/2.0}JobID")
        running = wait_for(lambda: containers_of(docker_client, job_id), 30)
        assert running[0].attrs["Labels"]["hpc-wps.process"] == "sleep"
        # Its progress, written by the launcher in the container into status.json, reaches GetStatus.
        percent = f"{{{WPS20}}}PercentCompleted"
        steps = ("20", "40", "60", "80")
        wait_for(lambda: kvp(server, request="GetStatus", jobId=job_id).findtext(percent) in steps, 30, 0.1)
        assert wait_final(server, job_id, 90) == "Succeeded"
        assert outputs(server, job_id) == {"sleep_output": "slept for 4.0 seconds"}
        wait_for(lambda: not containers_of(docker_client, job_id), 30)

        # An input by reference is fetched before the container starts: the container has no network.
        texts = tmp_path / "texts"
        texts.mkdir()
        (texts / "words.txt").write_text("to be or not to be")
        with serve_directory(texts) as base:
            body = (
                '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
                'xmlns:xlink="http://www.w3.org/1999/xlink" service="WPS" version="2.0.0" mode="async" '
                'response="document"><ows:Identifier>wordcounter</ows:Identifier>'
                f'<wps:Input id="text"><wps:Reference xlink:href="{base}/words.txt" mimeType="text/plain"/></wps:Input>'
                "</wps:Execute>"
            )
            response = requests.post(server.url, data=body, headers={"Content-Type": "text/xml"}, timeout=HTTP_TIMEOUT)
            job_id = validate(response.content).findtext("{http://www.opengis.net/wps/2.0}JobID")
            assert wait_final(server, job_id, 90) == "Succeeded"
        assert json.loads(outputs(server, job_id)["output"]) == {"to": 2, "be": 2, "or": 1, "not": 1}
        job_dir = Path(server.workdir) / "var" / "jobs" / job_id
        assert (job_dir / "payload.dill").exists() and not (job_dir / "staged").exists()
        assert kvp(server, request="GetStatus", jobId=job_id).findtext("{http://www.opengis.net/wps/2.0}Status")
    finally:
        server.stop()
