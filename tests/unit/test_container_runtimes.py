"""Container runtimes on compute nodes (``processes/container/runtimes.py``): the argument lists each
runtime is given, the image rules, the routing and the setting. Podman and Charliecloud also run for real
under Slurm in ``tests/clusters/test_containers_slurm.py``; Apptainer is not installable here (Debian 12
ships none), so its argument list is what this file checks."""

from __future__ import annotations

from pathlib import Path

import dill
import pytest

from app.settings import SettingsError, load_settings
from processes.builtin import BUILTIN_PROCESSES
from processes.container import container_process
from processes.container.declare import ContainerHandler, relaxed
from processes.container.engine import JobPaths, limits_for
from processes.container.images import ImageRefused
from processes.container.runtimes import (
    Launch,
    RuntimeHandler,
    apptainer,
    charliecloud,
    local_image,
    on_runtime,
    podman,
)
from processes.container.settings import DockerSettings
from processes.container.spec import HARDENED, ContainerSpec, Relaxations

NASTY = ["; rm -rf / #", "$(reboot)", "a b", "--network=host"]
SPEC = ContainerSpec(image="img", command=("sh",), env=(("GREETING", "a,b $x"),), workdir="/outputs")
DOCKER = DockerSettings()
PATHS = JobPaths(Path("/jobs/j1"), Path("/jobs/j1/work/container"))


def build(builder, relax: Relaxations = HARDENED, spec: ContainerSpec = SPEC):  # type: ignore[no-untyped-def]
    return builder(Launch(spec, "IMAGE", list(NASTY), DOCKER, relax, limits_for(spec, DOCKER), PATHS))


@pytest.mark.parametrize("builder", [podman, apptainer, charliecloud])
def test_the_command_follows_the_image_verbatim_as_separate_arguments(builder):
    argv = build(builder).argv
    assert argv[-len(NASTY) :] == NASTY
    assert all(isinstance(a, str) for a in argv)
    assert "sh" not in argv[: argv.index("IMAGE")]  # no shell between the runtime and the image


def test_podman_gets_the_engine_api_hardening_as_flags():
    invocation = build(podman)
    flags = invocation.argv[: invocation.argv.index("IMAGE")]
    for flag in (
        "--rm",
        "--pull=never",
        "--network=none",
        "--read-only",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "--user=65534:65534",
        f"--memory={512 * 1024**2}",
        f"--memory-swap={512 * 1024**2}",
        "--pids-limit=256",
        "--volume=/jobs/j1/work/container/inputs:/inputs:ro",
        "--volume=/jobs/j1/work/container/outputs:/outputs:rw",
        "--env=GREETING=a,b $x",
        "--workdir=/outputs",
    ):
        assert flag in flags
    assert not [f for f in flags if f.startswith("--privileged") or f.startswith("--cap-add")]
    assert invocation.stop == ["podman", "rm", "--force", "--time=0", "hpc-wps-j1"]


def test_podman_relaxations_and_entrypoint():
    relax = Relaxations(network="bridge", root=True, read_only=False, cap_add=("NET_BIND_SERVICE",))
    spec = ContainerSpec(image="img", command=(), entrypoint=("python3", "-m", "x"))
    flags = build(podman, relax, spec).argv
    assert "--network=bridge" in flags and "--user=0:0" in flags and "--cap-add=NET_BIND_SERVICE" in flags
    assert "--read-only" not in flags
    assert '--entrypoint=["python3", "-m", "x"]' in flags


