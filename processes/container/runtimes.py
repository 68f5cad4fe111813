"""Container processes on a compute node: Podman, Apptainer or Charliecloud, run through their command line.

HPC nodes run no Docker Engine. With ``[scheduler] container_runtime`` set, a container process sent to
the batch system carries a :class:`RuntimeHandler` in its payload instead of the Engine API handler,
and on the node it runs the runtime's command: an argument list, never a shell line. Staging, the
argument templates, outputs, failure messages and the allow-list are the Engine API path's own
(``engine.py``); only how the container is started differs. The hardening is the same wherever the
runtime can express it:

============ ===================================== ================================ ===============================
             podman                                apptainer                        charliecloud
============ ===================================== ================================ ===============================
network      ``--network=none``                    ``--net --network=none``         a new network namespace
                                                                                    (``unshare --net``)
root fs      ``--read-only``, tmpfs /tmp           read-only image (SIF), tmpfs     read-only image directory
user         ``--user`` [docker] user              the job's user (no choice)       ``--uid``, ``--gid`` [docker] user
                                                                                    inside, the job's user outside
caps, privs  ``--cap-drop=all``,                   ``--no-privs``                   none to drop (user namespace)
             ``no-new-privileges``
mounts       /inputs ro, /outputs rw               /inputs ro, /outputs rw          /inputs (read-only files),
                                                                                    /outputs
limits       memory, CPUs, pids                    Slurm's allocation               Slurm's allocation
============ ===================================== ================================ ===============================

Images are never pulled: Podman runs ``--pull=never`` the image id it checked against the allow-list
(and any pinned digest); Apptainer and Charliecloud take a local image (a SIF file or directory, a
Charliecloud image name or directory), and a reference with a scheme (``docker://``) is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from processes.container.declare import ContainerHandler
from processes.container.engine import (
    CONTAINER_DIR,
    JobPaths,
    Limits,
    container_user,
    failure,
    limits_for,
    prepare_outputs_dir,
    read_outputs,
    stage_inputs,
    stderr_tail,
)
from processes.container.images import ImageRefused, admitted, digest_matches
from processes.container.settings import DockerSettings
from processes.container.spec import INPUTS_DIR, OUTPUTS_DIR, ContainerSpec, Relaxations, render_command
from processes.context import JobContext, ProcessError
from processes.model import Process

PODMAN, APPTAINER, CHARLIECLOUD = "podman", "apptainer", "charliecloud"
RUNTIMES = (PODMAN, APPTAINER, CHARLIECLOUD)
PODMAN_FAILED = 125  # podman's own error (the image, an option), not the container's
KILL_WAIT = 30.0  # seconds a killed runtime may take to exit
BASE_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp"}


class Terminated(ProcessError):
    """The batch system stopped the job (SIGTERM: scancel, Dismiss, its time limit)."""


@dataclass(frozen=True)
class Invocation:
    """One runtime call: the argument list, variables added to the runtime's own environment, and
    the command that stops the container if the runtime is killed (None: killing the runtime's
    process group is enough)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop: list[str] | None = None


@dataclass(frozen=True)
class Launch:
    """What a runtime's command is built from: the spec, the image checked, the rendered arguments."""

    spec: ContainerSpec
    image: str  # what the runtime runs: podman's image id, a SIF file, a Charliecloud image
    argv: list[str]
    docker: DockerSettings
    relax: Relaxations
    limits: Limits
    paths: JobPaths


def container_name(paths: JobPaths) -> str:
    return f"hpc-wps-{paths.job_dir.name}"


def podman(launch: Launch) -> Invocation:
    """``podman run``: the Engine API path's hardened options, as flags."""
    spec, relax, limits, paths, docker = launch.spec, launch.relax, launch.limits, launch.paths, launch.docker
    name = container_name(paths)
    args = [
        "podman", "run", "--rm", "--pull=never", f"--name={name}", "--label=hpc-wps.mode=batch",
        f"--network={relax.network}", "--cap-drop=all", "--security-opt=no-new-privileges",
        f"--user={container_user(docker, relax)}",
        f"--memory={limits.memory}", f"--memory-swap={limits.memory}", f"--cpus={limits.cores:g}",
        f"--pids-limit={limits.pids}",
        f"--tmpfs=/tmp:rw,size={docker.tmpfs_size},mode=1777",
        f"--volume={paths.inputs}:{INPUTS_DIR}:ro", f"--volume={paths.outputs}:{OUTPUTS_DIR}:rw",
        f"--workdir={spec.workdir}",
    ]  # fmt: skip
    if relax.read_only:
        args.append("--read-only")
    args += [f"--cap-add={cap}" for cap in relax.cap_add]
    args += [f"--env={key}={value}" for key, value in {**BASE_ENV, **dict(spec.env)}.items()]
    if spec.entrypoint is not None:  # a JSON list: podman reads it as the exec form, no shell
        args.append(f"--entrypoint={json.dumps(list(spec.entrypoint))}")
    return Invocation([*args, launch.image, *launch.argv], stop=["podman", "rm", "--force", "--time=0", name])


