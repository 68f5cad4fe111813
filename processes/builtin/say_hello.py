from processes.context import JobContext
from processes.model import LiteralInput, LiteralOutput, Process


def say_hello(job: JobContext) -> None:
    job.set_output("response", f"Hello {job.value('name')}")


PROCESS = Process(
    identifier="say_hello",
    title="Say hello",
    abstract="Returns a literal string output with Hello plus the given name.",
    handler=say_hello,
    inputs=(LiteralInput("name", "Name", abstract="Whom to greet", data_type="string"),),
    outputs=(LiteralOutput("response", "Greeting", data_type="string"),),
    keywords=("demo",),
)
