"""The DRMAA executor's pure parts, without a DRMAA library or Grid Engine: the native specification
each Resources becomes, what captured ``qstat -xml`` and ``qacct -j`` outputs (Grid Engine 8.1.9),
``squeue`` outputs (Slurm 22.05) and DRMAA JobInfo records mean; then the executor over a stand-in
session and stand-in commands: how many queries a poll makes, and where each job's end comes from.
The outputs below were captured on the test cluster (scripts/clusters.sh); only trailing blanks were
removed, and the ``ru_*`` usage lines of most records. TORQUE's is written after its documented format
(no TORQUE here).
"""

from __future__ import annotations

import dataclasses
import getpass
import subprocess
import types
from collections import namedtuple
from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings
from scheduler.executors.base import JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.batch import base as batch
from scheduler.executors.batch.base import Listed, UnknownListing
from scheduler.executors.batch.drmaa import (
    DrmaaExecutor,
    drm_family,
    drmaa_message,
    job_environment,
    listing_command,
    load_error_message,
    native_specification,
    parse_listing,
)
from scheduler.executors.batch.drmaa_endings import SLURM_ABORTED, reason_from_job_info
from scheduler.executors.batch.gridengine import (
    GRID_ENGINE,
    parse_qacct,
    parse_qstat_xml,
    qstat_names,
    status_from_qacct,
    status_from_qstat,
)
from scheduler.executors.batch.pbs import PBS, job_key
from scheduler.executors.batch.slurm import SLURM
from scheduler.failure_reasons import failure_reason
from scheduler.resources import Resources

GiB = 1024**3
MiB = 1024**2

# Two jobs running, four waiting (one of them held with -h, one asking for 2 slots of the smp PE).
QSTAT_XML = """\
<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>36</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>run-qdel</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-24T19:37:05</JAT_start_time>
      <queue_name>all.q@localhost</queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="running">
      <JB_job_number>37</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>run-term</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-24T19:37:05</JAT_start_time>
      <queue_name>all.q@localhost</queue_name>
      <slots>1</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>41</JB_job_number>
      <JAT_prio>0.75000</JAT_prio>
      <JB_name>pe2</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-24T19:37:05</JB_submission_time>
      <queue_name></queue_name>
      <slots>2</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>38</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>pend-qdel</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-24T19:37:05</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>39</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>pend-term</JB_name>
      <JB_owner>root</JB_owner>
      <state>qw</state>
      <JB_submission_time>2026-11-24T19:37:05</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>40</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>held</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-11-24T19:37:05</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
  </job_info>
</job_info>
"""

# Suspended (qmod -sj), being deleted while running (qdel), and in error state (unwritable output path).
QSTAT_XML_STATES = """\
<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>45</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>susp</JB_name>
      <JB_owner>root</JB_owner>
      <state>s</state>
      <JAT_start_time>2026-11-24T19:47:34</JAT_start_time>
      <queue_name>all.q@localhost</queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="running">
      <JB_job_number>47</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>del</JB_name>
      <JB_owner>root</JB_owner>
      <state>dr</state>
      <JAT_start_time>2026-11-24T19:47:36</JAT_start_time>
      <queue_name>all.q@localhost</queue_name>
      <slots>1</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>46</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>err</JB_name>
      <JB_owner>root</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2026-11-24T19:47:34</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
  </job_info>
</job_info>
"""

QSTAT_XML_EMPTY = """\
<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
  </queue_info>
  <job_info>
  </job_info>
</job_info>
"""

# Job 25: sleep 60 with -l h_rt=0:0:5. Job 27: a working directory that does not exist. Job 29: a job
# that killed itself with SIGTERM.
QACCT = """\
==============================================================
qname        all.q
hostname     localhost
group        root
owner        root
project      NONE
department   defaultdepartment
jobname      probe
jobnumber    25
taskid       undefined
account      sge
priority     0
qsub_time    Tue Nov 24 19:36:34 2026
start_time   Tue Nov 24 19:36:34 2026
end_time     Tue Nov 24 19:36:40 2026
granted_pe   NONE
slots        1
failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
exit_status  137                  (Killed)
category     -l h_rt=5
==============================================================
qname        all.q
hostname     localhost
group        root
owner        root
project      NONE
department   defaultdepartment
jobname      probe
jobnumber    27
taskid       undefined
account      sge
priority     0
qsub_time    Tue Nov 24 19:36:34 2026
start_time   -/-
end_time     -/-
granted_pe   NONE
slots        1
failed       28  : changing into working directory
exit_status  0
category     NONE
==============================================================
qname        all.q
hostname     localhost
group        root
owner        root
project      NONE
department   defaultdepartment
jobname      probe
jobnumber    29
taskid       undefined
account      sge
priority     0
qsub_time    Tue Nov 24 19:36:34 2026
start_time   Tue Nov 24 19:36:37 2026
end_time     Tue Nov 24 19:36:37 2026
granted_pe   NONE
slots        1
failed       100 : assumedly after job
exit_status  143                  (Terminated)
category     NONE
"""

# Job 28: exited with status 3, the whole record.
QACCT_FULL = """\
==============================================================
qname        all.q
hostname     localhost
group        root
owner        root
project      NONE
department   defaultdepartment
jobname      probe
jobnumber    28
taskid       undefined
account      sge
priority     0
qsub_time    Tue Nov 24 19:36:34 2026
start_time   Tue Nov 24 19:36:36 2026
end_time     Tue Nov 24 19:36:36 2026
granted_pe   NONE
slots        1
failed       0
exit_status  3
ru_wallclock 0s
ru_utime     0.000s
ru_stime     0.007s
ru_maxrss    4.480KB
ru_ixrss     0.000B
ru_ismrss    0.000B
ru_idrss     0.000B
ru_isrss     0.000B
ru_minflt    221
ru_majflt    0
ru_nswap     0
ru_inblock   0
ru_oublock   8
ru_msgsnd    0
ru_msgrcv    0
ru_nsignals  0
ru_nvcsw     1
ru_nivcsw    1
cpu          0.007s
mem          0.000Bs
io           0.000B
iow          0.000s
maxvmem      0.000B
arid         undefined
ar_sub_time  undefined
category     NONE
"""


