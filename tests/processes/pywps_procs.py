"""PyWPS 4.8 processes, written as a bird writes them, that the PyWPS adapter's tests serve both under
PyWPS itself (the oracle) and under hpc-wps. Each uses part of the API a PyWPS process may use.

- ``literals``: every literal data type, defaults (a boolean default "1"), allowed values as a list,
  ``AllowedValue`` ranges, ``AnyValue``, ``ValuesReference``, ``mode``, ``uoms``/``UOM``, ``min_occurs``/
  ``max_occurs``; echoes what ``request.inputs`` holds, and ``'x' in request.inputs``.
- ``complexes``: ``ComplexInput``/``ComplexOutput`` with ``FORMATS``, ``.data``/``.file``/``.stream``/
  ``.url``/``.data_format``, the client's output format in ``response.outputs[x].data_format``,
  ``BoundingBoxInput``/``BoundingBoxOutput`` with ``crss`` and ``dimensions``.
- ``progress``: ``response.update_status``, ``self.workdir``, ``get_config_value``/``CONFIG.get``,
  logging to ``PYWPS``; ``Metadata``/``MetadataUrl``, keywords, version, profile.
- ``failing``: ``ProcessError`` (and a subclass) and any other exception.
- ``sync_only``: ``store_supported=False``.
- ``metalink``: ``MetaLink4``/``MetaFile`` outputs with fetchable file URLs.
"""

from __future__ import annotations

import json
import logging
import os
import time

from pywps import (
    FORMATS,
    UOM,
    BoundingBoxInput,
    BoundingBoxOutput,
    ComplexInput,
    ComplexOutput,
    Format,
    LiteralInput,
    LiteralOutput,
    Process,
    configuration,
)
from pywps.app.Common import Metadata, MetadataUrl
from pywps.app.exceptions import ProcessError
from pywps.configuration import get_config_value
from pywps.inout.literaltypes import AllowedValue, AnyValue, ValuesReference
from pywps.inout.outputs import MetaFile, MetaLink4
from pywps.validator.mode import MODE

LOGGER = logging.getLogger("PYWPS")

TYPES = {
    "string": "text",
    "integer": "7",
    "float": "2.5",
    "boolean": "true",
    "date": "2024-02-29",
    "time": "12:30:00",
    "dateTime": "2024-02-29T12:30:00",
    "anyURI": "https://example.org/data",  # no "=": PyWPS 4.8 splits KVP DataInputs on every "="
    "angle": "370",
    "nonNegativeInteger": "0",
    "positiveInteger": "3",
    "scale": "0.5",
}


class Literals(Process):
    def __init__(self) -> None:
        inputs = [LiteralInput(f"t_{name}", name, data_type=name, min_occurs=0) for name in TYPES]
        inputs += [
            LiteralInput("flag", "Boolean with default 1", data_type="boolean", default="1", min_occurs=0),
            LiteralInput("count", "Integer with default", data_type="integer", default=4, min_occurs=0),
            LiteralInput("colour", "A list", data_type="string", allowed_values=["red", "green"], min_occurs=0),
            LiteralInput(
                "level",
                "A range with spacing",
                data_type="integer",
                allowed_values=[AllowedValue(minval=0, maxval=10, spacing=2)],
                min_occurs=0,
            ),
            LiteralInput(
                "ratio",
                "An open range",
                data_type="float",
                allowed_values=[AllowedValue(minval=0, maxval=1, range_closure="open")],
                min_occurs=0,
            ),
            LiteralInput("free", "Any value", data_type="string", allowed_values=AnyValue(), min_occurs=0),
            LiteralInput(
                "listed",
                "Values kept elsewhere",
                data_type="string",
                allowed_values=ValuesReference(reference="https://example.org/values.xml"),
                min_occurs=0,
            ),
            LiteralInput(
                "lax",
                "No validation",
                data_type="string",
                allowed_values=["only"],
                mode=MODE.NONE,
                min_occurs=0,
            ),
            LiteralInput(
                "distance",
                "With units",
                data_type="float",
                uoms=[UOM("metre"), UOM("kilometre")],
                min_occurs=0,
            ),
            LiteralInput("many", "Up to three", data_type="integer", min_occurs=0, max_occurs=3),
        ]
        super().__init__(
            self._handler,
            identifier="literals",
            title="Literals",
            abstract="Echoes literal inputs as JSON",
            version="2.1",
            inputs=inputs,
            outputs=[
                LiteralOutput("echo", "What the handler saw", data_type="string"),
                LiteralOutput("length", "A measured length", data_type="float", uoms=[UOM("metre")]),
                LiteralOutput("when", "A date", data_type="date"),
                LiteralOutput("yes", "A boolean", data_type="boolean"),
            ],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request, response):  # type: ignore[no-untyped-def]
        seen = {}
        for identifier, occurrences in request.inputs.items():
            seen[identifier] = [
                {"data": str(o.data), "type": type(o.data).__name__, "uom": getattr(o.uom, "uom", o.uom)}
                for o in occurrences
            ]
        seen["absent"] = "colour" not in request.inputs
        response.outputs["echo"].data = json.dumps(seen, sort_keys=True)
        response.outputs["length"].data = 12.5
        response.outputs["length"].uom = UOM("metre")
        response.outputs["when"].data = "2024-03-01"
        response.outputs["yes"].data = True
        return response