def apptainer(launch: Launch) -> Invocation:
    """``apptainer run`` (the image's runscript: its entrypoint) or ``exec`` (a declared entrypoint).

    Variables go through ``APPTAINERENV_*`` in the runtime's environment: ``--env`` splits its value
    at commas. The user is the job's own; Apptainer cannot switch it, and ``--no-privs`` drops what root
    would have.
    """
    spec, relax, paths = launch.spec, launch.relax, launch.paths
    args = ["apptainer", "exec" if spec.entrypoint is not None else "run", "--containall", "--no-privs"]
    if relax.network != "host":
        args += ["--net", f"--network={relax.network}"]
    if not relax.read_only:
        args.append("--writable-tmpfs")
    if relax.root:
        args.append("--fakeroot")
    if relax.cap_add:
        args.append(f"--add-caps={','.join(relax.cap_add)}")
    args += [f"--bind={paths.inputs}:{INPUTS_DIR}:ro", f"--bind={paths.outputs}:{OUTPUTS_DIR}:rw"]
    args.append(f"--pwd={spec.workdir}")
    env = {f"APPTAINERENV_{key}": value for key, value in {**BASE_ENV, **dict(spec.env)}.items()}
    return Invocation([*args, launch.image, *(spec.entrypoint or ()), *launch.argv], env)


def charliecloud(launch: Launch) -> Invocation:
    """``ch-run``, inside a network namespace of its own unless the process may use the network.

    ``ch-run`` keeps the host's network and has no read-only bind; the network namespace comes from
    ``unshare --net --map-root-user``, and the staged inputs are read-only files in a read-only directory
    (their owner, the job's user, could still change that: they are the job's own copies). The image
    directory is mounted read-only unless relaxed (``--write``), ``/tmp`` is private, and ``$`` in
    variables is not expanded. The image needs the mount points ``/inputs`` and ``/outputs``.
    """
    spec, relax, paths = launch.spec, launch.relax, launch.paths
    args = ["ch-run", "--unset-env=*", "--env-no-expand", "--private-tmp", f"--cd={spec.workdir}"]
    uid, _, gid = container_user(launch.docker, relax).partition(":")
    if uid.isdigit() and uid != "0":  # the ids seen inside; outside they stay the job's user
        args += [f"--uid={uid}", f"--gid={gid or uid}"]
    args += [f"--set-env={key}={value}" for key, value in {**BASE_ENV, **dict(spec.env)}.items()]
    args += [f"--bind={paths.inputs}:{INPUTS_DIR}", f"--bind={paths.outputs}:{OUTPUTS_DIR}"]
    if not relax.read_only:
        args.append("--write")
    args += [launch.image, "--", *(spec.entrypoint or ()), *launch.argv]
    if relax.network == "none":
        args = ["unshare", "--net", "--map-root-user", *args]
    # ch-run refuses to start without $USER, which a batch job's environment may lack.
    return Invocation(args, {} if os.environ.get("USER") else {"USER": getpass.getuser()})


BUILDERS = {PODMAN: podman, APPTAINER: apptainer, CHARLIECLOUD: charliecloud}


