"""TORQUE/PBS, for pbs-drmaa sites: the one command that lists every job, and what its states mean.

pbs-drmaa submits; the DRMAA executor polls with TORQUE's ``qstat -x``, which prints every job as XML.
PBS Professional's ``qstat -x`` means "finished jobs too" and prints no XML: its output raises
UnknownListing, and the executor falls back to one ``jobStatus`` per job (and says so).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from scheduler.executors.base import NativeState
from scheduler.executors.batch.base import Listed, UnknownListing

PBS = "PBS"

# TORQUE's job_state letters: C completed, E exiting (running its epilogue), H held, Q queued, R running,
# S suspended, T in transit, W waiting for its start time. Letters not listed: queued.
_STATE_MAP = {"C": NativeState.ENDED, "E": NativeState.RUNNING, "R": NativeState.RUNNING}


def qstat_x_command() -> list[str]:
    """Every job, as XML: TORQUE takes no user filter with -x."""
    return ["qstat", "-x"]


def job_key(native_id: str) -> str:
    """The part of a job id every tool agrees on: TORQUE's tools print "12.server.example.org" for the
    job pbs-drmaa calls "12.server"; Grid Engine and Slurm ids are plain numbers and stay as they are."""
    return native_id.strip().split(".", 1)[0]


def parse_qstat_x(text: str) -> dict[str, Listed]:
    """TORQUE's ``qstat -x``: every job by job_key, with its state, name and working directory."""
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
                _STATE_MAP.get(letter, NativeState.QUEUED),
                "",
                (job.findtext("Job_Name") or "").strip(),
                (job.findtext("init_work_dir") or "").strip(),
            )
    return listed