def test_apptainer_contains_isolates_the_network_and_passes_variables_outside_its_flags():
    invocation = build(apptainer)
    assert invocation.argv[:2] == ["apptainer", "run"]  # the image's runscript: its entrypoint
    flags = invocation.argv[: invocation.argv.index("IMAGE")]
    for flag in (
        "--containall",
        "--no-privs",
        "--net",
        "--network=none",
        "--bind=/jobs/j1/work/container/inputs:/inputs:ro",
        "--bind=/jobs/j1/work/container/outputs:/outputs:rw",
        "--pwd=/outputs",
    ):
        assert flag in flags
    assert "--writable-tmpfs" not in flags
    assert invocation.env == {
        "APPTAINERENV_HOME": "/tmp",
        "APPTAINERENV_TMPDIR": "/tmp",
        "APPTAINERENV_GREETING": "a,b $x",
    }
    spec = ContainerSpec(image="img", command=(), entrypoint=("tool",))
    exec_form = build(apptainer, Relaxations(network="host", read_only=False), spec).argv
    assert exec_form[:2] == ["apptainer", "exec"] and exec_form[exec_form.index("IMAGE") + 1] == "tool"
    assert "--net" not in exec_form and "--writable-tmpfs" in exec_form


def test_charliecloud_runs_in_a_network_namespace_of_its_own_unless_relaxed():
    argv = build(charliecloud).argv
    assert argv[:4] == ["unshare", "--net", "--map-root-user", "ch-run"]
    flags = argv[: argv.index("IMAGE")]
    for flag in ("--unset-env=*", "--env-no-expand", "--private-tmp", "--uid=65534", "--gid=65534", "--cd=/outputs"):
        assert flag in flags
    assert "--set-env=GREETING=a,b $x" in flags and "--write" not in flags
    assert argv[argv.index("IMAGE") + 1] == "--"
    open_argv = build(charliecloud, Relaxations(network="host", root=True)).argv
    assert open_argv[0] == "ch-run" and "--uid=65534" not in open_argv


def test_images_are_local_and_allowed():
    allowed = ("/images/busybox", "docker://busybox*", "x@sha256:" + "a" * 64)
    assert local_image("apptainer", "/images/busybox", allowed) == "/images/busybox"
    with pytest.raises(ImageRefused, match="not among the images"):
        local_image("charliecloud", "/images/other", allowed)
    with pytest.raises(ImageRefused, match="would fetch it"):
        local_image("apptainer", "docker://busybox:1", allowed)
    with pytest.raises(ImageRefused, match="cannot check a pinned digest"):
        local_image("charliecloud", "x", allowed)


PROCESS = container_process("rt_unit", "Runtime unit", "img", ["true"])


def test_only_container_processes_change_handler_and_the_payload_keeps_it():
    assert on_runtime(PROCESS, "") is PROCESS
    sleep = next(p for p in BUILTIN_PROCESSES if p.identifier == "sleep")
    assert on_runtime(sleep, "podman") is sleep
    relax = Relaxations(network="host")
    moved = on_runtime(relaxed(PROCESS, relax), "charliecloud")
    assert moved.handler == RuntimeHandler(PROCESS.resources["container"], relax, "charliecloud")
    assert dill.loads(dill.dumps(moved)).handler == moved.handler  # what the batch payload carries
    assert isinstance(PROCESS.handler, ContainerHandler)  # the original, for synchronous runs, is untouched


def test_the_setting_routes_container_processes_to_the_batch_system():
    environ = {"HPC_WPS_PROCESSING_MODE": "scheduler", "HPC_WPS_SCHEDULER_CONTAINER_RUNTIME": "podman"}
    assert load_settings(environ=environ).jobs.executor_for(PROCESS) == "slurm"
    local = load_settings(environ={**environ, "HPC_WPS_SCHEDULER_LOCAL_PROCESSES": "rt_unit"}).jobs
    assert local.executor_for(PROCESS) == "local"
    # Without the runtime, or outside scheduler mode, container processes still go to the docker executor.
    assert load_settings(environ={"HPC_WPS_PROCESSING_MODE": "scheduler"}).jobs.executor_for(PROCESS) == "docker"
    assert (
        load_settings(environ={"HPC_WPS_SCHEDULER_CONTAINER_RUNTIME": "podman"}).jobs.executor_for(PROCESS) == "docker"
    )


def test_an_unknown_runtime_stops_the_service_at_start(tmp_path):
    config = tmp_path / "x.cfg"
    config.write_text("[scheduler]\ncontainer_runtime = docker\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"\[scheduler\] container_runtime.*'docker' is not a container runtime"):
        load_settings(config, environ={})
