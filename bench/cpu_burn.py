"""``cpu_burn``: a process that keeps one core busy for the given number of seconds, for
bench/busy_pool.py. Served by adding ``processes = bench.cpu_burn:PROCESS`` to ``[processing]``."""

import time

from processes.context import JobContext
from processes.model import LiteralInput, LiteralOutput, Process, Range


def cpu_burn(job: JobContext) -> None:
    seconds = float(job.value("seconds"))
    end = time.monotonic() + seconds
    loops = 0
    while time.monotonic() < end:
        for _ in range(10_000):  # pure CPU between clock reads
            loops += 1
    job.set_output("loops", str(loops))


PROCESS = Process(
    identifier="cpu_burn",
    title="Burn CPU",
    abstract="Keeps one core busy for the given number of seconds.",
    handler=cpu_burn,
    inputs=(LiteralInput("seconds", "Seconds", data_type="double", allowed_values=(Range(0.0, 600.0),)),),
    outputs=(LiteralOutput("loops", "Loops run", data_type="string"),),
)
