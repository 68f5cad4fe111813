from processes.context import JobContext
from processes.model import (
    FORMAT_JSON,
    FORMAT_TEXT,
    FORMAT_XML,
    FORMAT_XML_APP,
    BoundingBoxInput,
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    LiteralInput,
    LiteralOutput,
    Process,
)

FORMATS = (FORMAT_XML, FORMAT_XML_APP, FORMAT_JSON, FORMAT_TEXT)
CRSS = ("EPSG:4326", "EPSG:3857", "urn:ogc:def:crs:EPSG::4326")


def echo(job: JobContext) -> None:
    if (literal := job.value("literalInput")) is not None:
        job.set_output("literalOutput", literal)
    if (complex_value := job.value("complexInput")) is not None:
        job.set_output("complexOutput", complex_value)
    if (bbox := job.value("boundingBoxInput")) is not None:
        job.set_output("boundingBoxOutput", bbox)


PROCESS = Process(
    identifier="echo",
    title="Echo",
    abstract="Returns each input unchanged as the matching output; the process OGC's test suites use.",
    handler=echo,
    inputs=(
        LiteralInput("literalInput", "Literal input", data_type="string", min_occurs=0),
        ComplexInput("complexInput", "Complex input", formats=FORMATS, min_occurs=0),
        BoundingBoxInput("boundingBoxInput", "Bounding box input", crss=CRSS, min_occurs=0),
    ),
    outputs=(
        LiteralOutput("literalOutput", "Literal output", data_type="string"),
        ComplexOutput("complexOutput", "Complex output", formats=FORMATS),
        BoundingBoxOutput("boundingBoxOutput", "Bounding box output", crss=CRSS),
    ),
    keywords=("demo", "test"),
    inline_async=True,
    # OGC's WPS 2.0 suite sends one request (ValidUniqueJobIds.xml) that names its reference server's echo.
    aliases=("org.n52.javaps.test.EchoProcess",),
)
