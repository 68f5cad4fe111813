from processes.context import JobContext, ProcessError
from processes.model import LiteralInput, LiteralOutput, Process


def fail(job: JobContext) -> None:
    raise ProcessError(str(job.value("message")))


PROCESS = Process(
    identifier="fail",
    title="Fail",
    abstract="Always fails, with the given message as the reason.",
    handler=fail,
    inputs=(LiteralInput("message", "Message", data_type="string", default="failed on purpose", min_occurs=0),),
    outputs=(LiteralOutput("never", "Never set", data_type="string"),),
    keywords=("demo", "test"),
)
