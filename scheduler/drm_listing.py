"""The one command per batch system that lists the state of all of a user's jobs.

DRMAA 1.0 has no call that asks about many jobs at once: ``jobStatus`` is one request to the system
per job. The DRMAA executor therefore asks the system's own listing command once per poll for all of
its jobs, whatever their number, and uses the library only to submit, to cancel and to learn how a
job that has left the listing ended:

- Grid Engine: ``qstat -xml -u USER`` (waiting and running jobs, with their state letters and names);
- Slurm, for slurm-drmaa sites: ``squeue`` in the native Slurm executor's own format, finished jobs
  included for Slurm's MinJobAge (``scheduler.executors.batch.slurm``);
- TORQUE, for pbs-drmaa sites: ``qstat -x``, which prints every job as XML there.

PBS Professional's ``qstat -x`` means "finished jobs too" and prints no XML: its output raises
:class:`UnknownListing`, and the executor falls back to one ``jobStatus`` per job (and says so).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from scheduler.executors.base import NativeState
from scheduler.executors.batch.slurm import SQUEUE_FORMAT, native_status, squeue_rows

GRID_ENGINE = "Grid Engine"
SLURM = "Slurm"
PBS = "PBS"

QUEUED, RUNNING, ENDED = NativeState.QUEUED, NativeState.RUNNING, NativeState.ENDED

# TORQUE's job_state letters: C completed, E exiting (running its epilogue), H held, Q queued, R running,
# S suspended, T in transit, W waiting for its start time.
_TORQUE_STATES = {"C": ENDED, "E": RUNNING, "R": RUNNING}


class UnknownListing(ValueError):
    """The command's output is not the one this module reads (another product of the same name)."""


@dataclass(frozen=True)
class Listed:
    """One job as the listing shows it."""

    state: NativeState  # ENDED where the listing still shows finished jobs (Slurm, TORQUE)
    reason: str = ""  # why it ended, where the listing says (Slurm)
    name: str = ""  # the job's name, where the listing shows it
    workdir: str = ""  # the job's working directory (its job directory), where the listing shows it


def drm_family(drms_info: str) -> str:
    """Which batch system a DRMAA library drives, from its ``drmsInfo`` ("SGE 8.1.9", "SLURM 22.05")."""
    lowered = drms_info.lower()
    if "slurm" in lowered:
        return SLURM
    if "pbs" in lowered or "torque" in lowered:
        return PBS
    return GRID_ENGINE  # SGE, OGE, UGE, Son of Grid Engine, Altair Grid Engine


def listing_command(family: str, user: str) -> list[str]:
    """The command that lists every job of ``user`` on that system, with its state."""
    if family == SLURM:
        return ["squeue", "-h", "-t", "all", "-u", user, "-O", SQUEUE_FORMAT]
    if family == PBS:
        return ["qstat", "-x"]  # TORQUE takes no user filter with -x: every job is listed
    return ["qstat", "-xml", "-u", user]


def cancel_command(family: str, native_id: str) -> list[str]:
    """The system's own command to delete a job (for jobs a DRMAA session of ours does not know)."""
    return ["scancel", native_id] if family == SLURM else ["qdel", native_id]


def job_key(native_id: str) -> str:
    """The part of a job id every tool agrees on: TORQUE's tools print "12.server.example.org" for the
    job pbs-drmaa calls "12.server"; Grid Engine and Slurm ids are plain numbers and stay as they are."""
    return native_id.strip().split(".", 1)[0]


def parse_listing(family: str, text: str) -> dict[str, Listed]:
    """The listing command's output as {job_key(id): Listed}; UnknownListing if it cannot be read."""
    if family == SLURM:
        return _slurm_listing(text)
    if family == PBS:
        return _torque_listing(text)
    return {number: Listed(status_from_qstat(letters), "", name) for number, letters, name in qstat_jobs(text)}


# -- Grid Engine ------------------------------------------------------------------------------------


def qstat_jobs(text: str) -> list[tuple[str, str, str]]:
    """``qstat -xml``: (job number, state letters, job name) of every job listed."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise UnknownListing(f"qstat -xml printed no XML: {exc}") from None
    jobs = []
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        if number:
            jobs.append((number, (job.findtext("state") or "").strip(), (job.findtext("JB_name") or "").strip()))
    return jobs


def parse_qstat_xml(text: str) -> dict[str, str]:
    """``qstat -xml``: job number -> Grid Engine state letters (``qw``, ``hqw``, ``r``, ``t``, ``Eqw``...)."""
    return {number: letters for number, letters, _name in qstat_jobs(text)}


def qstat_names(text: str) -> dict[str, str]:
    """``qstat -xml``: job name -> job number (the last listed of each name)."""
    return {name: number for number, _letters, name in qstat_jobs(text)}


def status_from_qstat(letters: str) -> NativeState:
    """Waiting (``q`` in the letters: qw, hqw, Eqw, hRwq) or started (r, t, s, S, T, R, d on a running job)."""
    return QUEUED if "q" in letters else RUNNING


# -- Slurm ------------------------------------------------------------------------------------------


def _slurm_listing(text: str) -> dict[str, Listed]:
    listed = {}
    for row in squeue_rows(text):
        status = native_status(*row)
        listed[row[0]] = Listed(status.state, status.reason, "", row[-1])  # WorkDir is the last field
    return listed


# -- TORQUE -----------------------------------------------------------------------------------------


def _torque_listing(text: str) -> dict[str, Listed]:
    try:
        root = ET.fromstring(text) if text.strip() else ET.Element("Data")  # no jobs: no output at all
    except ET.ParseError:
        start = text.strip().splitlines()[0][:120] if text.strip() else ""
        raise UnknownListing(f"qstat -x printed no XML (PBS Professional?): {start!r}") from None
    if root.tag != "Data":
        raise UnknownListing(f"qstat -x printed <{root.tag}>, not TORQUE's <Data>")
    listed = {}
    for job in root.iter("Job"):
        native_id = (job.findtext("Job_Id") or "").strip()
        if native_id:
            letter = (job.findtext("job_state") or "").strip()
            listed[job_key(native_id)] = Listed(
                _TORQUE_STATES.get(letter, QUEUED),
                "",
                (job.findtext("Job_Name") or "").strip(),
                (job.findtext("init_work_dir") or "").strip(),
            )
    return listed
