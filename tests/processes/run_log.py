"""``run_log``: appends one line per run to the file named by ``HPC_WPS_TEST_RUN_LOG``, then waits.

The line holds the job's ``tag`` input and the pid of the worker's parent (the dispatcher that ran it),
so a test can tell whether any job ran twice and which dispatcher ran each. ``run_log_rerunnable`` is
the same process declared safe to run again.
"""

import dataclasses
import os
import time

from processes.context import JobContext
from processes.model import LiteralInput, LiteralOutput, Process


def run_log(job: JobContext) -> None:
    line = f"{job.value('tag')} {os.getppid()}\n".encode()
    fd = os.open(os.environ["HPC_WPS_TEST_RUN_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write with O_APPEND: lines from several processes never interleave
    finally:
        os.close(fd)
    time.sleep(job.value("seconds"))
    job.set_output("tag", job.value("tag"))


PROCESS = Process(
    identifier="run_log",
    title="Log this run",
    abstract="Appends the tag and the dispatcher's pid to a file, then waits, for tests.",
    handler=run_log,
    inputs=(
        LiteralInput("tag", "Tag", data_type="string"),
        LiteralInput("seconds", "Seconds to wait", data_type="double", default="0", min_occurs=0),
    ),
    outputs=(LiteralOutput("tag", "Tag", data_type="string"),),
)
RERUNNABLE = dataclasses.replace(PROCESS, identifier="run_log_rerunnable", rerunnable=True)
