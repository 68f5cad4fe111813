"""The scheduler's commands on a login host over SSH (``[scheduler] remote = ssh://user@host``).

OpenSSH's own client, multiplexed: the first command opens a master connection (``ControlMaster=auto``)
that every later command, and SFTP, rides on (``ControlPath`` in a private directory), and that
stays up between polls (``ControlPersist``). OpenSSH rather than a library such as asyncssh: it is on
every login node's client side already, reads the site's ``~/.ssh/config`` (ProxyJump, ciphers) as
an administrator expects, and multiplexing keeps a command to one short process (about 5 ms), so the
executors stay synchronous. Key authentication only (``BatchMode``: never a prompt); the host key is
checked strictly against ``[scheduler] ssh_known_hosts``.

Each argv is quoted for the login host's shell (``shlex.join``) and travels as one word after ``--``,
so no value can become an option of ssh or a second shell command. When the connection drops (the
master dies), the next command opens a new one; ssh's exit status 255 with a message saying it never
connected means the command did not run and it is tried once more, every other 255 may have run and is
reported as unavailable without certainty, so a submission looks for its job before submitting again.

``staging = sftp``: a job directory is copied to ``remote_workdir`` before submission (``sftp -b``
over the same connection) and back when the job has ended, then removed there.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from scheduler.executors.batch.commands import SchedulerUnavailable, run_here
from scheduler.settings import SchedulerSettings, SshDestination

log = logging.getLogger(__name__)

SSH_FAILED = 255  # ssh's own exit status for a connection it could not make or lost
STAGE_TIMEOUT = 600.0  # seconds a copy of one job directory may take
# ssh's messages when it never reached a shell on the login host: the command certainly did not run.
_NOT_CONNECTED = re.compile(
    r"connection refused|connection timed out|no route to host|network is unreachable|could not resolve|"
    r"host key verification failed|permission denied \(|kex_exchange_identification|"
    r"connection closed by .* port|connection reset by .* port|control socket connect",
    re.IGNORECASE,
)
_HOST_KEY = re.compile(r"host key verification failed|remote host identification has changed", re.IGNORECASE)
# Characters sftp's batch language reads specially (quotes, escapes, globs) or cannot carry.
_SFTP_UNSAFE = re.compile(r"[\"'\\*?\[\]\n\r\0]")


class SshRunner:
    """Commands on ``[scheduler] remote`` through one multiplexed OpenSSH connection."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.destination = SshDestination.parse(settings.remote)
        self.user = self.destination.user
        self.staging = settings.staging
        self.remote_workdir = PurePosixPath(settings.remote_workdir)
        self._control_dir = Path(tempfile.mkdtemp(prefix="hpc-wps-ssh-"))  # mode 0700: only we reach the master
        options = {
            "BatchMode": "yes",
            "ControlMaster": "auto",
            "ControlPath": str(self._control_dir / "%C"),
            "ControlPersist": "300",  # the master outlives a command by 5 minutes, and close() ends it
            "ConnectTimeout": "10",
            "ServerAliveInterval": "5",  # a silent network drop ends the master within 15 s
            "ServerAliveCountMax": "3",
            "StrictHostKeyChecking": "yes",
        }
        if settings.ssh_key:
            options |= {"IdentityFile": settings.ssh_key, "IdentitiesOnly": "yes"}
        if settings.ssh_known_hosts:
            options |= {"UserKnownHostsFile": settings.ssh_known_hosts, "GlobalKnownHostsFile": "/dev/null"}
        self._options = [f"-o{key}={value}" for key, value in options.items()]

    def _ssh(self, *words: str) -> list[str]:
        port = ["-p", str(self.destination.port)] if self.destination.port else []
        return ["ssh", *self._options, *port, "-l", self.user, *words]

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """``argv`` on the login host: a connection that could not be made is tried once more (the
        master is re-established), then reported as certainly not run."""
        command = shlex.join(argv)
        for attempt in (1, 2):
            done = run_here(self._ssh("--", self.destination.host, command), timeout)
            if done.returncode != SSH_FAILED:
                return done
            message = " ".join(done.stderr.split())[-500:]
            if _HOST_KEY.search(message):
                raise SchedulerUnavailable(self._host_key_refused(message), certain=True)
            if not _NOT_CONNECTED.search(message):
                raise SchedulerUnavailable(
                    f"the SSH connection to {self.destination} broke off during {argv[0]}: {message}"
                )
            if attempt == 1:
                log.info("SSH to %s: no connection (%s); connecting again", self.destination, message)
        raise SchedulerUnavailable(f"cannot reach {self.destination} over SSH: {message}", certain=True)

    def _host_key_refused(self, message: str) -> str:
        known = self._option("UserKnownHostsFile") or "ssh's known_hosts"
        return (
            f"SSH refused {self.destination}: its host key is not the one {known} holds for it "
            f"([scheduler] ssh_known_hosts); nothing is sent until that is settled ({message})"
        )

    def _option(self, key: str) -> str:
        prefix = f"-o{key}="
        return next((o.removeprefix(prefix) for o in self._options if o.startswith(prefix)), "")

    # -- job directories ----------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """Whether the nodes see job directories at this host's paths (not with ``staging = sftp``)."""
        return self.staging != "sftp"

    def path(self, job_dir: Path) -> str:
        """The job directory on the login host: the same path when shared, in remote_workdir when staged."""
        if self.staging == "sftp":
            return str(self.remote_workdir / job_dir.name)
        return str(job_dir)

    def stage_in(self, job_dir: Path) -> None:
        if self.staging == "sftp":
            remote = sftp_word(str(self.remote_workdir))
            self._sftp(f"-mkdir {remote}", f"put -r {sftp_word(str(job_dir))} {remote}")

    def stage_out(self, job_dir: Path) -> None:
        """The job directory back, whole (result, outputs, logs), then removed from the login host."""
        if self.staging != "sftp":
            return
        self._sftp(f"get -r {sftp_word(self.path(job_dir))} {sftp_word(str(job_dir.parent))}")
        done = self.run(["rm", "-rf", "--", self.path(job_dir)], STAGE_TIMEOUT)
        if done.returncode != 0:
            log.warning("cannot remove %s on %s: %s", self.path(job_dir), self.destination, done.stderr.strip())

    def _sftp(self, *commands: str) -> None:
        port = ["-P", str(self.destination.port)] if self.destination.port else []
        argv = ["sftp", *self._options, *port, "-b", "-", "--", f"{self.user}@{self.destination.host}"]
        for attempt in (1, 2):
            done = run_here(argv, STAGE_TIMEOUT, stdin="\n".join(commands) + "\n")
            if done.returncode == 0:
                return
            message = " ".join(done.stderr.split())[-500:]
            if _HOST_KEY.search(message):
                raise SchedulerUnavailable(self._host_key_refused(message), certain=True)
            if attempt == 1 and _NOT_CONNECTED.search(message):
                continue
            raise SchedulerUnavailable(f"SFTP with {self.destination} failed: {message}", certain=True)

    def close(self) -> None:
        """End the master connection (jobs on the cluster go on) and its private directory."""
        if any(self._control_dir.iterdir()):
            argv = self._ssh("-O", "exit", "--", self.destination.host)
            try:
                run_here(argv, 10.0)
            except SchedulerUnavailable as exc:
                log.info("SSH master to %s: %s", self.destination, exc)
        shutil.rmtree(self._control_dir, ignore_errors=True)


def sftp_word(path: str) -> str:
    """A path as one word of sftp's batch language: double-quoted; refused when it holds a quote, an
    escape or a glob character, which sftp would read (and expand) whatever the quoting."""
    if _SFTP_UNSAFE.search(path):
        raise ValueError(f"{path!r} cannot be staged with SFTP: it holds a quote, \\, * ? [ ] or a line break")
    return f'"{path}"'
