"""The docker executor: asynchronous jobs in containers, through the Docker Engine API.

Nothing the dispatcher calls waits on a container or on an input. ``submit`` forks a short-lived
staging child that fetches and stages the inputs, checks the image against the allow-list and creates
and starts the hardened container, labelled ``hpc-wps.job=<job id>``. ``poll_many`` asks the engine
once per cycle (one label-filtered, sparse list of every job's container) and reaps its own children.
A container that has exited gets a short-lived finalizer child: it saves stdout and stderr into the
job directory, turns the output files into output records, writes ``result.json`` (success, or the
failure: the tail of stderr, the memory limit, the time limit) and removes the container. The
dispatcher then settles the job from that file.

The native id is the job id, the value of the label, so a restarted dispatcher finds its containers
again with the same list call. ``cancel`` kills the staging child and removes the container.

With ``[processing] mode = docker`` a Python process runs too: in ``[docker] python_image`` (an image
with hpc-wps installed), as ``python3 -m scheduler.run_job /job`` on its job directory, its inputs fetched
beforehand because the container has no network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from processes.container.config import ContainerConfig, configured
from processes.container.declare import container_spec
from processes.container.engine import (
    LABEL_JOB,
    LABEL_JOBS,
    LABEL_MODE,
    LABEL_PROCESS,
    EngineError,
    JobPaths,
    Limits,
    container_user,
    create_options,
    failure,
    limits_for,
    make_client,
    prepare_mounts,
    prepare_outputs_dir,
    read_outputs,
    resolve_image,
    save_logs,
    stage_inputs,
    start_container,
)
from processes.container.images import ImageRefused
from processes.container.progress import PROGRESS_ENV, Progress, read_progress
from processes.container.spec import ContainerSpec, TemplateError, render_command
from processes.context import ProcessError
from processes.fetch import SEALED, InputError, unseal_inputs
from processes.model import Process
from processes.runtime import collect_outputs, materialize_inputs
from scheduler.executor_names import DOCKER
from scheduler.executors.base import Executor, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.launcher import (
    PROGRESS_INTERVAL,
    RESULT_FILE,
    STATUS_FILE,
    Outcome,
    read_result,
    write_json,
    write_result,
)
from scheduler.models import JobStatus
from scheduler.pids import alive, process_key
from scheduler.run_job import MODULE as RUN_JOB

if TYPE_CHECKING:
    from docker import DockerClient

    from scheduler.settings import JobSettings

log = logging.getLogger(__name__)

CONTAINER_FILE = "container.json"  # the container's id, deadline and limits, written by the staging child
REQUEST_FILE = "request.json"  # the stored request, for the finalizer of a job taken up after a restart
STAGING_FILE = "staging.pid"  # pid:starttime of the staging child while it works
KILLED_FILE = "killed"  # why we killed the container (timeout, dismissed): not the memory limit
JOB_MOUNT = "/job"  # where a Python process's job directory appears in its container
STAGED_INPUTS = "staged"  # below the job directory: inputs fetched for a Python process
ENDED_STATES = frozenset({"exited", "dead", "stopped"})
NOT_STARTED = frozenset({"created", "configured"})
ENGINE_RECHECK = 5.0  # seconds after which submit pings an engine it has not heard from
STAGING, FINALIZING = "staging", "finalizing"


def _alive(marker: Path) -> bool:
    """True while the process named in ``marker`` (pid:starttime) runs: an orphaned staging child."""
    try:
        return alive(marker.read_text(encoding="ascii").strip())
    except OSError:
        return False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _failed(message: str, **extra: Any) -> Outcome:
    return Outcome(JobStatus.FAILED.value, message, **extra)


class DockerExecutor(Executor):
    name = DOCKER
    # Staging and starting take well under a second, so a job counts as running from its submission,
    # and the dispatcher polls this executor every cycle ([docker] poll_interval spaces the listings).
    starts_now = True

    def __init__(self, settings: JobSettings, lookup: Callable[[str], Process | None]) -> None:
        self.settings = settings
        self.docker = settings.docker
        self.jobs_dir = settings.jobs_dir
        self.lookup = lookup
        self.config: ContainerConfig = configured(settings.docker)
        self._client: DockerClient | None = None
        self._children: dict[int, tuple[str, str]] = {}  # pid -> (native id, STAGING or FINALIZING)
        self._busy: dict[str, int] = {}  # native id -> pid of the child working on it
        self._reaped_at: dict[str, float] = {}  # native id -> when its staging child ended
        self._active: set[str] = set()
        self._cancelled: set[str] = set()
        self._listing: dict[str, dict[str, Any]] = {}  # native id -> the container's list entry
        self._infos: dict[str, dict[str, Any]] = {}  # native id -> its container.json (deadline, progress file)
        self._progress_at: dict[str, float] = {}  # native id -> the listing its progress file was last read at
        self._reported: dict[str, Progress] = {}  # native id -> the progress last reported
        self._listed_at = float("-inf")
        self._heard_at = float("-inf")  # the engine's last answer

    # -- the engine, from the dispatcher's process ---------------------------------------------------

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = make_client(self.docker)
        return self._client

    def _engine_failed(self, exc: Exception) -> SubmitError:
        self._heard_at = float("-inf")
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        return SubmitError(f"the container engine at {self.docker.url or 'DOCKER_HOST'} does not answer: {exc}")

    def _list(self) -> None:
        """One call for every container of ours: running, exited or just created."""
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            containers = self.client.api.containers(all=True, filters={"label": [LABEL_JOB, f"{LABEL_MODE}=async"]})
        except (DockerException, RequestException, EngineError) as exc:
            raise self._engine_failed(exc) from None
        self._listed_at = self._heard_at = time.monotonic()
        self._listing = {c["Labels"][LABEL_JOB]: c for c in containers if c.get("Labels", {}).get(LABEL_JOB)}

    def _check_engine(self) -> None:
        if time.monotonic() - self._heard_at < ENGINE_RECHECK:
            return
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            self.client.ping()
        except (DockerException, RequestException, EngineError) as exc:
            raise self._engine_failed(exc) from None
        self._heard_at = time.monotonic()

    # -- children ------------------------------------------------------------------------------------

    def _fork(self, native_id: str, kind: str, work: Callable[[], None]) -> None:
        pid = os.fork()
        if pid == 0:  # the child: never return into the dispatcher's loop
            code = 1
            try:
                os.setpgid(0, 0)
                signal.set_wakeup_fd(-1)
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                self._client = None  # the parent's connections stay the parent's
                work()
                code = 0
            except BaseException:
                log.exception("job %s: %s failed", native_id, kind)
            finally:
                os._exit(code)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        self._children[pid] = (native_id, kind)
        self._busy[native_id] = pid

    def _reap(self) -> None:
        for pid, (native_id, kind) in list(self._children.items()):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                del self._children[pid]
                self._busy.pop(native_id, None)
                if kind == STAGING:
                    self._reaped_at[native_id] = time.monotonic()
                else:  # the finalizer removed the container: the listing's entry is stale
                    self._listing.pop(native_id, None)

    # -- the Executor interface --------------------------------------------------------------------------

    def capacity(self) -> int:
        return self.docker.max_containers - len(self._active)

    def submit(self, spec: JobSpec) -> str:
        if self.capacity() <= 0:
            raise SubmitError("all container slots are busy")
        process = self.lookup(spec.process_id)
        if process is None:
            raise SubmitError(f"process {spec.process_id} is not known to the docker executor", retry=False)
        self._check_engine()
        spec.job_dir.mkdir(parents=True, exist_ok=True)
        write_json(spec.job_dir / REQUEST_FILE, {"process_id": spec.process_id, "request": spec.request})
        native_id = spec.job_id
        self._fork(native_id, STAGING, lambda: self.stage(process, native_id, spec.request, spec.job_dir))
        self._active.add(native_id)
        return native_id

    def attach(self, native_id: str) -> None:
        self._active.add(native_id)

    def poll_many(self, native_ids: Sequence[str]) -> dict[str, NativeStatus]:
        self._reap()
        if self._needs_listing(native_ids):
            self._list()
        statuses = {nid: self._status(nid) for nid in native_ids}
        for nid, status in statuses.items():
            if status.state is NativeState.ENDED:
                self._forget(nid)
        return statuses

    def _needs_listing(self, native_ids: Sequence[str]) -> bool:
        waiting = [n for n in native_ids if n not in self._busy and n not in self._cancelled]
        if not waiting:
            return False
        if time.monotonic() - self._listed_at >= self.docker.poll_interval:
            return True
        # A container started since the last listing is not in it yet.
        return any(self._reaped_at.get(n, float("-inf")) >= self._listed_at for n in waiting if n not in self._listing)

    def _status(self, nid: str) -> NativeStatus:
        self._active.add(nid)
        if nid in self._cancelled:
            return NativeStatus(NativeState.ENDED, "was dismissed")
        job_dir = self.jobs_dir / nid
        result = (job_dir / RESULT_FILE).exists()
        if nid in self._busy:  # a result is final: no need to wait for a finalizer removing the container
            return NativeStatus(NativeState.ENDED if result else NativeState.RUNNING)
        entry = self._listing.get(nid)
        if entry is None:
            if result:
                return NativeStatus(NativeState.ENDED)
            if _alive(job_dir / STAGING_FILE):  # staged by a dispatcher that has since restarted
                return NativeStatus(NativeState.RUNNING)
            return NativeStatus(NativeState.ENDED, "lost its container (removed outside hpc-wps?)")
        state = entry.get("State", "")
        if state in ENDED_STATES or (state in NOT_STARTED and not _alive(job_dir / STAGING_FILE)):
            self._fork(nid, FINALIZING, lambda: self.finalize(nid, entry["Id"]))
        elif not result:  # (a Python process's launcher writes its result just before it exits)
            self._enforce_walltime(nid, entry["Id"])
            return NativeStatus(NativeState.RUNNING, progress=self._progress(nid))
        return NativeStatus(NativeState.RUNNING)

    def _forget(self, nid: str) -> None:
        self._active.discard(nid)
        self._cancelled.discard(nid)
        self._listing.pop(nid, None)
        self._reaped_at.pop(nid, None)
        self._infos.pop(nid, None)
        self._progress_at.pop(nid, None)
        self._reported.pop(nid, None)

    def _info(self, nid: str) -> dict[str, Any]:
        """The job's container.json, read once: its deadline and where its progress is."""
        if nid not in self._infos:
            info = _read_json(self.jobs_dir / nid / CONTAINER_FILE)
            if info is None:  # not written yet: asked again at the next poll
                return {}
            self._infos[nid] = info
        return self._infos[nid]

    def _progress(self, nid: str) -> Progress | None:
        """The container's progress when it changed since it was last reported; the file is read once a
        listing (at most every PROGRESS_INTERVAL)."""
        if self._listed_at < self._progress_at.get(nid, float("-inf")) + PROGRESS_INTERVAL:
            return None
        self._progress_at[nid] = self._listed_at
        relative = self._info(nid).get("progress")
        found = read_progress(self.jobs_dir / nid / relative) if isinstance(relative, str) else None
        if found is None or found == self._reported.get(nid):
            return None
        self._reported[nid] = found
        return found

    def _enforce_walltime(self, nid: str, container_id: str) -> None:
        job_dir = self.jobs_dir / nid
        if time.time() < self._info(nid).get("deadline", float("inf")) or (job_dir / KILLED_FILE).exists():
            return
        (job_dir / KILLED_FILE).write_text("timeout", encoding="utf-8")
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            self.client.api.kill(container_id)
        except (DockerException, RequestException) as exc:
            log.warning("job %s: cannot kill container %s at its time limit: %s", nid, container_id, exc)

    def cancel(self, native_id: str) -> None:
        """Kill the staging child, then remove every container of the job (kill included)."""
        if native_id in self._cancelled:
            return
        pid = self._busy.get(native_id)
        if pid is not None and self._children.get(pid, ("", ""))[1] == STAGING:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            del self._children[pid]
            del self._busy[native_id]
        elif pid is not None:
            return  # a finalizer: it ends by itself in a moment
        job_dir = self.jobs_dir / native_id
        with contextlib.suppress(OSError):
            (job_dir / KILLED_FILE).write_text("dismissed", encoding="utf-8")
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException

        try:
            for found in self.client.api.containers(
                all=True, filters={"label": [f"{LABEL_JOB}={native_id}", f"{LABEL_MODE}=async"]}
            ):
                with contextlib.suppress(NotFound):
                    self.client.api.remove_container(found["Id"], force=True)
        except (DockerException, RequestException) as exc:  # tried again at the next poll
            log.warning("job %s: cannot remove its container yet: %s", native_id, exc)
            return
        self._cancelled.add(native_id)
        self._listing.pop(native_id, None)

    def remove_leftovers(self, still_active: Callable[[Collection[str]], set[str]]) -> None:
        """Remove the synchronous containers of this service whose jobs are no longer active.

        A web worker (or a local pool worker) removes its container when the run ends, however it ends,
        unless it is killed first: SIGKILL, gunicorn's worker timeout, a Dismiss in the local pool. Its
        job is then failed by the sweep (or dismissed), and the container, labelled with the job and this
        service's jobs directory, goes here: one listing, one query for the jobs it names.
        """
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException

        mine = [f"{LABEL_MODE}=sync", f"{LABEL_JOBS}={self.jobs_dir}"]
        try:
            found = self.client.api.containers(all=True, filters={"label": mine})
            if not found:
                return
            active = still_active({c["Labels"].get(LABEL_JOB, "") for c in found})
            for container in found:
                job_id = container["Labels"].get(LABEL_JOB, "")
                if job_id not in active:
                    log.warning("job %s: removing the container its stopped run left (%s)", job_id, container["Id"])
                    with contextlib.suppress(NotFound):
                        self.client.api.remove_container(container["Id"], force=True)
        except (DockerException, RequestException, EngineError) as exc:  # tried again at the next sweep
            log.warning("cannot remove the containers of stopped synchronous runs yet: %s", exc)

    # -- in the staging child ----------------------------------------------------------------------------

    def stage(self, process: Process, job_id: str, request: dict[str, Any], job_dir: Path) -> None:
        """Fetch and stage the inputs, create and start the container; a failure becomes the job's result."""
        from docker.errors import DockerException

        marker = job_dir / STAGING_FILE
        marker.write_text(process_key(os.getpid()), encoding="ascii")
        work = job_dir / "work"
        try:
            work.mkdir(parents=True, exist_ok=True)
            self._start(process, job_id, request, job_dir, work)
        except InputError as exc:
            write_result(
                job_dir, _failed(f"input {exc.identifier}: {exc}", input_id=exc.identifier, input_reason=exc.reason)
            )
        except (ProcessError, ImageRefused, TemplateError, EngineError) as exc:
            write_result(job_dir, _failed(str(exc)))
        except DockerException as exc:
            write_result(job_dir, _failed(f"the container engine refused the container: {exc}"))
        except OSError as exc:
            write_result(job_dir, _failed(f"cannot stage the job: {type(exc).__name__}: {exc.strerror or exc}"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            marker.unlink(missing_ok=True)

    def _start(self, process: Process, job_id: str, request: dict[str, Any], job_dir: Path, work: Path) -> None:
        docker = self.docker
        request = request | {"inputs": unseal_inputs(request.get("inputs", []), job_dir.parent)}
        relax = self.config.relaxations(process.identifier)
        spec = container_spec(process)
        paths = JobPaths(job_dir)
        limits = limits_for(spec, docker, request.get("resources"))
        user = container_user(docker, relax)
        if spec is None:
            spec, volumes = self._python_job(process, job_id, request, job_dir, work, user)
        else:
            inputs = materialize_inputs(process, request.get("inputs", []), work, self.settings.inputs)
            arguments = stage_inputs(process, spec, inputs, paths.inputs, work)
            prepare_mounts(paths, user)
            volumes = None
            spec = dataclasses.replace(spec, command=tuple(render_command(spec.command, arguments)))
        client = make_client(docker)
        try:
            image_id = resolve_image(client, spec.image, docker.images)
            labels = {LABEL_JOB: job_id, LABEL_PROCESS: process.identifier, LABEL_MODE: "async"}
            options = create_options(spec, docker, relax, limits, paths, labels)
            progress = paths.progress_file
            if volumes is not None:  # a Python process: its launcher reports progress into status.json
                options["volumes"] = volumes
                del options["environment"][PROGRESS_ENV]
                progress = job_dir / STATUS_FILE

            def record(container: Any) -> None:
                info = {
                    "id": container.id,
                    "memory": limits.memory,
                    "cores": limits.cores,
                    "walltime": limits.walltime,
                    "progress": str(progress.relative_to(job_dir)),
                }
                write_json(job_dir / CONTAINER_FILE, info | {"deadline": time.time() + limits.walltime})

            start_container(client, image_id, list(spec.command), options, record)
        finally:
            client.close()

    def _python_job(
        self, process: Process, job_id: str, request: dict[str, Any], job_dir: Path, work: Path, user: str
    ) -> tuple[ContainerSpec, dict[str, dict[str, str]]]:
        """``python3 -m scheduler.run_job /job`` in the Python image, inputs by reference fetched here beforehand."""
        from processes.runtime import _source_file
        from scheduler.payload import Payload, write_payload

        if not self.docker.python_image:
            raise ProcessError("a Python process in a container needs [docker] python_image")
        staged = job_dir / STAGED_INPUTS
        staged.mkdir(exist_ok=True)
        specs = []
        for index, item in enumerate(request.get("inputs", [])):
            if item.get("href"):
                source = _source_file(item, work, index, self.settings.inputs)
                shutil.copyfile(source, staged / f"{index}")
                item = {k: v for k, v in item.items() if k not in ("href", "method", "body", "headers", SEALED)}
                item["href"] = f"file://{JOB_MOUNT}/{STAGED_INPUTS}/{index}"
            specs.append(item)
        # Inside, the launcher reads only the staged files; it reports through result.json (no database).
        fetch_limits = dataclasses.replace(
            self.settings.inputs, allowed_dirs=(Path(JOB_MOUNT) / STAGED_INPUTS,), allow_http=False
        )
        payload = Payload(
            job_id, process, {**request, "inputs": specs}, "sqlite:///:memory:", fetch_limits, 0.0, self.docker
        )
        write_payload(job_dir, payload)
        for path in (job_dir, staged):
            prepare_outputs_dir(path, user)
        spec = ContainerSpec(
            image=self.docker.python_image,
            command=(JOB_MOUNT,),
            entrypoint=("python3", "-m", RUN_JOB),
            workdir=JOB_MOUNT,
        )
        return spec, {str(job_dir): {"bind": JOB_MOUNT, "mode": "rw"}}

    # -- in the finalizer child ------------------------------------------------------------------------------

    def finalize(self, job_id: str, container_id: str) -> None:
        """Logs, outputs and result of an exited container; then its mounts and the container removed."""
        from docker.errors import NotFound

        job_dir = self.jobs_dir / job_id
        paths = JobPaths(job_dir)
        client = make_client(self.docker)
        container = None
        try:
            container = client.containers.get(container_id)
            if (job_dir / RESULT_FILE).exists():  # a Python process's launcher, or a finalizer cut short
                save_logs(container, paths, self.docker.log_limit)
            elif job_dir.is_dir():
                write_result(job_dir, self._outcome(container, job_dir, paths))
        except NotFound:
            if job_dir.is_dir() and not (job_dir / RESULT_FILE).exists():
                write_result(job_dir, _failed("the container disappeared before its end was recorded"))
        except Exception as exc:
            log.exception("job %s: finalizing failed", job_id)
            if job_dir.is_dir():
                write_result(job_dir, _failed(f"recording the container's end failed: {type(exc).__name__}: {exc}"))
        finally:
            shutil.rmtree(paths.container_dir, ignore_errors=True)
            shutil.rmtree(job_dir / STAGED_INPUTS, ignore_errors=True)
            try:
                if container is not None:
                    container.remove(force=True)
            finally:
                client.close()

    def _outcome(self, container: Any, job_dir: Path, paths: JobPaths) -> Outcome:
        state = container.attrs.get("State", {})
        if state.get("Status") in NOT_STARTED:
            return _failed("the container was never started (the service restarted while staging it)")
        exit_code = int(state.get("ExitCode", -1))
        save_logs(container, paths, self.docker.log_limit)
        info = _read_json(job_dir / CONTAINER_FILE) or {}
        saved = _read_json(job_dir / REQUEST_FILE) or {}
        process = self.lookup(saved.get("process_id") or container.labels.get(LABEL_PROCESS, ""))
        if process is None:
            return _failed("the process is no longer offered")
        spec = container_spec(process)
        limits = limits_for(spec, self.docker)
        limits = Limits(
            info.get("memory", limits.memory),
            info.get("cores", limits.cores),
            limits.pids,
            info.get("walltime", limits.walltime),
        )
        try:
            killed: str | None = (job_dir / KILLED_FILE).read_text(encoding="utf-8").strip() or None
        except OSError:
            killed = None
        message = failure(exit_code, killed, limits, paths.stderr)
        if message:
            return _failed(message)
        if spec is None:  # a Python process: its launcher wrote the result inside the container
            return read_result(job_dir) or _failed("the launcher in the container wrote no result")
        try:
            values = read_outputs(process, spec, paths)
            outputs_dir = job_dir / "outputs"
            outputs_dir.mkdir(exist_ok=True)
            records = collect_outputs(process, values, saved.get("request", {}).get("outputs", []), outputs_dir)
        except ProcessError as exc:
            return _failed(str(exc))
        return Outcome(JobStatus.SUCCEEDED.value, "succeeded", records)