SEPARATOR = "=" * 62 + "\n"


def qacct_record(number: str) -> str:
    """One record of QACCT, as ``qacct -j NUMBER`` prints it."""
    (record,) = [r for r in QACCT.split(SEPARATOR) if f"jobnumber    {number}\n" in r]
    return SEPARATOR + record


# -- native specification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (Resources(1, GiB, 3600), "-l h_rt=1:00:00 -l h_vmem=1024M"),
        (Resources(1, 100 * MiB + 1, 5), "-l h_rt=0:00:05 -l h_vmem=101M"),  # rounded up, never below
        (Resources(4, 2 * GiB, 90.5, "long.q"), "-l h_rt=0:01:31 -l h_vmem=512M -pe smp 4 -q long.q"),
        (Resources(3, GiB, 86400), "-l h_rt=24:00:00 -l h_vmem=342M -pe smp 3"),  # h_vmem is per slot
        (
            Resources(1, GiB, 60, "all.q@node1", "-P proj -l tmp_free=1G"),
            "-l h_rt=0:01:00 -l h_vmem=1024M -q all.q@node1 -P proj -l tmp_free=1G",
        ),
    ],
)
def test_grid_engine_native_specification(resources, expected):
    assert native_specification(resources) == expected


def test_parallel_environment_is_the_configured_one():
    """[scheduler] parallel_environment names the PE whose slots a multi-core job asks for (sites call
    it smp, make, threaded, shm...); a one-core job asks for none; a name that is not one word is
    refused when the configuration is read, before any job."""
    four = Resources(4, 2 * GiB, 60)
    assert native_specification(four, GRID_ENGINE, "threaded") == "-l h_rt=0:01:00 -l h_vmem=512M -pe threaded 4"
    assert native_specification(four) == native_specification(four, GRID_ENGINE, "smp")  # the default
    assert "-pe" not in native_specification(Resources(1, GiB, 60), GRID_ENGINE, "threaded").split()
    assert "threaded" not in native_specification(four, SLURM, "threaded")  # Slurm and PBS have no PEs
    with pytest.raises(ValueError, match="parallel environment"):
        native_specification(four, GRID_ENGINE, "-l h_rt=99:0:0")
    settings = load_settings(environ={"HPC_WPS_SCHEDULER_PARALLEL_ENVIRONMENT": "mpi*"})
    assert settings.scheduler.parallel_environment == "mpi*"  # Grid Engine takes wildcards here
    assert load_settings(environ={}).scheduler.parallel_environment == "smp"
    for bad in ("smp 4", "-pe", "a;b", ""):
        with pytest.raises(SettingsError, match=r"\[scheduler\] parallel_environment"):
            load_settings(environ={"HPC_WPS_SCHEDULER_PARALLEL_ENVIRONMENT": bad})


def test_slurm_and_pbs_native_specification():
    resources = Resources(2, 3 * GiB, 3599, "short")
    assert native_specification(resources, SLURM) == (
        "--time=1:00 --mem=3072 --nodes=1 --ntasks=1 --mincpus=2 --partition=short"
    )
    assert native_specification(Resources(1, GiB, 61), SLURM).startswith("--time=0:02 ")  # minutes, rounded up
    assert native_specification(resources, PBS) == "-l walltime=0:59:59,mem=3072mb,nodes=1:ppn=2 -q short"


@pytest.mark.parametrize("queue", ["all.q -l h_rt=99:0:0", "-l", "a'b", 'a"b', "a;b", "a\nb", "a\tb", "$(id)", ""])
def test_a_queue_cannot_add_options(queue):
    """Each value is one word: a queue that would split, quote or start an option is refused. (The
    service refuses spaces and shell characters in requests already; this also covers [scheduler] queue.)"""
    resources = Resources(1, GiB, 60, queue)
    if not queue:
        assert "-q" not in native_specification(resources).split()
        return
    for family in (GRID_ENGINE, SLURM, PBS):
        with pytest.raises(ValueError, match="cannot be passed to the batch system"):
            native_specification(resources, family)


def test_drm_family_from_drms_info():
    assert drm_family("SGE 8.1.9") == GRID_ENGINE
    assert drm_family("UGE 8.6.4") == GRID_ENGINE
    assert drm_family("SLURM 22.05") == SLURM
    assert drm_family("PBS/Torque") == PBS


# -- qstat and qacct ----------------------------------------------------------------------------------


def test_qstat_xml_running_pending_and_held():
    listed = parse_qstat_xml(QSTAT_XML)
    assert {number: job.state for number, job in listed.items()} == {
        "36": NativeState.RUNNING,  # r
        "37": NativeState.RUNNING,
        "41": NativeState.QUEUED,  # qw
        "38": NativeState.QUEUED,
        "39": NativeState.QUEUED,
        "40": NativeState.QUEUED,  # hqw
    }
    assert [status_from_qstat(letters) for letters in ("r", "qw", "hqw")] == [
        NativeState.RUNNING,
        NativeState.QUEUED,
        NativeState.QUEUED,
    ]
    assert listed["40"].name == "held" and qstat_names(QSTAT_XML)["held"] == "40"


def test_qstat_xml_suspended_deleting_error_and_empty():
    listed = parse_qstat_xml(QSTAT_XML_STATES)
    assert list(listed) == ["45", "47", "46"]  # s, dr, Eqw
    assert listed["45"].state is status_from_qstat("s") is NativeState.RUNNING  # suspended after it started
    assert listed["47"].state is status_from_qstat("dr") is NativeState.RUNNING  # still ending
    assert listed["46"].state is status_from_qstat("Eqw") is NativeState.QUEUED  # error state: waits for an admin
    assert parse_qstat_xml(QSTAT_XML_EMPTY) == {}


