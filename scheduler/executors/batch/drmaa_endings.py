"""How a DRMAA job ended, in words that follow "the job's process ": from the JobInfo a session's
``wait`` returns, unless the system's own listing still shows the job with a better reason.

What each library reports:

- Grid Engine's libdrmaa tells an exit, a signal and a deletion apart, and its usage names a
  ``start_time`` only for a job that ran. It kills a job over its h_rt with SIGKILL and says no more
  than the signal: a SIGKILL after at least the requested wall-clock time is taken for the limit. A job
  deleted before it started may come without any usage (DRMAA_ERRNO_NO_RUSAGE, ``is_no_rusage``).
- slurm-drmaa (read here: PSNC's 1.0.x, psnc-apps/slurm-drmaa, and natefoo/slurm-drmaa up to 1.1.x,
  both on drmaa-utils) reports less than Slurm knows. Its job status (``slurmdrmaa_job_update_status``
  in slurm_drmaa/job.c) hands on Slurm's raw exit code as the job's wait status, for FAILED, TIMEOUT,
  NODE_FAIL and PREEMPTED alike, and sets -1 for a CANCELLED job (before 1.1.0 the CANCELLED case fell
  through to the raw exit code as well: "missing break" in its changelog). Its wait macros
  (slurm_drmaa/drmaa.c) read that status as: exited by WIFEXITED; signalled when the second byte is
  128 or more, the signal being that byte minus 128; aborted whenever the lowest bit is set. Slurm
  gives a batch script ended by ``scancel`` or at its time limit (SIGTERM) the raw status 15, so both
  come back ``wasAborted``, neither exited nor signalled; -1 comes back aborted *and* signalled, with
  signal 127 ("unknown signal?!", drmaa-utils' ``fsd_strsignal``). The usage drmaa-utils reports
  (``fsd_job_get_termination_status`` in drmaa_utils/fsd_job.c) names ``start_time`` only when the
  job has one, and slurm-drmaa never sets it. So a cancel and a timeout look the same, and both look
  like a job deleted before it ran.

Slurm's listing tells them apart: ``squeue -t all``, which the DRMAA executor runs once per poll
anyway, shows a job CANCELLED or TIMEOUT (OUT_OF_MEMORY, NODE_FAIL, ...) for MinJobAge after its end,
with the reason the Slurm executor gives (``slurm.py``). Where the listing names a reason, it wins
(``ending_reason``); JobInfo alone (the job already gone from the listing) says only what it can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.executors.batch.base import Listed, signal_name
from scheduler.executors.batch.gridengine import GRID_ENGINE, H_RT, QDEL
from scheduler.executors.batch.slurm import SLURM

# What slurm-drmaa's "aborted" can mean: it never says which, and never whether the job had started.
SLURM_ABORTED = "was cancelled on Slurm or stopped at its time limit (slurm-drmaa does not tell which)"


def walltime_reason(system: str = GRID_ENGINE) -> str:
    return H_RT if system == GRID_ENGINE else f"exceeded its wall-clock limit on {system}"


def deleted_reason(system: str = GRID_ENGINE, started: bool = True) -> str:
    deleted = QDEL if system == GRID_ENGINE else f"was deleted on {system}"
    return deleted + ("" if started else " before it started")


def reason_from_job_info(info: Any, walltime: float | None, system: str = GRID_ENGINE) -> str:
    """Why a job ended, from DRMAA's JobInfo (exit, signal or abort) and its resource usage."""
    usage = info.resourceUsage or {}
    if system == SLURM and info.wasAborted:  # before the signal: slurm-drmaa's -1 also reads as one
        return SLURM_ABORTED
    if info.hasExited:
        return f"exited with code {info.exitStatus} on {system}"
    if info.hasSignal:
        name = signal_name(info.terminatedSignal)
        if name == "SIGKILL" and walltime and _wallclock(usage) >= max(1.0, walltime - 1.0):
            return walltime_reason(system)
        return f"was killed by {name} on {system}"
    if info.wasAborted:
        return deleted_reason(system, started="start_time" in usage or "exit_status" in usage)
    return f"ended on {system} without an exit status"


def ending_reason(info: Any, walltime: float | None, system: str, listed: Listed | None) -> str:
    """Why a reaped job ended: the listing's reason where it names one (Slurm's squeue), else JobInfo's."""
    if listed is not None and listed.reason:
        return listed.reason
    return reason_from_job_info(info, walltime, system)


def is_no_rusage(exc: BaseException) -> bool:
    """drmaa_wait's DRMAA_ERRNO_NO_RUSAGE (24), which the drmaa package raises as a bare Exception: the
    job ended without usage data, as one deleted before it started does."""
    return str(exc).startswith("code 24:")


def _wallclock(usage: Mapping[str, str]) -> float:
    def number(key: str) -> float:
        try:
            return float(usage.get(key, 0.0))
        except ValueError:
            return 0.0

    return max(number("ru_wallclock"), number("end_time") - number("start_time"))
