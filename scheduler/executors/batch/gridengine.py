"""Grid Engine state mapping: every state and ending of a Grid Engine job, and the words for them.

The DRMAA executor (``drmaa.py``) submits through Grid Engine's libdrmaa, but DRMAA has no call that
asks about many jobs at once; so it polls with Grid Engine's own listing, one ``qstat -xml -u USER``
for all its jobs, and learns how a job of an earlier session ended from the accounting, ``qacct -j``.
This module reads both: the state letters ``qstat`` shows, and what ``qacct``'s ``failed`` and
``exit_status`` mean. Reasons are worded to follow "the job's process ", which is how the dispatcher
reports a job that ended without a result.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from scheduler.executors.base import NativeState, NativeStatus
from scheduler.executors.batch.base import ARRAYS, Listed, UnknownListing, signal_name

GRID_ENGINE = "Grid Engine"

QUEUED, RUNNING = NativeState.QUEUED, NativeState.RUNNING

# Every letter of a job's state in ``qstat -xml`` (qstat(1)). Letters combine: a job waits while "q" is
# among them, whatever else is (qw, hqw, Eqw, hRwq); any other job has started (r, t, s, S, T, dr,
# Rr). Letters mapped to None only qualify another. qstat lists no finished job.
_STATE_LETTERS: dict[str, NativeState | None] = {
    "q": QUEUED,  # queued: not started yet
    "w": None,  # waiting, with q
    "h": None,  # on hold: with qw while waiting
    "E": None,  # in error, with qw: it waits for an administrator (qmod -cj)
    "R": None,  # restarted
    "d": None,  # being deleted: it ends when the deletion is through
    "r": RUNNING,
    "t": RUNNING,  # being transferred to its node
    "s": RUNNING,  # suspended after it started (qmod -sj)
    "S": RUNNING,  # suspended with its queue
    "T": RUNNING,  # suspended over a threshold of its queue
}

# qacct's ``failed`` codes told apart here (sge_diagnostics(5)); any other is a failure in Grid Engine's
# own words, or a job that could not be started when it has no start time.
FAILED_NONE = 0  # the job ran: its exit_status says how it ended
FAILED_LIMIT = 37  # the qmaster enforced a limit (h_rt: with SIGKILL)
FAILED_AFTER_JOB = 100  # "assumedly after job": with an exit_status of 128 + N, ended by signal N
# qdel of a running job: the execd kills it with SIGKILL and the record says failed 100, exit status 137;
# a SIGKILL from anything else (the kernel, a user on the node) leaves failed 0 (seen on 8.1.9).
DELETED_EXIT_STATUS = 128 + 9

# The words for what Grid Engine did to a job.
QDEL = "was deleted on Grid Engine (qdel)"
H_RT = "exceeded its wall-clock limit (h_rt) on Grid Engine"
NO_RECORD = "left Grid Engine without an accounting record (deleted before it started?)"


# -- qstat ------------------------------------------------------------------------------------------


def qstat_xml_command(user: str) -> list[str]:
    """Every waiting and running job of ``user``, with its state letters and name."""
    return ["qstat", "-xml", "-u", user]


def status_from_qstat(letters: str) -> NativeState:
    """Waiting or started, from a job's state letters."""
    return QUEUED if any(_STATE_LETTERS.get(letter) is QUEUED for letter in letters) else RUNNING


def task_numbers(tasks: str) -> list[int]:
    """The task ids of a task array's ``tasks`` as qstat shows them: "3", "2,3", "1-10:1", "4-10:2,12"."""
    numbers = []
    for part in tasks.split(","):
        span, _, step = part.strip().partition(":")
        first, _, last = span.partition("-")
        if first.isdigit() and (not last or last.isdigit()) and (not step or step.isdigit()):
            numbers.extend(range(int(first), int(last or first) + 1, int(step or 1) or 1))
    return numbers