def test_qacct_records_and_their_reasons():
    records = parse_qacct(QACCT)
    assert [r["jobnumber"] for r in records] == ["25", "27", "29"]
    assert records[0]["category"] == "-l h_rt=5"
    reasons = [status_from_qacct(r) for r in records]
    assert all(s.state is NativeState.ENDED for s in reasons)
    assert [s.reason for s in reasons] == [
        "exceeded its wall-clock limit (h_rt) on Grid Engine",
        "could not be started by Grid Engine: changing into working directory (failed 28)",
        "was killed by SIGTERM on Grid Engine (deleted, or over a limit)",
    ]


def test_qacct_full_record_exit_status():
    (record,) = parse_qacct(QACCT_FULL)
    assert record["jobnumber"] == "28" and record["ru_wallclock"] == "0s"
    assert status_from_qacct(record) == NativeStatus(NativeState.ENDED, "exited with code 3 on Grid Engine")


def test_qacct_repeated_job_number_and_padding():
    """A job number seen twice (after a qmaster crash) gives two records, the last one is the newest;
    trailing blanks, as qacct prints them, do not matter."""
    twice = qacct_record("25") + QACCT_FULL.replace("jobnumber    28", "jobnumber    25")
    padded = "\n".join(line + "   " if not line.startswith("=") else line for line in twice.splitlines())
    records = parse_qacct(padded)
    assert [r["jobnumber"] for r in records] == ["25", "25"]
    assert records[0]["failed"] == "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit"
    assert status_from_qacct(records[-1]).reason == "exited with code 3 on Grid Engine"


# -- the listing commands -----------------------------------------------------------------------------

# squeue -h -t all -u root -O <SQUEUE_FORMAT> on Slurm 22.05: a failed job (exit 3), a held one, a running one.
SQUEUE_LISTING = """\
7|FAILED|NonZeroExitCode|768|365-00:00:00|0|/tmp|
5|PENDING|JobHeldUser|0|UNLIMITED|0|/tmp|
6|RUNNING|None|0|365-00:00:00|0|/srv/wps/jobs/3f2a|
"""

# TORQUE's qstat -x (one line in reality; attributes cut to those read and a few more), after its
# documented format: a running job, a held one, a completed one.
TORQUE_LISTING = (
    '<?xml version="1.0"?>\n<Data>'
    "<Job><Job_Id>665199.pbs.example.org</Job_Id><Job_Name>wps-3f2a</Job_Name><Job_Owner>wps@login1</Job_Owner>"
    "<job_state>R</job_state><queue>batch</queue><init_work_dir>/srv/wps/jobs/3f2a</init_work_dir></Job>"
    "<Job><Job_Id>665200.pbs.example.org</Job_Id><Job_Name>wps-77c1</Job_Name>"
    "<job_state>H</job_state><queue>batch</queue></Job>"
    "<Job><Job_Id>665198.pbs.example.org</Job_Id><Job_Name>wps-0b9e</Job_Name>"
    "<job_state>C</job_state><queue>batch</queue><exit_status>0</exit_status></Job>"
    "</Data>\n"
)

# PBS Professional's qstat -x: finished jobs too, as a table.
PBS_PRO_LISTING = """\
Job id            Name             User              Time Use S Queue
----------------  ---------------- ----------------  -------- - -----
1021.pbspro       wps-3f2a         wps               00:00:01 F workq
"""


def test_listing_commands():
    assert listing_command(GRID_ENGINE, "wps") == ["qstat", "-xml", "-u", "wps"]
    squeue = listing_command(SLURM, "wps")
    assert squeue[:7] == ["squeue", "-h", "-r", "-t", "all", "-u", "wps"] and squeue[-2] == "-O"
    assert listing_command(PBS, "wps") == ["qstat", "-x"]


def test_grid_engine_listing():
    listed = parse_listing(GRID_ENGINE, QSTAT_XML)
    assert listed["36"] == Listed(NativeState.RUNNING, "", "run-qdel")
    assert listed["40"] == Listed(NativeState.QUEUED, "", "held")
    assert len(listed) == 6
    assert parse_listing(GRID_ENGINE, QSTAT_XML_EMPTY) == {}
    with pytest.raises(UnknownListing):
        parse_listing(GRID_ENGINE, "error: commlib error: got select error (Connection refused)")


def test_slurm_listing_keeps_finished_jobs_with_their_reason():
    listed = parse_listing(SLURM, SQUEUE_LISTING)
    assert listed == {
        "7": Listed(NativeState.ENDED, "failed on Slurm with exit code 3", "", "/tmp"),
        "5": Listed(NativeState.QUEUED, "", "", "/tmp"),
        "6": Listed(NativeState.RUNNING, "", "", "/srv/wps/jobs/3f2a"),
    }


def test_torque_listing_and_pbs_professional_refused():
    listed = parse_listing(PBS, TORQUE_LISTING)
    assert listed == {
        "665199": Listed(NativeState.RUNNING, "", "wps-3f2a", "/srv/wps/jobs/3f2a"),
        "665200": Listed(NativeState.QUEUED, "", "wps-77c1"),
        "665198": Listed(NativeState.ENDED, "", "wps-0b9e"),
    }
    assert job_key("665199.pbs") == "665199" and job_key("4711") == "4711"  # pbs-drmaa's id, Grid Engine's
    assert parse_listing(PBS, "") == {}  # TORQUE prints nothing when there is no job
    with pytest.raises(UnknownListing, match="PBS Professional"):
        parse_listing(PBS, PBS_PRO_LISTING)


# -- DRMAA JobInfo ------------------------------------------------------------------------------------

