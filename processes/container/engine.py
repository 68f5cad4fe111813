"""Running a container spec through the Docker Engine API: staging, hardening, outputs, failures.

Shared by the container handler (synchronous Execute, the local pool) and the docker executor
(asynchronous jobs), so a container process behaves the same whichever way it runs. The ``docker``
package is imported only when a container is really run.

Layout in a job directory::

    container/inputs/    staged inputs, mounted read-only at /inputs
    container/outputs/   mounted writable at /outputs (the working directory)
    container/progress/  mounted writable at /progress: the progress file the container may write
    stdout.log           the container's standard output (kept after the container is removed)
    stderr.log           its standard error; the tail of it explains a failure
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from processes.container.images import ImageRefused, admitted, digest_matches
from processes.container.progress import PROGRESS_ENV, PROGRESS_FILE, PROGRESS_MOUNT, Progress, read_progress
from processes.container.settings import DockerSettings
from processes.container.spec import (
    INPUTS_DIR,
    OUTPUTS_DIR,
    ContainerSpec,
    Relaxations,
    render_command,
)
from processes.context import ProcessError
from processes.model import (
    BoundingBoxInput,
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    LiteralInput,
    LiteralOutput,
    Process,
)
from processes.values import BoundingBox, ComplexValue, InputValue, LiteralValue

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

    from processes.context import JobContext

log = logging.getLogger(__name__)

CONTAINER_DIR = "container"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
LABEL_JOB = "hpc-wps.job"
LABEL_PROCESS = "hpc-wps.process"
LABEL_MODE = "hpc-wps.mode"
# The jobs directory of the service that runs a synchronous container: that service's dispatcher removes
# the container once its job is no longer active, and leaves other services' containers on the engine alone.
LABEL_JOBS = "hpc-wps.jobs"
KILLED_EXIT = 137  # 128 + SIGKILL: kill(), and the kernel's OOM killer, which the engine does not tell apart
LITERAL_OUTPUT_LIMIT = 1024**2  # bytes read of a file or stdout that holds a literal output
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000
WAIT_SLICE = 1.0  # seconds of one wait on a container run here: how often its progress file is read
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


class EngineError(Exception):
    """The container engine could not be reached or refused a request."""


@dataclass(frozen=True)
class Limits:
    memory: int  # bytes
    cores: float
    pids: int
    walltime: float  # seconds

    @property
    def memory_mb(self) -> int:
        return max(1, -(-self.memory // 1024**2))


def limits_for(
    spec: ContainerSpec | None, docker: DockerSettings, requested: Mapping[str, Any] | None = None
) -> Limits:
    """The request's resources (``resources.cores``, ``memory``, ``walltime``, bounded by ``[docker]
    max_*`` when the job was accepted), else the process's own, else the [docker] defaults."""
    asked = requested or {}
    return Limits(
        memory=int(asked.get("memory") or (spec and spec.memory) or docker.memory),
        cores=float(asked.get("cores") or (spec and spec.cores) or docker.cores),
        pids=(spec and spec.pids) or docker.pids,
        walltime=float(asked.get("walltime") or (spec and spec.walltime) or docker.walltime),
    )


@dataclass(frozen=True)
class JobPaths:
    """Where a job's container files live: logs in the job directory, the mounts below ``root``."""

    job_dir: Path
    root: Path | None = None  # default: job_dir/container

    @property
    def container_dir(self) -> Path:
        return self.root or self.job_dir / CONTAINER_DIR

    @property
    def inputs(self) -> Path:
        return self.container_dir / "inputs"

    @property
    def outputs(self) -> Path:
        return self.container_dir / "outputs"

    @property
    def progress(self) -> Path:
        """Mounted writable at /progress: the container's progress file (``progress.py``)."""
        return self.container_dir / "progress"

    @property
    def progress_file(self) -> Path:
        """Where the container's ``$HPC_WPS_PROGRESS`` is seen from here."""
        return self.progress / PurePosixPath(PROGRESS_FILE).name

    @property
    def stdout(self) -> Path:
        return self.job_dir / STDOUT_LOG

    @property
    def stderr(self) -> Path:
        return self.job_dir / STDERR_LOG


# -- the engine ---------------------------------------------------------------------------------------


def engine_url(docker: DockerSettings) -> str:
    """The configured engine (the configuration fills in DOCKER_HOST when no url is set), else the
    engine's usual socket."""
    return docker.url or "unix:///var/run/docker.sock"


_api_version: str | None = None  # learned once per process (and its forked children): asking costs ~0.5 s on Podman


