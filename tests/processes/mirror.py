"""``mirror``: returns its complex input as its output, in any of many formats, for the output headers tests.

``echo`` accepts XML, JSON and plain text only; a process of an administrator's may well produce HTML,
SVG, JavaScript or a type nobody registered. ``mirror`` declares those so that each can be served
for real, raw and by reference, and its headers checked.
"""

from processes.context import JobContext
from processes.model import ComplexInput, ComplexOutput, Format, Process

MIME_TYPES = {
    "text/html": ".html",
    "application/xhtml+xml": ".xhtml",
    "image/svg+xml": ".svg",
    "text/xml": ".xml",
    "application/gml+xml": ".gml",
    "application/javascript": ".js",
    "application/x-unheard-of": ".bin",
    "application/pdf": ".pdf",
    "application/json": ".json",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "image/png": ".png",
    "application/x-netcdf": ".nc",
    "application/octet-stream": ".dat",
}
FORMATS = tuple(Format(mime, extension=extension) for mime, extension in MIME_TYPES.items())


def mirror(job: JobContext) -> None:
    job.set_output("data", job.value("data"))


PROCESS = Process(
    identifier="mirror",
    title="Mirror",
    abstract="Returns the complex input unchanged, in its own format, for tests.",
    handler=mirror,
    inputs=(ComplexInput("data", "Data", formats=FORMATS),),
    outputs=(ComplexOutput("data", "Data", formats=FORMATS),),
)