JobInfo = namedtuple(
    "JobInfo", "jobId hasExited hasSignal terminatedSignal hasCoreDump wasAborted exitStatus resourceUsage"
)
RAN = {
    "start_time": "1795548994.0000",
    "end_time": "1795549000.0000",
    "ru_wallclock": "6.0000",
    "exit_status": "137.0000",
}
NEVER_RAN = {"io": "0.0000", "submission_time": "1795548994.0000", "priority": "0.0000"}


@pytest.mark.parametrize(
    ("info", "walltime", "reason"),
    [
        (JobInfo("28", True, False, "", False, False, 3, {}), 60, "exited with code 3 on Grid Engine"),
        (
            JobInfo("25", False, True, "SIGKILL", False, False, 0, RAN),
            5,
            "exceeded its wall-clock limit (h_rt) on Grid Engine",
        ),
        (JobInfo("25", False, True, "SIGKILL", False, False, 0, RAN), 3600, "was killed by SIGKILL on Grid Engine"),
        (JobInfo("29", False, True, "SIGTERM", False, False, 0, RAN), 60, "was killed by SIGTERM on Grid Engine"),
        (JobInfo("36", False, False, "", False, True, 0, RAN), 60, "was deleted on Grid Engine (qdel)"),
        (
            JobInfo("26", False, False, "", False, True, 0, NEVER_RAN),
            60,
            "was deleted on Grid Engine (qdel) before it started",
        ),
    ],
)
def test_reason_from_job_info(info, walltime, reason):
    assert reason_from_job_info(info, walltime) == reason


# -- loading the library, the job's environment -------------------------------------------------------


def test_load_error_names_the_preload_setting():
    exc = OSError("/lib/x86_64-linux-gnu/libjemalloc.so.2: cannot allocate memory in static TLS block")
    message = load_error_message("/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0", exc)
    assert message.startswith("cannot load the DRMAA library /usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0: ")
    assert "set [scheduler] drmaa_preload = /lib/x86_64-linux-gnu/libjemalloc.so.2" in message
    missing = load_error_message("", RuntimeError("Could not find drmaa library.  Please specify its full path"))
    assert "set [scheduler] drmaa_library" in missing
    assert "pip install" in load_error_message("", ModuleNotFoundError("No module named 'drmaa'"))


def test_job_environment_is_minimal():
    environ = {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/opt/lib",
        "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
        "LD_PRELOAD": "/lib/libjemalloc.so.2",
        "HPC_WPS_DATABASE_URL": "postgresql://secret@db/wps",
        "HOME": "/root",
        "PYWPS_CFG": "/etc/mybird/pywps.cfg",  # where a PyWPS process finds its own sections
    }
    env = job_environment(environ, "/srv/hpc-wps")
    assert env == {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/srv/hpc-wps:/opt/lib",
        "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
        "PYWPS_CFG": "/etc/mybird/pywps.cfg",
    }
    assert job_environment({"PATH": "/bin"}, None) == {"PATH": "/bin"}


def test_drmaa_message_drops_the_code():
    assert drmaa_message(Exception("code 17: error: no suitable queues")) == "error: no suitable queues"


# -- the executor over a stand-in session -------------------------------------------------------------


class FakeErrors:
    class DrmaaException(Exception):
        pass

    class InvalidJobException(DrmaaException):
        pass

    class ExitTimeoutException(DrmaaException):
        pass

    class DeniedByDrmException(DrmaaException):
        pass

    class DrmCommunicationException(DrmaaException):
        pass

    class NoActiveSessionException(DrmaaException):
        pass

    InvalidAttributeValueException = InvalidAttributeFormatException = DeniedByDrmException
    ConflictingAttributeValuesException = InvalidArgumentException = DeniedByDrmException
    AlreadyActiveSessionException = DrmaaException


