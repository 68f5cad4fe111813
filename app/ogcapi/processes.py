"""Process summaries (``/processes``) and descriptions (``/processes/{id}``), from the process
declarations (``processes/model.py``) the WPS documents are rendered from too."""

from __future__ import annotations

from typing import Any

from app.ogcapi.schemas import input_schema, output_schema
from app.ogcapi.urls import Urls, link
from processes.model import UNBOUNDED, ComplexInput, Input, Metadata, Output, Process

EXECUTE_REL = "http://www.opengis.net/def/rel/ogc/1.0/execute"
JOB_LIST_REL = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
TRANSMISSION = ["value", "reference"]


def _metadata(items: tuple[Metadata, ...]) -> list[dict[str, str]]:
    return [{k: v for k, v in (("title", m.title), ("href", m.href), ("role", m.role)) if v} for m in items]


def _described(item: Input | Output | Process) -> dict[str, Any]:
    """title, description, keywords, metadata: what every description type has."""
    doc: dict[str, Any] = {"title": item.title}
    if item.abstract:
        doc["description"] = item.abstract
    if item.keywords:
        doc["keywords"] = list(item.keywords)
    if item.metadata:
        doc["metadata"] = _metadata(item.metadata)
    return doc


def summary(process: Process, urls: Urls) -> dict[str, Any]:
    return _described(process) | {
        "id": process.identifier,
        "version": process.version,
        "jobControlOptions": list(process.job_control_options),
        "outputTransmission": TRANSMISSION,
        "links": [link(urls.process(process.identifier), "self", "process description")],
    }


def _input(declared: Input, megabytes: int) -> dict[str, Any]:
    doc = _described(declared) | {
        "minOccurs": declared.min_occurs,
        "maxOccurs": "unbounded" if declared.max_occurs == UNBOUNDED else declared.max_occurs,
        "schema": input_schema(declared),
    }
    if isinstance(declared, ComplexInput):
        # As text: 1.0's additionalParameter.json lists integer and number in a oneOf, so no integer passes.
        limit = str(declared.maximum_megabytes or megabytes)
        doc["additionalParameters"] = {"parameters": [{"name": "maximumMegabytes", "value": [limit]}]}
    return doc


def description(process: Process, urls: Urls, megabytes: int) -> dict[str, Any]:
    """``megabytes``: the size complex inputs that declare none may have (``[inputs] max_size``)."""
    doc = summary(process, urls)
    doc["links"] = [
        *doc["links"],
        link(urls.execution(process.identifier), EXECUTE_REL, "execute the process"),
        link(urls.of("/jobs", {"processID": process.identifier}), JOB_LIST_REL, "its jobs"),
    ]
    doc["inputs"] = {i.identifier: _input(i, megabytes) for i in process.inputs}
    doc["outputs"] = {o.identifier: _described(o) | {"schema": output_schema(o)} for o in process.outputs}
    return doc


def process_list(processes: list[Process], urls: Urls) -> dict[str, Any]:
    return {
        "processes": [summary(p, urls) for p in processes],
        "links": [link(urls.of("/processes"), "self", "processes")],
    }