def make_client(docker: DockerSettings) -> DockerClient:
    """A client with the configured timeout on every call. Never share one across a fork."""
    global _api_version
    try:
        import docker as docker_sdk
    except ImportError:
        raise EngineError("the docker package is missing: pip install 'hpc-wps[docker]'") from None
    try:
        client = docker_sdk.DockerClient(
            base_url=engine_url(docker), timeout=max(1, int(docker.timeout)), version=_api_version
        )
    except docker_sdk.errors.DockerException as exc:
        raise EngineError(f"cannot reach the container engine at {engine_url(docker)}: {exc}") from None
    _api_version = client.api.api_version
    return client


def resolve_image(client: DockerClient, image: str, allowed: tuple[str, ...]) -> str:
    """The id of the local image ``image`` once the allow-list and any pinned digest admit it.

    Images are never pulled: an administrator builds or pulls them beforehand.
    """
    from docker.errors import ImageNotFound

    ref, digests = admitted(image, allowed)
    found = None
    for candidate in (ref.name, image):
        with contextlib.suppress(ImageNotFound):
            found = client.images.get(candidate)
            break
    if found is None:
        raise ImageRefused(f"image {image} is not present on the container engine (hpc-wps never pulls images)")
    if not digest_matches(digests, found.id, found.attrs.get("RepoDigests") or ()):
        raise ImageRefused(f"image {image}: the local image {found.id} does not have the pinned digest {digests[0]}")
    return found.id


# -- staging --------------------------------------------------------------------------------------------


def _extension(declared: ComplexInput, mime_type: str | None) -> str:
    for fmt in declared.formats:
        if fmt.mime_type == mime_type:
            return fmt.extension
    return declared.formats[0].extension if declared.formats else ".dat"


def stage_inputs(
    process: Process, spec: ContainerSpec, inputs: Mapping[str, list[InputValue]], inputs_dir: Path, work: Path
) -> dict[str, list[str]]:
    """Put every input where the container sees it; returns each input's argument strings.

    Complex values become files in ``inputs_dir`` (moved when they were fetched into ``work``, copied
    when they are an allowed local file), literals become their text (or a file when the process asks
    for them as files), bounding boxes ``minx,miny,maxx,maxy``.
    """
    inputs_dir.mkdir(parents=True, exist_ok=True)
    arguments: dict[str, list[str]] = {}
    for declared in process.inputs:
        values = inputs.get(declared.identifier, [])
        base = _SAFE_NAME.sub("_", declared.identifier)
        args = []
        for index, value in enumerate(values):
            suffix = "" if len(values) == 1 else f".{index + 1}"
            if isinstance(value, ComplexValue) and isinstance(declared, ComplexInput):
                name = f"{base}{suffix}{_extension(declared, value.mime_type)}"
                if value.path.resolve().is_relative_to(work.resolve()):
                    os.replace(value.path, inputs_dir / name)
                else:
                    shutil.copyfile(value.path, inputs_dir / name)
                args.append(f"{INPUTS_DIR}/{name}")
            elif isinstance(value, LiteralValue) and isinstance(declared, LiteralInput):
                text = declared.type.format(value.value)
                if declared.identifier in spec.literal_files:
                    name = f"{base}{suffix}.txt"
                    (inputs_dir / name).write_text(text, encoding="utf-8")
                    args.append(f"{INPUTS_DIR}/{name}")
                else:
                    args.append(text)
            elif isinstance(value, BoundingBox) and isinstance(declared, BoundingBoxInput):
                args.append(",".join(repr(float(c)) for c in (*value.lower, *value.upper)))
            else:
                raise ProcessError(f"input {declared.identifier}: unexpected value {type(value).__name__}")
        arguments[declared.identifier] = args
    for path in inputs_dir.iterdir():
        path.chmod(0o644)
    inputs_dir.chmod(0o755)
    return arguments


def _ids(user: str) -> tuple[int, int] | None:
    uid, _, gid = user.partition(":")
    return (int(uid), int(gid or uid)) if uid.isdigit() and (gid or uid).isdigit() else None


def prepare_outputs_dir(path: Path, user: str | None) -> None:
    """The writable mount: owned by the container's user when we may chown, else writable by all."""
    path.mkdir(parents=True, exist_ok=True)
    ids = _ids(user or "0:0")
    if ids is not None and os.geteuid() == 0:
        os.chown(path, *ids)
        path.chmod(0o755)
    else:
        path.chmod(0o777)


def prepare_mounts(paths: JobPaths, user: str | None) -> None:
    """The writable mounts of a container process: /outputs and /progress."""
    for path in (paths.outputs, paths.progress):
        prepare_outputs_dir(path, user)