class FakeSession:
    """Stands in for drmaa.Session (whose method names it keeps): states, JobInfos and errors by job id;
    every call recorded."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.infos: dict[str, object] = {}
        self.calls: list[tuple[str, str]] = []
        self.templates: list[types.SimpleNamespace] = []
        self.run_error: Exception | None = None

    def jobStatus(self, native_id):
        self.calls.append(("jobStatus", native_id))
        if native_id not in self.states:
            raise FakeErrors.InvalidJobException("code 18: The job specified by the 'jobid' does not exist.")
        return self.states[native_id]

    def wait(self, native_id, timeout):
        self.calls.append(("wait", native_id))
        if native_id not in self.states:
            raise FakeErrors.InvalidJobException("code 18: The job specified by the 'jobid' does not exist.")
        if native_id not in self.infos:
            raise FakeErrors.ExitTimeoutException("code 23: time-out condition")
        info = self.infos.pop(native_id)
        del self.states[native_id]  # reaped: the session forgets it
        if isinstance(info, Exception):
            raise info
        return info

    def control(self, native_id, action):
        self.calls.append(("control", native_id))
        if native_id not in self.states:
            raise FakeErrors.InvalidJobException("code 18: There are no jobs registered")

    def createJobTemplate(self):
        return types.SimpleNamespace()

    def deleteJobTemplate(self, template):
        pass

    def runJob(self, template):
        self.calls.append(("runJob", template.jobName))
        if self.run_error is not None:
            raise self.run_error
        self.templates.append(template)
        return "101"


@pytest.fixture
def executor(tmp_path, monkeypatch):
    settings = load_settings(environ={}).replace("scheduler", system="drmaa", python="/opt/py/bin/python3 -X utf8")
    executor = DrmaaExecutor(settings.scheduler, tmp_path)
    session = FakeSession()
    fake = types.SimpleNamespace(
        errors=FakeErrors,
        Session=types.SimpleNamespace(TIMEOUT_NO_WAIT=0),
        JobControlAction=types.SimpleNamespace(TERMINATE="terminate"),
    )
    executor._drmaa, executor._session, executor.drms = fake, session, "SGE 8.1.9"
    executor.system = drm_family(executor.drms)  # as opening the session does
    commands: list[list[str]] = []
    answers: dict[str, tuple[int, str, str]] = {}

    def run(argv, **kwargs):  # type: ignore[no-untyped-def]
        """Stands in for subprocess.run: answers by command line; code 127 is a command not installed."""
        commands.append(argv)
        code, out, err = answers.get(" ".join(argv), (1, "", f"error: job id {argv[-1]} not found"))
        if code == 127:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        return subprocess.CompletedProcess(argv, code, out, err)

    monkeypatch.setattr(batch.subprocess, "run", run)
    executor.fake_session, executor.commands, executor.answers = session, commands, answers  # type: ignore[attr-defined]
    return executor


def spec(tmp_path: Path, resources: Resources | None = None) -> JobSpec:
    job_dir = tmp_path / "job-1"
    job_dir.mkdir(exist_ok=True)
    return JobSpec("job-1", "sleep", job_dir, {}, resources or Resources(2, GiB, 30, "all.q"))


def test_submit_builds_the_template(executor, tmp_path):
    native_id = executor.submit(spec(tmp_path))
    assert native_id == "101"
    (template,) = executor.fake_session.templates
    job_dir = str(tmp_path / "job-1")
    assert template.remoteCommand == "/opt/py/bin/python3"
    assert template.args == ["-X", "utf8", "-m", "scheduler.run_job", job_dir]
    assert template.jobName == "wps-job-1" and template.workingDirectory == job_dir
    assert template.outputPath == f":{job_dir}/stdout" and template.errorPath == f":{job_dir}/stderr"
    assert template.joinFiles is False
    assert template.nativeSpecification == "-l h_rt=0:00:30 -l h_vmem=512M -pe smp 2 -q all.q"
    assert "LD_PRELOAD" not in template.jobEnvironment
    assert (tmp_path / "job-1" / "drmaa.submitted").read_text() == "101"
    assert executor.describe_queued(native_id) == "queued on Grid Engine as job 101"
    # Offered again (the id never reached the job table): the same job, not a second one.
    assert executor.submit(spec(tmp_path)) == "101"
    assert [c for c in executor.fake_session.calls if c[0] == "runJob"] == [("runJob", "wps-job-1")]


def test_submit_asks_for_the_configured_parallel_environment(executor, tmp_path):
    executor.settings = dataclasses.replace(executor.settings, parallel_environment="threaded")
    executor.submit(spec(tmp_path))
    assert executor.fake_session.templates[0].nativeSpecification == (
        "-l h_rt=0:00:30 -l h_vmem=512M -pe threaded 2 -q all.q"
    )


def test_submit_errors(executor, tmp_path):
    with pytest.raises(SubmitError, match="cannot be passed") as refused:
        executor.submit(spec(tmp_path, Resources(1, GiB, 30, "a -b")))
    assert not refused.value.retry
    executor.fake_session.run_error = FakeErrors.DeniedByDrmException("code 17: error: no suitable queues")
    with pytest.raises(SubmitError, match="Grid Engine refused the job: error: no suitable queues") as denied:
        executor.submit(spec(tmp_path))
    assert not denied.value.retry and not (tmp_path / "job-1" / "drmaa.submitted").exists()
    executor.fake_session.run_error = FakeErrors.DrmCommunicationException("code 2: failed receiving gdi request")
    with pytest.raises(SubmitError, match="did not take the job") as unreachable:
        executor.submit(spec(tmp_path))
    assert unreachable.value.retry
    # The answer never came: the job may be there. The next try finds it by name instead of submitting again.
    executor.fake_session.run_error = None
    qstat = QSTAT_XML.replace("<JB_name>held</JB_name>", "<JB_name>wps-job-1</JB_name>")
    executor.answers["qstat -xml -u " + getpass.getuser()] = (0, qstat, "")
    assert executor.submit(spec(tmp_path)) == "40"
    assert not executor.fake_session.templates


def qstat_xml(jobs: dict[str, tuple[str, str]]) -> str:
    """A ``qstat -xml`` listing shaped as QSTAT_XML, of {job number: (state letters, job name)}."""
    entries = "".join(
        f"<job_list><JB_job_number>{number}</JB_job_number><JB_name>{name}</JB_name>"
        f"<JB_owner>root</JB_owner><state>{letters}</state></job_list>"
        for number, (letters, name) in jobs.items()
    )
    return f"<?xml version='1.0'?><job_info><queue_info>{entries}</queue_info><job_info></job_info></job_info>"


def listing(executor, jobs: dict[str, tuple[str, str]]) -> None:
    """What the stand-in ``qstat -xml -u USER`` answers from now on."""
    executor.answers[" ".join(listing_command(GRID_ENGINE, getpass.getuser()))] = (0, qstat_xml(jobs), "")


def test_a_poll_is_one_listing_whatever_the_number_of_jobs(executor):
    """200 jobs waiting or running: one qstat, no library call. Jobs that leave the listing cost a
    local reap each (no request to the qmaster), once in their life."""
    ids = [str(n) for n in range(1000, 1200)]
    executor.fake_session.states = dict.fromkeys(ids, "running")
    listing(executor, {n: ("qw" if int(n) % 2 else "r", f"wps-{n}") for n in ids})
    statuses = executor.poll_many(ids)
    assert [s.state for s in statuses.values()].count(NativeState.QUEUED) == 100
    assert [s.state for s in statuses.values()].count(NativeState.RUNNING) == 100
    assert executor.last_poll == {"qstat": 1} and executor.queries == 1
    assert executor.fake_session.calls == []
    for count in (20, 2):  # fewer jobs in flight: still one query
        listing(executor, {n: ("r", f"wps-{n}") for n in ids[:count]})
        executor.poll_many(ids[:count])
        assert executor.last_poll == {"qstat": 1}
    # Three jobs end: each reaped once (wait), still one query; then remembered until settled.
    for n in ids[:3]:
        executor.fake_session.infos[n] = JobInfo(n, True, False, "", False, False, 0, RAN)
    listing(executor, {n: ("r", f"wps-{n}") for n in ids[3:20]})
    statuses = executor.poll_many(ids[:20])
    assert all(statuses[n] == NativeStatus(NativeState.ENDED, "exited with code 0 on Grid Engine") for n in ids[:3])
    assert executor.last_poll == {"qstat": 1, "wait": 3} and executor.queries == 1
    executor.poll_many(ids[:20])
    assert executor.last_poll == {"qstat": 1}


def test_jobs_leaving_the_listing_are_reaped_once(executor):
    session = executor.fake_session
    session.states = dict.fromkeys("12345", "running")
    session.infos = {
        "3": JobInfo("3", True, False, "", False, False, 0, RAN),
        "5": Exception("code 24: no usage information was returned for the completed job"),
    }
    executor._cancelled["5"] = 0.0  # dismissed while it waited
    listing(executor, {"1": ("qw", "wps-a"), "2": ("r", "wps-b"), "4": ("hqw", "wps-c")})
    statuses = executor.poll_many(["1", "2", "3", "4", "5"])
    assert statuses == {
        "1": NativeStatus(NativeState.QUEUED),
        "2": NativeStatus(NativeState.RUNNING),
        "3": NativeStatus(NativeState.ENDED, "exited with code 0 on Grid Engine"),
        "4": NativeStatus(NativeState.QUEUED),
        "5": NativeStatus(NativeState.ENDED, "was deleted on Grid Engine (qdel) before it started"),
    }
    assert session.calls == [("wait", "3"), ("wait", "5")] and executor.queries == 1
    session.calls.clear()
    again = executor.poll_many(["3", "5"])  # the settle did not happen yet: same answer, from memory
    assert again == {k: statuses[k] for k in ("3", "5")} and session.calls == [] and executor.queries == 0
    # Gone from the listing, but the session has not heard of its end yet: no news, not an end.
    listing(executor, {})
    assert executor.poll_many(["2"]) == {}
    session.infos["2"] = JobInfo("2", False, True, "SIGKILL", False, False, 0, RAN)
    assert executor.poll_many(["2"]) == {"2": NativeStatus(NativeState.ENDED, "was killed by SIGKILL on Grid Engine")}


def test_an_end_the_session_never_hears_of_comes_from_the_result_file(executor, tmp_path, monkeypatch):
    executor.fake_session.states = {"8": "running"}
    listing(executor, {"8": ("r", "wps-job-8")})
    executor.poll_many(["8"])  # its name says where its job directory is
    listing(executor, {})
    assert executor.poll_many(["8"]) == {}
    (tmp_path / "job-8").mkdir()
    (tmp_path / "job-8" / "result.json").write_text('{"status": "succeeded", "outputs": {}, "message": ""}')
    monkeypatch.setattr("scheduler.executors.batch.base.VANISH_GRACE", 0.0)
    assert executor.poll_many(["8"]) == {"8": NativeStatus(NativeState.ENDED, "ended on Grid Engine")}
    assert executor.last_poll == {"qstat": 1, "wait": 1}  # no accounting lookup: the result decides


def test_jobs_of_an_earlier_session_are_followed_with_the_listing_and_accounting(executor, tmp_path, monkeypatch):
    executor.answers["qacct -j 25"] = (0, qacct_record("25").replace("jobname      probe", "jobname      wps-x"), "")
    for native_id in ("45", "46", "48", "25", "99"):
        executor.attach(native_id)
    listing(executor, {"45": ("s", "wps-a"), "46": ("Eqw", "wps-b"), "48": ("r", "wps-done")})
    assert executor.poll_many(["45", "46", "48", "25", "99"]) == {
        "45": NativeStatus(NativeState.RUNNING),
        "46": NativeStatus(NativeState.QUEUED),
        "48": NativeStatus(NativeState.RUNNING),
        "25": NativeStatus(NativeState.ENDED, "exceeded its wall-clock limit (h_rt) on Grid Engine"),
    }  # 99: in neither the listing nor the accounting yet: no news until the grace period is over
    assert executor.last_poll == {"qstat": 1, "qacct": 2}  # one listing; accounting for the two gone
    assert executor.fake_session.calls == []  # an earlier session's jobs: never asked of this session
    # 48 ends with its result file (its name gave its directory): no accounting lookup for it.
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "result.json").write_text('{"status": "failed", "outputs": {}, "message": "boom"}')
    listing(executor, {"45": ("s", "wps-a"), "46": ("Eqw", "wps-b")})
    monkeypatch.setattr("scheduler.executors.batch.base.VANISH_GRACE", 0.0)
    statuses = executor.poll_many(["45", "46", "48", "99"])
    assert statuses["48"] == NativeStatus(NativeState.ENDED, "ended on Grid Engine")
    assert statuses["99"].reason == "left Grid Engine without an accounting record (deleted before it started?)"
    assert executor.last_poll == {"qstat": 1, "qacct": 1}  # for 99 only


def test_accounting_lookups_per_poll_are_bounded(executor):
    """Many jobs of an earlier session gone at once, none with a result file (the service was down while
    they were killed): at most ACCOUNTING_PER_POLL qacct per poll, the others in the next polls."""
    ids = [str(n) for n in range(500, 510)]
    for native_id in ids:
        executor.attach(native_id)
        record = qacct_record("29").replace("jobnumber    29", f"jobnumber    {native_id}")
        executor.answers[f"qacct -j {native_id}"] = (0, record.replace("jobname      probe", "jobname      wps-y"), "")
    listing(executor, {})
    ended: dict[str, NativeStatus] = {}
    polls = []
    while len(ended) < len(ids):
        ended.update(executor.poll_many([n for n in ids if n not in ended]))
        polls.append(dict(executor.last_poll))
    assert polls == [{"qstat": 1, "qacct": 4}, {"qstat": 1, "qacct": 4}, {"qstat": 1, "qacct": 2}]
    assert {s.reason for s in ended.values()} == {"was killed by SIGTERM on Grid Engine (deleted, or over a limit)"}


def test_without_a_usable_listing_each_job_is_asked(executor, caplog):
    """A site whose listing command is missing (or is another product's: PBS Professional's qstat -x)
    falls back to DRMAA's jobStatus per job, says so once, and does not run the command again."""
    session = executor.fake_session
    session.states = {"1": "queued_active", "2": "running", "3": "done"}
    session.infos = {"3": JobInfo("3", True, False, "", False, False, 2, RAN)}
    executor.answers[" ".join(listing_command(GRID_ENGINE, getpass.getuser()))] = (127, "", "qstat: not found")
    statuses = executor.poll_many(["1", "2", "3"])
    assert statuses == {
        "1": NativeStatus(NativeState.QUEUED),
        "2": NativeStatus(NativeState.RUNNING),
        "3": NativeStatus(NativeState.ENDED, "exited with code 2 on Grid Engine"),
    }
    assert executor.last_poll == {"qstat": 1, "jobStatus": 3, "wait": 1}
    assert "qstat is not installed on this host" in caplog.text
    executor.poll_many(["1", "2"])
    assert executor.last_poll == {"jobStatus": 2}
    # A job of an earlier session: Grid Engine's jobStatus knows none, running or not. Without a listing
    # only a record ends it (here, none yet), never the time it has been unknown.
    executor.attach("4")
    executor._missing["4"] = 0.0  # unknown for ages
    assert executor.poll_many(["4"]) == {}
    assert executor.last_poll == {"jobStatus": 1, "qacct": 1}
    pbs = executor.__class__(executor.settings, executor.jobs_dir)
    pbs._drmaa, pbs._session, pbs.system = executor._drmaa, session, PBS
    executor.answers[" ".join(listing_command(PBS, getpass.getuser()))] = (0, PBS_PRO_LISTING, "")
    assert pbs.poll_many(["1"]) == {"1": NativeStatus(NativeState.QUEUED)}
    assert "PBS Professional" in pbs._listing_unusable