def local_image(runtime: str, image: str, allowed: tuple[str, ...]) -> str:
    """What the runtime is given to run, once the allow-list admits ``image``; never pulled.

    Podman: the id of the local image, checked against any pinned digest. Apptainer, Charliecloud: the
    reference as it is (a file, a directory, a Charliecloud image name); one with a scheme would pull.
    """
    ref, digests = admitted(image, allowed)
    if runtime != PODMAN:
        if "://" in image:
            raise ImageRefused(f"image {image}: {runtime} would fetch it; name a local image (hpc-wps never pulls)")
        if digests:
            raise ImageRefused(f"image {image}: {runtime} cannot check a pinned digest; pin it with podman")
        return image
    found = None
    for candidate in (ref.name, image):
        done = subprocess.run(
            ["podman", "image", "inspect", "--format=json", candidate], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            found = json.loads(done.stdout)[0]
            break
    if found is None:
        raise ImageRefused(f"image {image} is not present in podman's storage on this node (hpc-wps never pulls)")
    image_id = found["Id"] if found["Id"].startswith("sha256:") else f"sha256:{found['Id']}"
    if not digest_matches(digests, image_id, found.get("RepoDigests") or ()):
        raise ImageRefused(f"image {image}: the local image {image_id} does not have the pinned digest {digests[0]}")
    return image_id.removeprefix("sha256:")


def _seal_inputs(inputs: Path) -> None:
    """Read-only for everyone, the directory too: the mount itself is read-only only under podman and
    apptainer."""
    for path in inputs.iterdir():
        path.chmod(0o444)
    inputs.chmod(0o555)


@contextlib.contextmanager
def _terminated_raises() -> Iterator[None]:
    """SIGTERM (the batch system stopping the job) raises Terminated, so the container is stopped too."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated("the batch job was stopped (SIGTERM) while its container ran")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(child: subprocess.Popen[bytes], invocation: Invocation) -> None:
    if invocation.stop is not None:
        subprocess.run(invocation.stop, capture_output=True, check=False, timeout=KILL_WAIT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=KILL_WAIT)


def _cut(path: Path, limit: int) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_size > limit:
            os.truncate(path, limit)


def run_with_runtime(runtime: str, spec: ContainerSpec, relax: Relaxations, job: JobContext) -> None:
    """Stage, run the runtime's command and wait for it, then read the outputs: as ``run_in_handler``
    does through the Engine API, with the same messages for the same failures."""
    docker, process = job.docker, job.process
    limits = limits_for(spec, docker)
    paths = JobPaths(job.output_dir.parent, job.workdir / CONTAINER_DIR)
    if any(c in str(paths.container_dir) for c in ":,"):  # the runtimes' bind options split at them
        raise ProcessError(f"{runtime} cannot mount below {paths.container_dir}: the path holds ':' or ','")
    arguments = stage_inputs(process, spec, job.inputs, paths.inputs, job.workdir)
    argv = render_command(spec.command, arguments)
    # Podman switches to [docker] user; Apptainer and Charliecloud run as the job's own user.
    owner = container_user(docker, relax) if runtime == PODMAN else f"{os.getuid()}:{os.getgid()}"
    prepare_outputs_dir(paths.outputs, owner)
    if runtime == CHARLIECLOUD:
        _seal_inputs(paths.inputs)
    try:
        image = local_image(runtime, spec.image, docker.images)
    except ImageRefused as exc:
        raise ProcessError(str(exc)) from None
    except FileNotFoundError:
        raise ProcessError(f"podman is not installed on this node (container_runtime = {runtime})") from None
    invocation = BUILDERS[runtime](Launch(spec, image, argv, docker, relax, limits, paths))
    job.update_status(f"container starting ({runtime})", 0)
    killed = None
    with paths.stdout.open("wb") as out, paths.stderr.open("wb") as err, _terminated_raises():
        try:
            child = subprocess.Popen(
                invocation.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **invocation.env},
                start_new_session=True,
            )
        except FileNotFoundError:
            raise ProcessError(f"{invocation.argv[0]} is not installed on this node ({runtime})") from None
        try:
            try:
                exit_code = child.wait(timeout=limits.walltime)
            except subprocess.TimeoutExpired:
                killed = "timeout"
                _stop(child, invocation)
                exit_code = child.returncode if child.returncode is not None else -1
        except BaseException:
            _stop(child, invocation)
            raise
    for path in (paths.stdout, paths.stderr):
        _cut(path, docker.log_limit)
    if runtime == PODMAN and exit_code == PODMAN_FAILED and killed is None:
        raise ProcessError(f"podman could not run the container: {stderr_tail(paths.stderr)}")
    message = failure(exit_code if exit_code >= 0 else 128 - exit_code, killed, limits, paths.stderr)
    if message:
        raise ProcessError(message)
    for output_id, value in read_outputs(process, spec, paths).items():
        job.set_output(output_id, value)


@dataclass(frozen=True)
class RuntimeHandler:
    """The handler a container process carries to a compute node: its container through ``runtime``'s
    command line instead of the Engine API. Picklable, relaxations included."""

    spec: ContainerSpec
    relax: Relaxations
    runtime: str

    def __call__(self, job: JobContext) -> None:
        run_with_runtime(self.runtime, self.spec, self.relax, job)


def on_runtime(process: Process, runtime: str) -> Process:
    """``process`` as a batch job runs it on a node with ``runtime`` (empty: the Engine API, unchanged);
    any other process as it is."""
    handler = process.handler
    if not runtime or not isinstance(handler, ContainerHandler):
        return process
    if runtime not in BUILDERS:
        raise ValueError(f"unknown container runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    return dataclasses.replace(process, handler=RuntimeHandler(handler.spec, handler.relax, runtime))
