"""The ``[docker]`` section: the container engine, the allowed images and the hardening defaults.

Declared here, beside the code that runs containers, and handed in by whoever runs a job (the web
worker, the local pool, the docker executor, the launcher on a node); nothing here reads the
configuration file or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from processes.setting_fields import setting, size_setting


@dataclass(frozen=True)
class DockerSettings:
    url: str = setting(
        "", "Docker Engine API URL (unix:///PATH or tcp://HOST:PORT); empty: DOCKER_HOST, else the default"
    )
    timeout: float = setting(30.0, "seconds one Engine API call may take")
    processes: Path = setting(  # noqa: RUF009
        Path(""), "TOML file declaring container processes and per-process relaxations; empty: none"
    )
    images: tuple[str, ...] = setting(
        (), "images containers may run: name:tag, name@sha256:DIGEST (pinned) or a prefix ending in *; empty: none"
    )
    python_image: str = setting("", "image with hpc-wps installed that runs Python processes when mode = docker")
    max_containers: int = setting(8, "containers run at once")
    memory: int = size_setting(512 * 1024**2, "default memory limit per container (no swap beyond it)")
    cores: float = setting(1.0, "default CPU limit per container, in cores (fractions allowed)")
    pids: int = setting(256, "default limit on processes per container")
    walltime: float = setting(3600.0, "default wall-clock limit per container, seconds")
    max_cores: float = setting(4.0, "most cores a request's resources.cores may give a container")
    max_memory: int = size_setting(8 * 1024**3, "most memory a request's resources.memory may give a container")
    max_walltime: float = setting(86400.0, "longest wall-clock limit resources.walltime may give a container, seconds")
    tmpfs_size: int = size_setting(64 * 1024**2, "size of the writable /tmp of a container")
    user: str = setting("65534:65534", "uid:gid containers run as, unless a process is allowed root")
    poll_interval: float = setting(0.05, "least seconds between two container listings (one API call for all jobs)")
    log_limit: int = size_setting(1024**3, "most bytes kept of a container's stdout and of its stderr")