def test_a_listing_that_fails_is_a_failed_poll(executor):
    executor.answers[" ".join(listing_command(GRID_ENGINE, getpass.getuser()))] = (
        1,
        "",
        "error: unable to contact qmaster using port 6444 on host localhost",
    )
    with pytest.raises(SubmitError, match="Grid Engine does not answer: qstat -xml: error: unable to contact"):
        executor.poll_many(["1"])
    assert executor.fake_session.calls == []


def test_slurm_drmaa_site_lists_with_squeue(executor):
    """slurm-drmaa: one squeue for all jobs; one of an earlier session that squeue still shows as ended
    takes Slurm's reason; cancelling it is scancel."""
    executor.system = SLURM
    executor.answers[" ".join(listing_command(SLURM, getpass.getuser()))] = (0, SQUEUE_LISTING, "")
    executor.attach("7")
    executor.fake_session.states = {"5": "queued_active", "6": "running"}
    assert executor.poll_many(["5", "6", "7"]) == {
        "5": NativeStatus(NativeState.QUEUED),
        "6": NativeStatus(NativeState.RUNNING),
        "7": NativeStatus(NativeState.ENDED, "failed on Slurm with exit code 3"),
    }
    assert executor.last_poll == {"squeue": 1}
    executor.attach("5")
    executor.cancel("5")
    assert executor.commands[-1] == ["scancel", "5"]


