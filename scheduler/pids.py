"""Naming a local process so that it can be found again after a restart: ``pid:starttime``.

A pid alone is recycled by the kernel; together with the process's start time (field 22 of
/proc/PID/stat, in clock ticks since boot) it names one process for ever, so a restarted dispatcher
never mistakes an unrelated process for a job it was following.
"""

from __future__ import annotations

import os
import signal
import socket


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid``, or None if it is gone (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def process_key(pid: int) -> str:
    return f"{pid}:{start_time(pid) or 0}"


def identity() -> str:
    """This process as ``host/pid:starttime``: what names a dispatcher in native ids and claims."""
    return f"{socket.gethostname()}/{process_key(os.getpid())}"


def pid_namespace() -> str:
    """This process's pid namespace (``pid:[INODE]``): two containers may share a hostname, never a
    pid namespace, and a pid means something only inside its own."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def holder() -> str:
    """This process as ``host/pid:starttime|pidnamespace``: what names the web worker running a job."""
    return f"{identity()}|{pid_namespace()}"


def holder_gone(name: str) -> bool:
    """True only when the process a ``holder()`` names certainly no longer runs: it was on this host,
    in this pid namespace, and is gone. Unknown (another host or namespace, or no name) is not gone."""
    process, _, namespace = name.partition("|")
    return bool(namespace) and namespace == pid_namespace() and running_here(process) is False


def running_here(name: str) -> bool | None:
    """Whether the process named ``host/pid:starttime`` runs; None when it is on another host."""
    host, _, key = name.partition("/")
    return alive(key) if host == socket.gethostname() else None


def alive(key: str) -> bool:
    """True while the process named ``pid:starttime`` (anything after a further colon is ignored) runs."""
    pid, _, rest = key.partition(":")
    try:
        return start_time(int(pid)) == rest.split(":", 1)[0]
    except ValueError:
        return False


def describe_wait_status(status: int) -> str:
    """A wait status in words a client can read: "killed by signal SIGKILL", "exited with code 3"."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"killed by signal {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