class Complexes(Process):
    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="complexes",
            title="Complex and bounding box data",
            inputs=[
                ComplexInput("text", "Text or JSON", supported_formats=[FORMATS.TEXT, FORMATS.JSON]),
                ComplexInput("blob", "Binary", supported_formats=[Format("application/octet-stream")], min_occurs=0),
                BoundingBoxInput("area", "An area", crss=["EPSG:4326", "EPSG:3035"], dimensions=2, min_occurs=0),
            ],
            outputs=[
                ComplexOutput("summary", "What the handler read", supported_formats=[FORMATS.JSON]),
                ComplexOutput(
                    "copy",
                    "The text again, in the format asked for",
                    supported_formats=[FORMATS.TEXT, FORMATS.JSON, Format("text/csv", extension=".csv")],
                ),
                BoundingBoxOutput("box", "The area, shifted", crss=["EPSG:4326"], dimensions=2),
            ],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request, response):  # type: ignore[no-untyped-def]
        text = request.inputs["text"][0]
        with open(text.file, encoding="utf-8") as handle:
            from_file = handle.read()
        stream = text.stream.read()
        summary = {
            "data": text.data,
            "file_equals_data": from_file == text.data,
            "stream_equals_data": (stream.decode() if isinstance(stream, bytes) else stream) == text.data,
            "mime": text.data_format.mime_type,
            "url_scheme": text.url.split(":", 1)[0],
            "copy_format": response.outputs["copy"].data_format.mime_type,
        }
        if "blob" in request.inputs:
            summary["blob_size"] = os.path.getsize(request.inputs["blob"][0].file)
        if "area" in request.inputs:
            area = request.inputs["area"][0]
            summary["area"] = [float(v) for v in area.data]
            response.outputs["box"].data = [v + 1 for v in area.data]
        else:
            response.outputs["box"].data = [0, 0, 1, 1]
        response.outputs["summary"].data = json.dumps(summary, sort_keys=True)
        copy = response.outputs["copy"]
        copy.data = json.dumps({"text": text.data}) if copy.data_format.mime_type == "application/json" else text.data
        return response


class Progress(Process):
    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="progress",
            title="Progress, configuration, logging",
            abstract="Reports progress and what it reads of the configuration",
            version="1.0",
            keywords=["test", "pywps"],
            metadata=[
                Metadata("Documentation", "https://example.org/doc", role="https://example.org/role/doc"),
                MetadataUrl("Anonymous link", "https://example.org/anon", anonymous=True),
            ],
            profile="urn:example:profile",
            inputs=[
                LiteralInput("steps", "Steps", data_type="integer", default=3, min_occurs=0),
                LiteralInput("pause", "Seconds to wait after each step", data_type="float", default=0, min_occurs=0),
            ],
            outputs=[LiteralOutput("report", "What it saw", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    def _handler(self, request, response):  # type: ignore[no-untyped-def]
        steps = request.inputs["steps"][0].data
        for step in range(steps):
            response.update_status(f"step {step + 1} of {steps}", int(100 * (step + 1) / (steps + 1)))
            time.sleep(request.inputs["pause"][0].data)
        LOGGER.info("progress handler ran in %s", self.workdir)
        with open(os.path.join(self.workdir, "scratch.txt"), "w", encoding="utf-8") as handle:
            handle.write("scratch")
        response.outputs["report"].data = json.dumps(
            {
                "url": get_config_value("server", "url"),
                "outputurl": get_config_value("server", "outputurl"),
                "outputpath": configuration.CONFIG.get("server", "outputpath"),
                "workdir_is_self": get_config_value("server", "workdir") == self.workdir,
                "workdir_exists": os.path.isdir(self.workdir),
                "uuid_set": bool(self.uuid),
            },
            sort_keys=True,
        )
        return response


class Refused(ProcessError):
    """A subclass of ProcessError, as processes define."""


class Failing(Process):
    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="failing",
            title="Fails as asked",
            inputs=[LiteralInput("how", "process_error, subclass or bug", data_type="string")],
            outputs=[LiteralOutput("never", "Never set", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request, response):  # type: ignore[no-untyped-def]
        how = request.inputs["how"][0].data
        if how == "process_error":
            raise ProcessError("The input was refused: try another one.")
        if how == "subclass":
            raise Refused("Refused by a subclass.")
        raise KeyError("secret-internal-detail")


def _say(request, response):  # type: ignore[no-untyped-def]
    response.outputs["answer"].data = f"Hello {request.inputs['name'][0].data}"
    return response


SYNC_ONLY = Process(
    _say,
    identifier="sync_only",
    title="Stores nothing",
    inputs=[LiteralInput("name", "Name", data_type="string")],
    outputs=[LiteralOutput("answer", "Greeting", data_type="string")],
    store_supported=False,
    status_supported=False,
)


class Metalinked(Process):
    def __init__(self) -> None:
        super().__init__(
            self._handler,
            identifier="metalink",
            title="Several files",
            inputs=[LiteralInput("files", "How many", data_type="integer", default=2, min_occurs=0)],
            outputs=[ComplexOutput("output", "A Metalink 4", supported_formats=[FORMATS.META4], as_reference=False)],
            store_supported=True,
            status_supported=True,
        )

    def _handler(self, request, response):  # type: ignore[no-untyped-def]
        metalink = MetaLink4("files", "The files", workdir=self.workdir)
        for index in range(request.inputs["files"][0].data):
            member = MetaFile(f"file {index}", f"File number {index}", fmt=FORMATS.TEXT)
            member.data = f"content {index}\n"
            metalink.append(member)
        response.outputs["output"].data = metalink.xml
        return response


PROCESSES = [Literals, Complexes(), Progress, Failing(), SYNC_ONLY, Metalinked]