def test_cancel_terminates_once_and_uses_qdel_for_earlier_sessions(executor):
    executor.fake_session.states = {"7": "running"}
    executor.cancel("7")
    executor.cancel("7")  # the dispatcher asks every poll until the job has ended: sent once
    assert executor.fake_session.calls == [("control", "7")]
    executor.cancel("8")  # unknown to the session: an earlier dispatcher's
    assert executor.commands == [["qdel", "8"]]


def test_no_session_answer_before_runjob_leaves_no_marker(executor, tmp_path, monkeypatch):
    def unreachable():  # type: ignore[no-untyped-def]
        raise FakeErrors.DrmCommunicationException("code 2: failed receiving gdi request")

    monkeypatch.setattr(executor.fake_session, "createJobTemplate", unreachable)
    with pytest.raises(SubmitError, match="did not take the job") as error:
        executor.submit(spec(tmp_path))
    assert error.value.retry and not (tmp_path / "job-1" / "drmaa.submitted").exists()


def test_a_failed_reap_is_no_news_not_a_crash(executor):
    executor.fake_session.states = {"9": "failed"}
    executor.fake_session.infos = {"9": Exception("code 1: an internal error")}
    listing(executor, {})
    assert executor.poll_many(["9"]) == {}


# -- slurm-drmaa: what its wait returns, and the reason that wins ---------------------------------------

