"""Fixtures: settings on a temporary work directory, the job table on SQLite or PostgreSQL, a test
client that validates every XML document it receives, and a real server started on a free port."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app import create_app
from app.settings import Settings, load_settings
from migrations import upgrade
from tests.xsd import IN_CI, ROOT, validate

# The test's own HTTP servers for inputs by reference listen here: references may reach them only
# because the settings allow it, as an administrator allows an internal data server.
LOCAL_HOSTS = "127.0.0.1/32"
PG_ADMIN_URL = os.environ.get("HPC_WPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fresh_pg_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new database with a random name on the PostgreSQL server of ``admin_url``, dropped at the end.

    A server out of reach is a skip outside CI and a failure in CI.
    """
    name = f"hpcwps_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        need_backend(f"PostgreSQL is not reachable at {admin_url}: {exc}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    base = load_settings(environ={})
    base = base.replace("server", workdir=tmp_path / "work", url="http://testserver/wps")
    base = base.replace("database", url=database_url)
    base = base.replace(
        "inputs",
        allowed_dirs=(allowed,),
        allowed_hosts=(LOCAL_HOSTS,),
        connect_timeout=2.0,
        read_timeout=2.0,
        total_timeout=5.0,
    )
    base = base.replace("processing", sync_time_limit=20.0)
    upgrade(base.database_url)
    if database_url.startswith("postgresql"):  # one database per session: each test starts with no jobs
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE jobs, dispatchers"))
        engine.dispose()
    return base


class ValidatingClient:
    """A Flask test client whose every XML response is validated against the OGC schemas."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def _check(self, response):  # type: ignore[no-untyped-def]
        if response.mimetype == "text/xml":
            assert response.headers["Content-Type"] == "text/xml", response.headers["Content-Type"]
            response.xml = validate(response.get_data())
        return response

    def get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._check(self.client.get(*args, **kwargs))

    def post(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._check(self.client.post(*args, **kwargs))


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    application.testing = True
    yield application
    application.extensions["hpc_wps"].engine.dispose()


@pytest.fixture
def wps(app) -> ValidatingClient:  # type: ignore[no-untyped-def]
    return ValidatingClient(app.test_client())


def client_of(settings: Settings, checking: type = ValidatingClient) -> Iterator[Any]:
    """The app of these settings behind a checking client (of WPS by default, ``ApiClient`` for OGC
    API - Processes); its engine is disposed of at the end."""
    application = create_app(settings)
    application.testing = True
    yield checking(application.test_client())
    application.extensions["hpc_wps"].engine.dispose()


@pytest.fixture
def oidc_client(settings: Settings, tmp_path: Path) -> Iterator[ValidatingClient]:
    """The app with [auth] mode = oidc, trusting the keys of a fresh ``tests.tokens.Provider``."""
    from tests.tokens import AUDIENCE, ISSUER, Provider

    jwks = Provider().write_jwks(tmp_path / "jwks.json")
    yield from client_of(settings.replace("auth", mode="oidc", jwks_file=str(jwks), issuer=ISSUER, audience=AUDIENCE))


@pytest.fixture
def header_client(settings: Settings) -> Iterator[ValidatingClient]:
    """The app with [auth] mode = header, believing X-Remote-User from 127.0.0.1 only."""
    yield from client_of(settings.replace("auth", mode="header", trusted_proxies=("127.0.0.1/32",)))


class LiveServer:
    """``hpc-wps serve`` in a child process on a free port, as a user runs it."""

    def __init__(self, workdir: Path, extra_config: str = "", database_url: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/wps"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "hpc-wps.cfg"
        database = f"[database]\nurl = {database_url}\n" if database_url else ""
        self.config.write_text(
            f"[server]\nport = {self.port}\nworkdir = {workdir / 'var'}\nworkers = 2\n{database}{extra_config}",
            encoding="utf-8",
        )
        self.log = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        env = dict(os.environ)
        env.pop("HPC_WPS_CONFIG", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "--config", str(self.config), "serve"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if requests.get(self.url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=2).ok:
                    return self
            except requests.RequestException:  # not listening yet, or too busy to answer in time
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer within 60 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live"), f"[inputs]\nallowed_hosts = {LOCAL_HOSTS}\n").start()
    yield server
    server.stop()


def settings_environ(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process (dispatcher, server) these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_WPS_")}
    env.update(
        HPC_WPS_SERVER_URL=settings.server.url,
        HPC_WPS_SERVER_WORKDIR=str(settings.server.workdir),
        HPC_WPS_DATABASE_URL=settings.database_url,
        HPC_WPS_INPUTS_ALLOWED_DIRS=",".join(str(d) for d in settings.inputs.allowed_dirs),
        HPC_WPS_INPUTS_ALLOWED_HOSTS=",".join(settings.inputs.allowed_hosts),
        HPC_WPS_PROCESSING_SLOTS=str(settings.processing.slots),
        HPC_WPS_PROCESSING_POLL_INTERVAL="0.05",
        HPC_WPS_MONITORING_HEARTBEAT_INTERVAL=str(settings.monitoring.heartbeat_interval),
        HPC_WPS_MONITORING_HEARTBEAT_TIMEOUT=str(settings.monitoring.heartbeat_timeout),
    )
    env.update({f"HPC_WPS_CALLBACKS_{k.upper()}": str(v) for k, v in dataclasses.asdict(settings.callbacks).items()})
    return env


@contextlib.contextmanager
def run_dispatcher(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``hpc-wps dispatcher`` on these settings, its output in ``log_path``, stopped (SIGTERM) at the end."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dispatcher"],
            cwd=ROOT,
            env=settings_environ(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


@pytest.fixture
def dispatcher(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real dispatcher process on the test's job table, stopped (SIGTERM) at the end."""
    with run_dispatcher(settings, tmp_path / "dispatcher.log") as process:
        yield process


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value {value!r}")