def parse_qstat_xml(text: str) -> dict[str, Listed]:
    """``qstat -xml``: every job listed, by job number, with its state and name, and every task of a
    task array also by its own id, "NUMBER.TASK" (as DRMAA names it); UnknownListing if the output is
    no XML (an error message)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise UnknownListing(f"qstat -xml printed no XML: {exc}") from None
    listed = {}
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        if number:
            letters = (job.findtext("state") or "").strip()
            entry = Listed(status_from_qstat(letters), "", (job.findtext("JB_name") or "").strip())
            listed[number] = entry
            for task in task_numbers(job.findtext("tasks") or ""):
                listed[f"{number}.{task}"] = entry
    return listed


def qstat_names(text: str) -> dict[str, str]:
    """``qstat -xml``: job name -> job number (the last listed of each name)."""
    return {job.name: number.partition(".")[0] for number, job in parse_qstat_xml(text).items()}


def named_job_dir(jobs_dir: Path, prefix: str, native_id: str, name: str) -> Path | None:
    """Where a listed job of ours runs, from its name (``prefix`` and the job id): its job directory; for
    a task "NUMBER.TASK" of a task array (named after the array's directory), that directory's link T
    to it. None for a name that is not one of ours."""
    if not name.startswith(prefix) or Path(name).name != name:
        return None
    named = name.removeprefix(prefix)
    _number, _, task = native_id.partition(".")
    return (jobs_dir / ARRAYS / named / task).resolve() if task.isdigit() else jobs_dir / named


def delete_command(native_id: str) -> list[str]:
    """qdel of a job, or of one task ("NUMBER.TASK") of a task array, the others going on (qdel(1))."""
    number, _, task = native_id.partition(".")
    return ["qdel", number, "-t", task] if task.isdigit() and number.isdigit() else ["qdel", native_id]


# -- qacct ------------------------------------------------------------------------------------------


def accounting_command(job: str) -> list[str]:
    """The accounting records of a job, by number or name, or of one task ("NUMBER.TASK"): one process,
    which reads the whole file."""
    number, _, task = job.partition(".")
    return ["qacct", "-j", number, "-t", task] if task.isdigit() and number.isdigit() else ["qacct", "-j", job]


def parse_qacct(text: str) -> list[dict[str, str]]:
    """``qacct -j``: one dict per accounting record (a job number may repeat after a qmaster crash)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("====="):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.partition(" ")
        current[key] = value.strip()
    return [r for r in records if r]


def status_from_qacct(record: Mapping[str, str]) -> NativeStatus:
    """An ended job's reason from its accounting record (``failed`` and ``exit_status``)."""
    failed_text = record.get("failed", "0")
    code_text, _, why = failed_text.partition(":")
    try:
        failed = int(code_text.strip() or 0)
    except ValueError:
        failed = -1
    why = why.strip()
    try:
        exit_status = int(record.get("exit_status", "0").split()[0])
    except (ValueError, IndexError):
        exit_status = 0
    if failed == FAILED_LIMIT and "h_rt" in why:
        return NativeStatus(NativeState.ENDED, H_RT)
    if failed == FAILED_NONE:
        return NativeStatus(NativeState.ENDED, f"exited with code {exit_status} on {GRID_ENGINE}")
    if failed == FAILED_AFTER_JOB and exit_status == DELETED_EXIT_STATUS:
        return NativeStatus(NativeState.ENDED, QDEL)
    if failed == FAILED_AFTER_JOB and exit_status > 128:  # a limit enforced on the node, another kill
        name = signal_name(exit_status - 128)
        return NativeStatus(NativeState.ENDED, f"was killed by {name} on {GRID_ENGINE} (deleted, or over a limit)")
    if record.get("start_time", "-/-") in ("-/-", ""):
        return NativeStatus(NativeState.ENDED, f"could not be started by {GRID_ENGINE}: {why} (failed {failed})")
    return NativeStatus(
        NativeState.ENDED, f"failed on {GRID_ENGINE}: {why} (failed {failed}, exit status {exit_status})"
    )