def container_user(docker: DockerSettings, relax: Relaxations) -> str:
    return "0:0" if relax.root else docker.user


def create_options(
    spec: ContainerSpec,
    docker: DockerSettings,
    relax: Relaxations,
    limits: Limits,
    paths: JobPaths,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The keyword arguments of ``containers.create`` besides image and command: hardened by default.

    ``network_mode="none"`` (``network_disabled`` does not isolate through Podman's API), a read-only
    root filesystem with a small tmpfs /tmp, every capability dropped, no-new-privileges, and limits on
    memory (swap included), CPU and processes. ``relax`` (from the administrator's configuration only)
    loosens network, user, read-only and capabilities, nothing else.
    """
    options: dict[str, Any] = {
        "labels": dict(labels),
        "network_mode": relax.network,
        "read_only": relax.read_only,
        "tmpfs": {"/tmp": f"rw,size={docker.tmpfs_size},mode=1777"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "pids_limit": limits.pids,
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,
        "nano_cpus": int(limits.cores * 1e9),
        "user": container_user(docker, relax),
        "volumes": {
            str(paths.inputs): {"bind": INPUTS_DIR, "mode": "ro"},
            str(paths.outputs): {"bind": OUTPUTS_DIR, "mode": "rw"},
            str(paths.progress): {"bind": PROGRESS_MOUNT, "mode": "rw"},
        },
        "working_dir": spec.workdir,
        "environment": {"HOME": "/tmp", "TMPDIR": "/tmp", **dict(spec.env), PROGRESS_ENV: PROGRESS_FILE},
    }
    if relax.cap_add:
        options["cap_add"] = list(relax.cap_add)
    if spec.entrypoint is not None:
        options["entrypoint"] = list(spec.entrypoint)
    return options


def start_container(
    client: DockerClient,
    image_id: str,
    argv: list[str],
    options: dict[str, Any],
    created: Callable[[Container], None] | None = None,
) -> Container:
    """Create, call ``created`` (to record the id), start; a container that does not start is removed."""
    container = client.containers.create(image_id, argv, **options)
    try:
        if created is not None:
            created(container)
        container.start()
    except BaseException:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        raise
    return container


# -- ending -----------------------------------------------------------------------------------------------


def save_logs(container: Container, paths: JobPaths, limit: int) -> None:
    """Standard output and error into the job directory, each cut at ``limit`` bytes."""
    for path, want_stdout in ((paths.stdout, True), (paths.stderr, False)):
        size = 0
        with path.open("wb") as out:
            for chunk in container.logs(stdout=want_stdout, stderr=not want_stdout, stream=True, follow=False):
                if size + len(chunk) > limit:
                    out.write(chunk[: limit - size])
                    break
                size += len(chunk)
                out.write(chunk)


def stderr_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16 * STDERR_TAIL_CHARS))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.strip().splitlines()[-STDERR_TAIL_LINES:])
    return tail[-STDERR_TAIL_CHARS:]


def failure(exit_code: int, killed: str | None, limits: Limits, stderr: Path) -> str | None:
    """Why the container failed, in words for the client; None when it succeeded.

    The engine does not report an out-of-memory kill (``OOMKilled`` stays false and the exit code is
    137, as after ``kill``), so a 137 we did not cause ourselves is taken for the memory limit.
    """
    if killed == "timeout":
        return f"the container exceeded its time limit of {limits.walltime:g} s and was killed"
    if killed:
        return f"the container was killed ({killed})"
    if exit_code == 0:
        return None
    if exit_code == KILLED_EXIT:
        return f"the container exceeded its memory limit of {limits.memory_mb} MB (OOM) and was killed"
    tail = stderr_tail(stderr)
    return f"the container exited with code {exit_code}" + (f": {tail}" if tail else " and wrote nothing to stderr")


def _regular_file(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a regular file inside ``root`` (no symbolic link leads out)."""
    path = root / relative
    try:
        info = os.lstat(path)
    except OSError:
        return None
    real = Path(os.path.realpath(path))
    if not stat.S_ISREG(info.st_mode) or not real.is_relative_to(Path(os.path.realpath(root))):
        return None
    return path


def _read_text(path: Path, output_id: str) -> str:
    with path.open("rb") as handle:
        data = handle.read(LITERAL_OUTPUT_LIMIT + 1)
    if len(data) > LITERAL_OUTPUT_LIMIT:
        raise ProcessError(f"output {output_id}: a literal output may not exceed {LITERAL_OUTPUT_LIMIT} bytes")
    return data.decode("utf-8", errors="replace").strip()


def read_outputs(process: Process, spec: ContainerSpec, paths: JobPaths) -> dict[str, Any]:
    """The outputs' values as the runtime's collect_outputs takes them; raises ProcessError for a
    missing required output or a literal that does not read as its type."""
    values: dict[str, Any] = {}
    for output_id, src in spec.outputs:
        declared = process.output(output_id)
        path = paths.stdout if src.is_stdout else _regular_file(paths.outputs, src.file or "")
        if path is None or not path.exists():
            if src.optional:
                continue
            raise ProcessError(f"the container did not write its output {output_id} ({src.describe()})")
        if isinstance(declared, LiteralOutput):
            try:
                values[output_id] = declared.type.read(_read_text(path, output_id))
            except ValueError as exc:
                raise ProcessError(f"output {output_id}: {exc}") from None
        elif isinstance(declared, ComplexOutput):
            values[output_id] = path
        elif isinstance(declared, BoundingBoxOutput):
            text = _read_text(path, output_id)
            try:
                numbers = [float(n) for n in text.replace(",", " ").split()]
            except ValueError:
                raise ProcessError(f"output {output_id}: {text!r} is not minx,miny,maxx,maxy") from None
            if len(numbers) % 2 or not numbers:
                raise ProcessError(f"output {output_id}: {text!r} is not minx,miny,maxx,maxy")
            half = len(numbers) // 2
            values[output_id] = BoundingBox(tuple(numbers[:half]), tuple(numbers[half:]))
    return values


@contextlib.contextmanager
def removing(container: Container) -> Iterator[Container]:
    try:
        yield container
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


# -- the handler: run and wait here -------------------------------------------------------------------


def _wait_reporting(container: Container, walltime: float, progress_file: Path, job: JobContext) -> int | None:
    """The container's exit code; None once ``walltime`` has passed. Waits in slices of WAIT_SLICE,
    between which the container's progress file is read and what changed reported."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ReadTimeout

    deadline = time.monotonic() + walltime
    reported: Progress | None = None
    while (left := deadline - time.monotonic()) > 0:
        began = time.monotonic()
        try:
            return int(container.wait(timeout=min(WAIT_SLICE, left))["StatusCode"])
        except (ReadTimeout, RequestsConnectionError):
            # A read timeout may come as a ConnectionError; one at once (an engine that refuses) must
            # not make this loop spin: the rest of the slice is slept.
            time.sleep(max(0.0, min(WAIT_SLICE, left) - (time.monotonic() - began)))
            found = read_progress(progress_file)
            if found is not None and found != reported:
                reported = found
                job.update_status(found.message, found.percent)
    return None


def run_in_handler(spec: ContainerSpec, relax: Relaxations, job: JobContext) -> None:
    """Run the container of ``job`` and wait for it: synchronous Execute and the local pool.

    The wait ends at the process's wall-clock limit; a time limit of the caller (SIGALRM) interrupts
    it too, and the container is removed in every case. The container's progress is reported as the
    job's while it runs.
    """
    from docker.errors import DockerException

    docker = job.docker
    process = job.process
    limits = limits_for(spec, docker, job.resources)
    # The mounts live in the work directory, which the runtime removes once the outputs are collected.
    paths = JobPaths(job.output_dir.parent, job.workdir / CONTAINER_DIR)
    arguments = stage_inputs(process, spec, job.inputs, paths.inputs, job.workdir)
    argv = render_command(spec.command, arguments)
    prepare_mounts(paths, container_user(docker, relax))
    labels = {
        LABEL_JOB: paths.job_dir.name,
        LABEL_PROCESS: process.identifier,
        LABEL_MODE: "sync",
        LABEL_JOBS: str(paths.job_dir.parent),
    }
    client = make_client(docker)
    try:
        image_id = resolve_image(client, spec.image, docker.images)
        options = create_options(spec, docker, relax, limits, paths, labels)
        job.update_status("container starting", 0)
        with removing(start_container(client, image_id, argv, options)) as container:
            killed = None
            code = _wait_reporting(container, limits.walltime, paths.progress_file, job)
            if code is None:
                killed = "timeout"
                with contextlib.suppress(DockerException):
                    container.kill()
                code = int(container.wait(timeout=docker.timeout)["StatusCode"])
            exit_code = code
            save_logs(container, paths, docker.log_limit)
    except ImageRefused as exc:
        raise ProcessError(str(exc)) from None
    except DockerException as exc:
        raise ProcessError(f"the container engine failed: {exc}") from None
    finally:
        client.close()
    message = failure(exit_code, killed, limits, paths.stderr)
    if message:
        raise ProcessError(message)
    for output_id, value in read_outputs(process, spec, paths).items():
        job.set_output(output_id, value)
