import time

from processes.context import JobContext
from processes.model import LiteralInput, LiteralOutput, Process, Range

STEPS = 5
SLICE = 0.25  # seconds of one uninterrupted sleep


def _pause(seconds: float) -> None:
    """Sleep in short slices: a job run by a web worker is stopped between two Python statements (at
    its time limit, or when its client hangs up), so one long ``time.sleep`` would hold it that long."""
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        time.sleep(min(SLICE, left))


def sleep(job: JobContext) -> None:
    delay = float(job.value("delay"))
    for step in range(1, STEPS + 1):
        _pause(delay / STEPS)
        job.update_status(f"slept {step} of {STEPS} steps", step * 100 // STEPS)
    job.set_output("sleep_output", f"slept for {delay} seconds")


PROCESS = Process(
    identifier="sleep",
    title="Sleep",
    abstract="Waits the given number of seconds, reporting progress in five steps.",
    handler=sleep,
    inputs=(
        LiteralInput(
            "delay",
            "Delay",
            abstract="Seconds to sleep",
            data_type="double",
            allowed_values=(Range(0.0, 3600.0),),
            uoms=("seconds",),
        ),
    ),
    outputs=(LiteralOutput("sleep_output", "Sleep output", data_type="string"),),
    keywords=("demo",),
)