class _QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) from a thread; yields the base URL.

    Stands in for the remote hosts of inputs by reference: the service fetches from it like any URL.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFileHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def slurm_problem() -> str | None:
    """Why the single-node Slurm of scripts/clusters.sh cannot run jobs now; None when it can."""
    import shutil

    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "Slurm's commands (sbatch, squeue) are not installed"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo did not answer: {exc}"
    if done.returncode != 0:
        return f"sinfo failed: {done.stderr.strip()}"
    usable = [line for line in done.stdout.split("\n") if line.split()[:1] == ["up"] and "down" not in line]
    if not any(line.split()[1].rstrip("*~#!%$@^-") in ("idle", "mix", "alloc", "comp") for line in usable):
        return f"no partition is up with a usable node: {done.stdout.strip()!r}"
    return None


@pytest.fixture(scope="session")
def slurm() -> None:
    """A Slurm that runs jobs (scripts/clusters.sh start): a skip without one, a failure in CI."""
    problem = slurm_problem()
    if problem:
        message = f"Slurm is not up ({problem}); start it with scripts/clusters.sh start"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


# -- containers: Podman's Docker API and the local images -------------------------------------------------

PODMAN_SCRIPT = ROOT / "scripts" / "podman.sh"
BUSYBOX_IMAGE = "localhost/hpc-wps/busybox:latest"
EXAMPLES_IMAGE = "localhost/hpc-wps/examples:latest"


def need_backend(message: str) -> None:
    """A missing real backend: a failure in CI, a skip elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_url() -> str:
    """The Docker Engine API of Podman (``scripts/podman.sh start``) with the test images in place.

    The example image is (re)built here when missing or stale: it takes a second and comes from the
    local busybox image, which ``scripts/podman.sh images`` builds.
    """
    status = subprocess.run([str(PODMAN_SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    if status.returncode != 0:
        need_backend(f"Podman's Docker API is down (scripts/podman.sh start): {status.stdout}{status.stderr}")
    if BUSYBOX_IMAGE not in status.stdout:
        need_backend(f"{BUSYBOX_IMAGE} is missing (scripts/podman.sh images busybox)")
    build = subprocess.run(
        [str(ROOT / "scripts" / "build-example-images.sh")], capture_output=True, text=True, timeout=600
    )
    if build.returncode != 0:
        need_backend(f"cannot build {EXAMPLES_IMAGE}: {build.stderr}")
    exported = subprocess.run([str(PODMAN_SCRIPT), "env"], capture_output=True, text=True, timeout=30).stdout
    return os.environ.get("DOCKER_HOST") or exported.strip().rpartition("DOCKER_HOST=")[2]


@pytest.fixture(scope="session")
def docker_client(docker_url: str):  # type: ignore[no-untyped-def]
    import docker

    client = docker.DockerClient(base_url=docker_url, timeout=60)
    yield client
    client.close()


class ApiClient:
    """A Flask test client for OGC API - Processes whose every JSON answer (documents and problems) is
    checked: a problem against the official exception schema, with its status; a document is
    validated by the test against the schema of what it asked for (``tests/ogcapi_json.py``)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def _check(self, response):  # type: ignore[no-untyped-def]
        if response.mimetype == "application/problem+json":
            from tests.ogcapi_json import validate as validate_json

            body = validate_json(response.get_json(), "exception")
            assert body["status"] == response.status_code, body
            assert body["detail"], body
        return response

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._check(self.client.open(*args, **kwargs))

    def get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._check(self.client.get(*args, **kwargs))

    def post(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._check(self.client.post(*args, **kwargs))

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._check(self.client.delete(*args, **kwargs))


@pytest.fixture
def api(app) -> ApiClient:  # type: ignore[no-untyped-def]
    return ApiClient(app.test_client())