# What drmaa.Session.wait returns under slurm-drmaa, worked out from its source as drmaa_endings' docstring
# tells: the job's wait status goes through slurm-drmaa's macros (exited: WIFEXITED; signalled: second
# byte >= 128; aborted: lowest bit set), and drmaa-utils reports no start or end time, as slurm-drmaa
# never sets them (``hosts`` is a NULL printed with %s).
SLURM_DRMAA_USAGE = {
    "submission_time": "1795548994",
    "cpu": "0",
    "mem": "0",
    "vmem": "0",
    "walltime": "0",
    "hosts": "(null)",
}
# Status -1: a CANCELLED job under slurm-drmaa 1.1.x. Aborted, and "signalled" (255 >= 128) with signal
# 127, which drmaa-utils names "unknown signal?!"; WEXITSTATUS 255; the core bit (0200) is set.
ABORTED_MINUS_1 = JobInfo("12", False, True, "unknown signal?!", True, True, 255, SLURM_DRMAA_USAGE)
# Status 15, Slurm's raw exit code of a batch script ended by SIGTERM: at its time limit, and by scancel
# before slurm-drmaa 1.1.0 (CANCELLED fell through to the raw code). Aborted (lowest bit), nothing else.
ABORTED_15 = JobInfo("12", False, False, "", False, True, 0, SLURM_DRMAA_USAGE)
# Status 768 (3 << 8): FAILED with exit code 3. Exited, not aborted.
EXITED_3 = JobInfo("12", True, False, "", False, False, 3, SLURM_DRMAA_USAGE)


def slurm_drmaa(executor) -> None:
    """The executor as opening a slurm-drmaa session leaves it."""
    executor.drms = "SLURM 22.05.8"
    executor.system = drm_family(executor.drms)


def squeue(executor, line: str) -> None:
    """What the stand-in ``squeue -h -t all -u USER -O ...`` answers from now on: one job's line."""
    executor.answers[" ".join(listing_command(SLURM, getpass.getuser()))] = (0, line + "\n", "")


@pytest.mark.parametrize(
    ("line", "info", "reason", "counted_as"),
    [
        (
            "12|CANCELLED|None|15|1:00|1G|{dir}|",
            ABORTED_MINUS_1,
            "was cancelled on Slurm (scancel)",
            "cancelled outside",
        ),
        ("12|CANCELLED|None|15|1:00|1G|{dir}|", ABORTED_15, "was cancelled on Slurm (scancel)", "cancelled outside"),
        (
            "12|TIMEOUT|TimeLimit|15|1:00|1G|{dir}|",
            ABORTED_15,
            "exceeded its time limit of 0:01:00 on Slurm",
            "time limit",
        ),
        (
            "12|FAILED|NonZeroExitCode|768|1:00|1G|{dir}|",
            EXITED_3,
            "failed on Slurm with exit code 3: KeyError: 'x'",
            "crash",
        ),
    ],
)
def test_slurm_drmaa_endings_take_squeues_reason(executor, tmp_path, line, info, reason, counted_as):
    """A job of this session cancelled with scancel while running, or killed at its time limit: slurm-drmaa
    reports both as aborted without a start time; squeue, which the poll runs anyway, still shows the job
    with Slurm's state, whose reason the job ends with and the failures metric counts. A failed job's own
    error output still ends its reason."""
    slurm_drmaa(executor)
    (tmp_path / "job-12").mkdir()
    (tmp_path / "job-12" / "stderr").write_text("Traceback (most recent call last):\nKeyError: 'x'\n")
    squeue(executor, line.format(dir=tmp_path / "job-12"))
    executor.fake_session.states = {"12": "failed"}
    executor.fake_session.infos = {"12": info}
    assert executor.poll_many(["12"]) == {"12": NativeStatus(NativeState.ENDED, reason)}
    assert executor.last_poll == {"squeue": 1, "wait": 1}  # reaped all the same: the session forgets it
    assert failure_reason(f"the job's process {reason}") == counted_as


@pytest.mark.parametrize("info", [ABORTED_MINUS_1, ABORTED_15])
def test_slurm_drmaa_endings_without_squeue_claim_no_more_than_it_knows(executor, info):
    """A job squeue no longer shows (past MinJobAge): slurm-drmaa's "aborted" is all there is, and it
    cannot tell a cancel from a timeout, nor whether the job had started; its -1 is no signal."""
    slurm_drmaa(executor)
    squeue(executor, "")
    executor.fake_session.states = {"12": "failed"}
    executor.fake_session.infos = {"12": info}
    assert executor.poll_many(["12"]) == {"12": NativeStatus(NativeState.ENDED, SLURM_ABORTED)}
    assert reason_from_job_info(info, 60, GRID_ENGINE) != SLURM_ABORTED  # Grid Engine's reading is its own


class SlurmDrmaaSession(FakeSession):
    """A session slurm-drmaa opens: it names the system "SLURM <version>" and has no contact string."""

    TIMEOUT_NO_WAIT = 0
    drmsInfo = "SLURM 22.05.8"
    contact = ""
    drmaaImplementation = "PSNC DRMAA for SLURM 1.0.6"

    def initialize(self) -> None:
        self.calls.append(("initialize", ""))


def test_jobs_taken_up_after_a_restart_are_named_after_the_library_s_system(executor, caplog):
    """After a restart the dispatcher takes up the jobs still running before any poll: the session is
    opened then, once, so the log names the system behind the library, not a default one."""
    caplog.set_level("INFO", logger="scheduler.executors.batch.drmaa")
    restarted = DrmaaExecutor(executor.settings, executor.jobs_dir)
    restarted._drmaa = types.SimpleNamespace(errors=FakeErrors, Session=SlurmDrmaaSession)
    for native_id in ("7", "8"):
        restarted.attach(native_id)
    assert "following Slurm job 7 submitted before the restart" in caplog.text
    assert "Grid Engine" not in caplog.text
    assert restarted._session.calls == [("initialize", "")]
    restarted.close()


def test_jobs_taken_up_without_a_library_are_not_given_a_system(executor, caplog):
    caplog.set_level("INFO", logger="scheduler.executors.batch.drmaa")
    restarted = DrmaaExecutor(executor.settings, executor.jobs_dir)
    restarted._load_error = "no DRMAA library found: set [scheduler] drmaa_library"
    for native_id in ("7", "8"):
        restarted.attach(native_id)
    assert "following DRMAA job 8 submitted before the restart" in caplog.text
    assert caplog.text.count("no DRMAA library found") == 1  # said once, not per job
    assert "Grid Engine" not in caplog.text
