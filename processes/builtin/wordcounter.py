import collections
import json
import re

from processes.context import JobContext
from processes.model import FORMAT_JSON, FORMAT_TEXT, ComplexInput, ComplexOutput, Process

WORD = re.compile(r"\w+", re.UNICODE)


def wordcounter(job: JobContext) -> None:
    counts: collections.Counter[str] = collections.Counter()
    with job.value("text").path.open(encoding="utf-8", errors="replace") as text:
        for line in text:
            counts.update(WORD.findall(line.lower()))
    job.output_path("output").write_text(json.dumps(dict(counts.most_common())), encoding="utf-8")


PROCESS = Process(
    identifier="wordcounter",
    title="Word counter",
    abstract="Counts the words of a text; the output is a JSON object from word to count.",
    handler=wordcounter,
    inputs=(ComplexInput("text", "Text", formats=(FORMAT_TEXT,), maximum_megabytes=100),),
    outputs=(ComplexOutput("output", "Word counts", formats=(FORMAT_JSON,)),),
    keywords=("demo",),
)
