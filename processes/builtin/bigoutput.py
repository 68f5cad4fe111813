from processes.context import JobContext
from processes.model import FORMAT_BINARY, ComplexOutput, LiteralInput, Process, Range

CHUNK = b"\0" * (1 << 20)


def bigoutput(job: JobContext) -> None:
    size_mb = int(job.value("size_mb"))
    with job.output_path("output").open("wb") as out:
        for done in range(size_mb):
            out.write(CHUNK)
            if done % 64 == 63:
                job.update_status(f"wrote {done + 1} MiB", (done + 1) * 100 // size_mb)


PROCESS = Process(
    identifier="bigoutput",
    title="Big output",
    abstract="Writes a binary output of the given number of MiB, in chunks, straight to disk.",
    handler=bigoutput,
    inputs=(LiteralInput("size_mb", "Size in MiB", data_type="integer", allowed_values=(Range(0, 16384),)),),
    outputs=(ComplexOutput("output", "Bytes", formats=(FORMAT_BINARY,)),),
    keywords=("demo",),
)
