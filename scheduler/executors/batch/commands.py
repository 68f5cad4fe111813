"""Where a batch system's commands run: on this host, or on a login host over SSH (``ssh.py``).

The executors build argv lists and read what comes back; a runner decides where the argv runs and
where a job directory lies for the scheduler. :class:`LocalRunner` runs them here, as hpc-wps always
did; ``[scheduler] remote`` picks :class:`scheduler.executors.batch.ssh.SshRunner` instead, so that a
service on a VM outside the cluster drives the cluster's own tools unchanged (``runner_for``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from scheduler.executors.base import SubmitError
from scheduler.settings import SchedulerSettings


class SchedulerUnavailable(SubmitError):
    """The scheduler's tools cannot be run or do not answer: the job is offered again later.

    ``certain``: the command certainly did not reach the scheduler (not installed, refused at
    connect); otherwise it may have, and a retried submission first looks for the job.
    """

    def __init__(self, message: str, certain: bool = False) -> None:
        super().__init__(message, retry=True)
        self.certain = certain


class CommandNotFound(SchedulerUnavailable):
    """The command is not installed on this host."""

    def __init__(self, command: str) -> None:
        super().__init__(f"{command} is not installed on this host (not found on PATH)", certain=True)


def run_here(argv: list[str], timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an argv list on this host (never through a shell) with a timeout; text in, text out."""
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise CommandNotFound(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise SchedulerUnavailable(f"{argv[0]} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise SchedulerUnavailable(f"cannot run {argv[0]}: {exc.strerror or exc}", True) from None


class LocalRunner:
    """Commands on this host, job directories where this host has them."""

    shared = True  # the nodes see this host's job directories at the same paths (job arrays rely on it)

    def __init__(self) -> None:
        self.user = str(os.getuid())  # whose jobs a listing asks for

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return run_here(argv, timeout)

    def path(self, job_dir: Path) -> str:
        """The job directory as the scheduler and its nodes see it."""
        return str(job_dir)

    def stage_in(self, job_dir: Path) -> None:
        """Before submission: the nodes see the job directory already."""

    def stage_out(self, job_dir: Path) -> None:
        """After the job's end: its results are in the job directory already."""

    def close(self) -> None:
        """Nothing held."""


def runner_for(settings: SchedulerSettings) -> LocalRunner:
    """The runner ``[scheduler] remote`` asks for: this host, or the login host over SSH."""
    if not settings.remote:
        return LocalRunner()
    from scheduler.executors.batch.ssh import SshRunner  # only sites that use SSH load it

    return SshRunner(settings)
