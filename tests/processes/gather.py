"""``gather``: an input that takes many values, for the array forms of OGC API - Processes execute
requests (no demo process takes more than one value of an input)."""

from processes.context import JobContext
from processes.model import UNBOUNDED, LiteralInput, LiteralOutput, Process


def gather(job: JobContext) -> None:
    job.set_output("total", sum(v.value for v in job.values("number")))


PROCESS = Process(
    identifier="gather",
    title="Gather",
    abstract="Adds up every value of its input.",
    handler=gather,
    inputs=(LiteralInput("number", "A number", data_type="integer", min_occurs=1, max_occurs=UNBOUNDED),),
    outputs=(LiteralOutput("total", "Their sum", data_type="integer"),),
)
