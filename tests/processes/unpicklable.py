"""``unpicklable``: a process whose handler holds a generator, which dill cannot pickle, so no batch job
payload can be written for it: handing one of its jobs to a batch system raises ``TypeError`` in the
dispatcher. It stands for any hand-over that raises what nothing expects (a bug, a package missing).
"""

from processes.context import JobContext
from processes.model import LiteralOutput, Process


class Counter:
    """A handler with state that cannot travel to a compute node."""

    def __init__(self) -> None:
        self.numbers = (n for n in range(1_000_000))

    def __call__(self, job: JobContext) -> None:
        job.set_output("n", next(self.numbers))


PROCESS = Process(
    identifier="unpicklable",
    title="Unpicklable",
    abstract="Its handler holds a generator: dill cannot write its payload, for tests.",
    handler=Counter(),
    outputs=(LiteralOutput("n", "A number", data_type="integer"),),
)
