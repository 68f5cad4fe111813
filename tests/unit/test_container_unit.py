"""Container processes without an engine: command rendering, staging, outputs, image checks, the
hardened options, configuration files and the executor choice. Everything here is a pure function or
plain files; tests/clusters/test_docker.py runs the same code against Podman."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.settings import load_settings
from processes.builtin import BUILTIN_PROCESSES
from processes.container import STDOUT, OutputSource, Relaxations, TemplateError, container_process, render_command
from processes.container.config import ContainerConfigError, parse_config
from processes.container.engine import (
    JobPaths,
    Limits,
    create_options,
    failure,
    limits_for,
    prepare_outputs_dir,
    read_outputs,
    stage_inputs,
)
from processes.container.images import ImageRefused, admitted, digest_matches, parse_reference
from processes.container.settings import DockerSettings
from processes.context import ProcessError
from processes.model import (
    FORMAT_JSON,
    FORMAT_TEXT,
    BoundingBoxInput,
    ComplexInput,
    ComplexOutput,
    LiteralInput,
    LiteralOutput,
)
from processes.values import BoundingBox, ComplexValue, LiteralValue
from tests.xsd import ROOT

INJECTIONS = ["; rm -rf / #", "$(reboot)", "`id`", "a b", "'\"\\", "&& true", "|cat", "> /etc/passwd", "{text}", "\n"]


# -- command rendering ------------------------------------------------------------------------------------


def test_values_become_single_arguments_verbatim():
    argv = render_command(
        ["tool", "--name={name}", "{name}", "{file}"], {"name": [INJECTIONS[0]], "file": ["/inputs/f"]}
    )
    assert argv == ["tool", "--name=; rm -rf / #", "; rm -rf / #", "/inputs/f"]


@given(st.text())
def test_any_value_arrives_as_exactly_one_argument(value):
    assert render_command(["echo", "{v}", "x{v}y"], {"v": [value]}) == ["echo", value, f"x{value}y"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_shell_syntax_is_never_interpreted(value):
    assert render_command(["sh", "-c", 'echo "$1"', "sh", "{v}"], {"v": [value]}) == [
        "sh",
        "-c",
        'echo "$1"',
        "sh",
        value,
    ]


def test_several_values_absent_inputs_groups_and_braces():
    command = ["tool", "{many}", ["--mode", "{mode}"], ["--level={level}"], "{{literal}}", "{outputs}/x", "{inputs}"]
    assert render_command(command, {"many": ["a", "b"], "mode": [], "level": ["3"]}) == [
        "tool",
        "a",
        "b",
        "--level=3",
        "{literal}",
        "/outputs/x",
        "/inputs",
    ]
    assert render_command(command, {"many": [], "mode": ["fast"], "level": []})[1:3] == ["--mode", "fast"]
    with pytest.raises(TemplateError, match="several values"):
        render_command(["--x={many}"], {"many": ["a", "b"]})


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["{nosuch}"], "unknown placeholder {nosuch}"),
        (["{a"], "stray '{'"),
        (["a}"], "stray '}'"),
        (["{a.__class__}"], "unknown placeholder"),
    ],
)
def test_bad_templates_are_refused_when_the_process_is_declared(command, message):
    with pytest.raises(TemplateError, match=message):
        container_process("p", "P", "img", command, [LiteralInput("a", "A")])


def test_output_files_stay_below_outputs():
    for bad in ("/etc/passwd", "../x", "a/../../x", "", "."):
        with pytest.raises(ValueError, match="relative path"):
            OutputSource(bad)
    assert OutputSource("sub/dir/file.txt").describe() == "/outputs/sub/dir/file.txt"
    assert STDOUT.is_stdout


# -- staging and outputs -------------------------------------------------------------------------------------


PROCESS = container_process(
    "unit_container",
    "Unit",
    "localhost/hpc-wps/busybox:latest",
    ["run", "{text}", "{n}", "{secret}", "{box}"],
    [
        ComplexInput("text", "Text", formats=(FORMAT_TEXT, FORMAT_JSON), max_occurs=2),
        LiteralInput("n", "N", data_type="integer"),
        LiteralInput("secret", "Secret"),
        BoundingBoxInput("box", "Box", min_occurs=0),
    ],
    [
        (ComplexOutput("result", "Result", formats=(FORMAT_JSON,)), "out/result.json"),
        (LiteralOutput("count", "Count", data_type="integer"), "stdout"),
        (LiteralOutput("maybe", "Maybe"), OutputSource("maybe.txt", optional=True)),
    ],
    literal_files=["secret"],
    memory=32 * 1024**2,
    pids=16,
)


def test_inputs_are_staged_as_files_and_arguments(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    fetched = work / "text.0.in"
    fetched.write_text("one")
    allowed = tmp_path / "allowed.json"  # a file:// input: copied, never moved
    allowed.write_text("{}")
    inputs = {
        "text": [ComplexValue(fetched, "text/plain"), ComplexValue(allowed, "application/json")],
        "n": [LiteralValue(7)],
        "secret": [LiteralValue("$(reboot)")],
        "box": [BoundingBox((1.0, 2.0), (3.5, 4.0), "EPSG:4326")],
    }
    staged = tmp_path / "inputs"
    arguments = stage_inputs(PROCESS, PROCESS.resources["container"], inputs, staged, work)
    assert arguments == {
        "text": ["/inputs/text.1.txt", "/inputs/text.2.json"],
        "n": ["7"],
        "secret": ["/inputs/secret.txt"],
        "box": ["1.0,2.0,3.5,4.0"],
    }
    assert (staged / "text.1.txt").read_text() == "one" and not fetched.exists()
    assert (staged / "text.2.json").read_text() == "{}" and allowed.exists()
    assert (staged / "secret.txt").read_text() == "$(reboot)"
    assert {oct(p.stat().st_mode & 0o777) for p in staged.iterdir()} == {"0o644"}
    spec = PROCESS.resources["container"]
    assert render_command(spec.command, arguments) == [
        "run",
        "/inputs/text.1.txt",
        "/inputs/text.2.json",
        "7",
        "/inputs/secret.txt",
        "1.0,2.0,3.5,4.0",
    ]


def test_outputs_come_from_files_and_stdout(tmp_path):
    paths = JobPaths(tmp_path)
    (paths.outputs / "out").mkdir(parents=True)
    (paths.outputs / "out" / "result.json").write_text('{"a": 1}')
    paths.stdout.write_text(" 42\n")
    values = read_outputs(PROCESS, PROCESS.resources["container"], paths)
    assert values == {"result": paths.outputs / "out" / "result.json", "count": 42}  # maybe is optional


def test_missing_or_escaping_outputs_fail_the_job(tmp_path):
    paths = JobPaths(tmp_path)
    paths.outputs.mkdir(parents=True)
    paths.stdout.write_text("42")
    with pytest.raises(ProcessError, match=r"did not write its output result \(/outputs/out/result.json\)"):
        read_outputs(PROCESS, PROCESS.resources["container"], paths)
    # A symbolic link written by the container must not make the service read a host file.
    secret = tmp_path / "host-secret"
    secret.write_text("secret")
    os.symlink(secret, paths.outputs / "out")
    with pytest.raises(ProcessError, match="did not write its output result"):
        read_outputs(PROCESS, PROCESS.resources["container"], paths)
    (paths.outputs / "out").unlink()
    (paths.outputs / "out").mkdir()
    os.symlink(secret, paths.outputs / "out" / "result.json")
    with pytest.raises(ProcessError, match="did not write its output result"):
        read_outputs(PROCESS, PROCESS.resources["container"], paths)
    (paths.outputs / "out" / "result.json").unlink()
    (paths.outputs / "out" / "result.json").write_text("{}")
    paths.stdout.write_text("many")
    with pytest.raises(ProcessError, match="output count: 'many' is not a valid integer"):
        read_outputs(PROCESS, PROCESS.resources["container"], paths)


def test_failure_messages(tmp_path):
    limits = Limits(memory=32 * 1024**2, cores=1, pids=10, walltime=5)
    stderr = tmp_path / "stderr.log"
    stderr.write_text("".join(f"noise {n}\n" for n in range(100)) + "the real reason\n")
    assert failure(0, None, limits, stderr) is None
    message = failure(2, None, limits, stderr)
    assert message.startswith("the container exited with code 2: noise 81\n")
    assert message.endswith("noise 99\nthe real reason")
    assert failure(137, None, limits, stderr) == "the container exceeded its memory limit of 32 MB (OOM) and was killed"
    assert failure(137, "timeout", limits, stderr) == "the container exceeded its time limit of 5 s and was killed"
    assert failure(1, None, limits, tmp_path / "none") == "the container exited with code 1 and wrote nothing to stderr"


# -- hardening -------------------------------------------------------------------------------------------------


def test_requested_resources_come_before_the_process_own_and_the_defaults():
    docker = DockerSettings()
    spec = PROCESS.resources["container"]
    asked = {"memory": 100 * 1024**2, "cores": 1.5, "walltime": 60.0, "account": "ignored"}
    assert limits_for(spec, docker, asked) == Limits(memory=100 * 1024**2, cores=1.5, pids=16, walltime=60.0)
    assert limits_for(spec, docker, {"cores": 2.0}) == Limits(32 * 1024**2, 2.0, 16, docker.walltime)
    assert limits_for(None, docker, {"walltime": 5.0}) == Limits(docker.memory, docker.cores, docker.pids, 5.0)


def test_options_are_hardened_by_default(tmp_path):
    docker = DockerSettings()
    spec = PROCESS.resources["container"]
    limits = limits_for(spec, docker)
    assert limits == Limits(memory=32 * 1024**2, cores=docker.cores, pids=16, walltime=docker.walltime)
    options = create_options(spec, docker, Relaxations(), limits, JobPaths(tmp_path), {"hpc-wps.job": "j"})
    assert options["network_mode"] == "none"
    assert "network_disabled" not in options  # it does not isolate through Podman's API
    assert options["read_only"] is True
    assert options["tmpfs"] == {"/tmp": f"rw,size={64 * 1024**2},mode=1777"}
    assert options["cap_drop"] == ["ALL"] and "cap_add" not in options
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["privileged"] is False
    assert options["user"] == "65534:65534"
    assert (options["pids_limit"], options["mem_limit"], options["memswap_limit"]) == (16, 32 * 1024**2, 32 * 1024**2)
    assert options["nano_cpus"] == 1_000_000_000
    assert options["volumes"] == {
        str(tmp_path / "container" / "inputs"): {"bind": "/inputs", "mode": "ro"},
        str(tmp_path / "container" / "outputs"): {"bind": "/outputs", "mode": "rw"},
        str(tmp_path / "container" / "progress"): {"bind": "/progress", "mode": "rw"},
    }
    assert options["environment"]["HPC_WPS_PROGRESS"] == "/progress/status"
    assert options["labels"] == {"hpc-wps.job": "j"}
    assert options["working_dir"] == "/outputs"


def test_relaxations_loosen_only_what_they_name(tmp_path):
    docker = DockerSettings()
    spec = PROCESS.resources["container"]
    limits = limits_for(spec, docker)
    hardened = create_options(spec, docker, Relaxations(), limits, JobPaths(tmp_path), {})
    relax = Relaxations(network="bridge", root=True, read_only=False, cap_add=("NET_RAW",))
    relaxed = create_options(spec, docker, relax, limits, JobPaths(tmp_path), {})
    changed = {k for k in relaxed.keys() | hardened.keys() if relaxed.get(k) != hardened.get(k)}
    assert changed == {"network_mode", "user", "read_only", "cap_add"}
    assert (relaxed["network_mode"], relaxed["user"], relaxed["read_only"]) == ("bridge", "0:0", False)
    assert relaxed["cap_drop"] == ["ALL"] and relaxed["cap_add"] == ["NET_RAW"]


def test_the_outputs_mount_is_writable_for_the_container_user(tmp_path):
    prepare_outputs_dir(tmp_path / "out", "65534:65534")
    info = (tmp_path / "out").stat()
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (65534, 65534, 0o755)
    else:
        assert info.st_mode & 0o777 == 0o777


# -- images ----------------------------------------------------------------------------------------------------

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("image", "allowed", "digests"),
    [
        ("localhost/hpc-wps/busybox:latest", ["localhost/hpc-wps/busybox:latest"], ()),
        ("localhost/hpc-wps/busybox", ["localhost/hpc-wps/busybox:latest"], ()),
        ("localhost/hpc-wps/busybox:latest", ["localhost/hpc-wps/busybox"], ()),
        ("localhost/hpc-wps/busybox:1.36", ["localhost/hpc-wps/*"], ()),
        ("registry:5000/x/y", ["registry:5000/x/y:latest"], ()),
        ("localhost/hpc-wps/busybox:latest", [f"localhost/hpc-wps/busybox@{DIGEST_A}"], (DIGEST_A,)),
        (f"localhost/hpc-wps/busybox@{DIGEST_A}", ["localhost/hpc-wps/busybox"], (DIGEST_A,)),
        (f"localhost/hpc-wps/busybox:latest@{DIGEST_A}", [f"localhost/hpc-wps/busybox@{DIGEST_A}"], (DIGEST_A,)),
    ],
)
def test_allowed_images(image, allowed, digests):
    ref, expected = admitted(image, allowed)
    assert expected == digests
    assert ref.name == image.partition("@")[0]


@pytest.mark.parametrize(
    ("image", "allowed", "message"),
    [
        ("localhost/hpc-wps/busybox:latest", [], "is not among the images"),
        ("localhost/hpc-wps/busybox:1.36", ["localhost/hpc-wps/busybox:latest"], "is not among the images"),
        ("localhost/hpc-wps/busyboxes:latest", ["localhost/hpc-wps/busybox"], "is not among the images"),
        ("docker.io/library/debian:bookworm-slim", ["localhost/*"], "is not among the images"),
        (f"localhost/x@{DIGEST_A}", [f"localhost/x@{DIGEST_B}"], "differs from the one"),
        ("localhost/x@sha256:abc", ["localhost/*"], "64 hex digits"),
        ("local host/x", ["*"], "not an image reference"),
    ],
)
def test_refused_images(image, allowed, message):
    with pytest.raises(ImageRefused, match=message):
        admitted(image, allowed)


def test_digest_matching():
    assert digest_matches((), "sha256:x", [])
    assert digest_matches((DIGEST_A,), DIGEST_A, [])
    assert digest_matches((DIGEST_A,), DIGEST_B, [f"localhost/x@{DIGEST_A}"])
    assert not digest_matches((DIGEST_A,), DIGEST_B, [f"localhost/x@{DIGEST_B}"])
    assert parse_reference("a/b:1").repository == "a/b"
    assert parse_reference("host:5000/b").repository == "host:5000/b"


# -- configuration ---------------------------------------------------------------------------------------------


def test_the_example_configuration_declares_the_two_examples():
    text = (ROOT / "config" / "containers.example.toml").read_text()
    config = parse_config(text, "example", ["localhost/hpc-wps/examples:latest"])
    assert [p.identifier for p in config.processes] == ["container_wordcount", "container_split"]
    split = config.processes[1]
    assert split.input("lines").default == "10" and split.input("lines").min_occurs == 0
    assert split.resources["container"].command == ("split-text", "{lines}", "{text}")
    assert config.relax == {}
    with pytest.raises(ContainerConfigError, match="example: process #1 container_wordcount: image"):
        parse_config(text, "example", ["localhost/hpc-wps/busybox:latest"])


def test_relaxations_come_only_from_the_configuration():
    config = parse_config(
        """
        [[process]]
        identifier = "relaxed_one"
        image = "img"
        command = ["run"]
        relax = { network = true, cap_add = ["net_raw"] }

        [relax.declared_in_code]
        root = true
        read_only = false
        """,
        "site.toml",
    )
    assert config.relaxations("relaxed_one") == Relaxations(network="bridge", cap_add=("NET_RAW",))
    assert config.relaxations("declared_in_code") == Relaxations(root=True, read_only=False)
    assert config.relaxations("anything_else") == Relaxations()
    with pytest.raises(TypeError):
        container_process("p", "P", "img", ["run"], relax=Relaxations(root=True))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[process]]\nidentifier = 'p'\nimage = 'i'\n", "f.toml: process #1 p: a process needs command"),
        ("[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = ['x']\nimgae = 'y'\n", "unknown key 'imgae'"),
        ("[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = ['{x}']\n", "unknown placeholder {x}"),
        ("[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = 'x'\n", "command must be a list"),
        (
            "[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = ['x']\nresources = { memory = 'lots' }\n",
            "resources.memory 'lots' is not a size",
        ),
        (
            "[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = ['x']\n"
            "[[process.inputs]]\nidentifier = 'n'\ntype = 'integer'\ndefault = 'ten'\n",
            "input n: 'ten' is not a valid integer",
        ),
        (
            "[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = ['x']\n"
            "[[process.outputs]]\nidentifier = 'o'\nfrom = '../etc/passwd'\n",
            "output o: output file '../etc/passwd' must be a relative path",
        ),
        ("[[process]]\nidentifier = 'p'\nimage = 'i'\ncommand = ['x']\nrelax = { privileged = true }\n", "unknown key"),
        ("[relax.p]\nnetwork = 3\n", "relax.network must be a str"),
        ("[[process]\n", "not valid TOML"),
    ],
)
def test_configuration_errors_name_the_file_process_and_key(text, message):
    with pytest.raises(ContainerConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        parse_config(text, "f.toml")


# -- executor choice -------------------------------------------------------------------------------------------


def test_container_processes_go_to_docker_in_every_mode(tmp_path: Path):
    sleep = next(p for p in BUILTIN_PROCESSES if p.identifier == "sleep")
    local = load_settings(environ={}).jobs
    assert local.executor_for(PROCESS) == "docker"
    assert local.executor_for(sleep) == "local"
    scheduler = load_settings(environ={"HPC_WPS_PROCESSING_MODE": "scheduler"}).jobs
    assert scheduler.executor_for(PROCESS) == "docker"
    assert scheduler.executor_for(sleep) == "slurm"
    docker = load_settings(environ={"HPC_WPS_PROCESSING_MODE": "docker"}).jobs
    assert docker.executor_for(sleep) == "docker"
    pinned = load_settings(environ={"HPC_WPS_SCHEDULER_LOCAL_PROCESSES": "unit_container"}).jobs
    assert pinned.executor_for(PROCESS) == "local"


def test_an_unreachable_engine_keeps_jobs_queued(tmp_path: Path):
    """submit() and poll_many() raise SubmitError (retry): the dispatcher backs off, no job fails."""
    from processes.registry import Registry
    from scheduler.executors.base import JobSpec, SubmitError
    from scheduler.executors.docker import DockerExecutor

    settings = load_settings(
        environ={"HPC_WPS_SERVER_WORKDIR": str(tmp_path), "HPC_WPS_DOCKER_URL": f"unix://{tmp_path}/none.sock"}
    )
    executor = DockerExecutor(settings.jobs, Registry([PROCESS]).get)
    with pytest.raises(SubmitError, match="does not answer") as error:
        executor.submit(JobSpec("j1", PROCESS.identifier, tmp_path / "j1", {"inputs": []}))
    assert error.value.retry
    executor.attach("j0")
    with pytest.raises(SubmitError, match="does not answer"):
        executor.poll_many(["j0"])
