"""The OpenAPI 3.0 document of the API (``/api``), built from the code that serves it: the paths and
methods are the blueprint's (a test compares them with its URL rules), the enumerations (job states,
job types, encodings, transmission modes, responses) the constants the views read, the limits those
the parsers enforce. Response schemas describe what the renderers emit; the tests validate the
documents themselves against the OGC's official schemas as well.
"""

from __future__ import annotations

from typing import Any

from app.ogcapi import html
from app.ogcapi.errors import PROBLEM
from app.ogcapi.execute import RESPONSES, SUBSCRIBER_KEYS, TRANSMISSIONS
from app.ogcapi.jobs import DEFAULT_LIMIT, MAX_LIMIT, STATES_OF, TYPES
from app.ogcapi.negotiation import ENCODINGS
from app.ogcapi.urls import JSON, OPENAPI, Urls

STRING = {"type": "string"}
OBJECT = {"type": "object"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _described() -> dict[str, Any]:
    return {"title": STRING, "description": STRING, "keywords": _array(STRING), "metadata": _array(OBJECT)}


SCHEMAS: dict[str, dict[str, Any]] = {
    "link": {
        "type": "object",
        "required": ["href"],
        "properties": {k: STRING for k in ("href", "rel", "type", "hreflang", "title")},
    },
    "landingPage": {
        "type": "object",
        "required": ["links"],
        "properties": {"title": STRING, "description": STRING, "links": _array(ref("link"))},
    },
    "confClasses": {"type": "object", "required": ["conformsTo"], "properties": {"conformsTo": _array(STRING)}},
    "processSummary": {
        "type": "object",
        "required": ["id", "version"],
        "properties": _described()
        | {
            "id": STRING,
            "version": STRING,
            "jobControlOptions": _array({"type": "string", "enum": ["sync-execute", "async-execute", "dismiss"]}),
            "outputTransmission": _array({"type": "string", "enum": list(TRANSMISSIONS)}),
            "links": _array(ref("link")),
        },
    },
    "process": {
        "allOf": [
            ref("processSummary"),
            {
                "type": "object",
                "properties": {
                    "inputs": {"type": "object", "additionalProperties": OBJECT},
                    "outputs": {"type": "object", "additionalProperties": OBJECT},
                },
            },
        ]
    },
    "processList": {
        "type": "object",
        "required": ["processes", "links"],
        "properties": {"processes": _array(ref("processSummary")), "links": _array(ref("link"))},
    },
    "statusInfo": {
        "type": "object",
        "required": ["jobID", "status", "type"],
        "properties": {
            "processID": STRING,
            "type": {"type": "string", "enum": list(TYPES)},
            "jobID": STRING,
            "status": {"type": "string", "enum": list(STATES_OF)},
            "message": STRING,
            **{k: {"type": "string", "format": "date-time"} for k in ("created", "started", "finished", "updated")},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "links": _array(ref("link")),
        },
    },
    "jobList": {
        "type": "object",
        "required": ["jobs", "links"],
        "properties": {"jobs": _array(ref("statusInfo")), "links": _array(ref("link"))},
    },
    "results": {"type": "object", "description": "output identifier -> value, qualified value or link"},
    "exception": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": STRING,
            "title": STRING,
            "status": {"type": "integer"},
            "detail": STRING,
            "instance": STRING,
            "locator": STRING,
            "code": STRING,
        },
    },
    "execute": {
        "type": "object",
        "properties": {
            "inputs": {"type": "object", "additionalProperties": {}},
            "outputs": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "format": {
                            "type": "object",
                            "properties": {"mediaType": STRING, "encoding": STRING, "schema": STRING},
                        },
                        "transmissionMode": {"type": "string", "enum": list(TRANSMISSIONS)},
                    },
                },
            },
            "response": {"type": "string", "enum": list(RESPONSES)},
            "subscriber": {
                "type": "object",
                "properties": {key: {"type": "string", "format": "uri"} for key in SUBSCRIBER_KEYS},
            },
        },
    },
}


def _encoded(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A document in every encoding (``f``, Accept): JSON of ``schema``, or the monitor's page."""
    content = {media: {"schema": schema if media == JSON else STRING} for media, *_ in ENCODINGS.values()}
    return {"description": description, "content": content}


def _problem(description: str) -> dict[str, Any]:
    """An RFC 7807 problem; as the monitor's page when HTML was negotiated (``f=html``, Accept)."""
    content = {PROBLEM: {"schema": ref("exception")}, html.MEDIA_TYPE: {"schema": STRING}}
    return {"description": description, "content": content}


def _query(name: str, schema: dict[str, Any], description: str, explode: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        "style": "form",
        "explode": explode,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STRING, "description": description}


F = _query("f", {"type": "string", "enum": list(ENCODINGS)}, "the encoding of the response (else by Accept)")
PROCESS_ID = _path("processId", "a process identifier")
JOB_ID = _path("jobId", "a job identifier")
ERRORS = {
    "400": _problem("a request this API cannot carry out, with the part at fault in locator"),
    "401": _problem("a token is needed, or the one sent is not valid ([auth] mode = oidc)"),
    "403": _problem(
        "the user header is missing or not from the service's proxy ([auth] mode = header), or the monitor's"
        " sign-in cookie came without its X-Requested-With header on a change ([auth] mode = oidc)"
    ),
    "503": _problem("the job table is out of reach, or the service is busy: try again (Retry-After)"),
    "default": _problem("any other error, as an RFC 7807 problem document"),
}
NOT_FOUND = {"404": _problem("no such process or job (or one the caller may not see)")}
JOB_LIST_PARAMETERS = [
    _query("status", _array({"type": "string", "enum": list(STATES_OF)}), "jobs in any of these states", False),
    _query("processID", _array(STRING), "jobs of any of these processes", False),
    _query("type", _array({"type": "string", "enum": list(TYPES)}), "jobs of this type", False),
    _query("datetime", STRING, "created within this RFC 3339 interval (start/end, either ..) or at this instant"),
    _query("minDuration", {"type": "integer", "minimum": 0}, "jobs that have run at least so many seconds"),
    _query("maxDuration", {"type": "integer", "minimum": 0}, "jobs that have run at most so many seconds"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}, "jobs per page"),
    _query("after", STRING, "the page of older jobs a next link names"),
    _query("before", STRING, "the page of newer jobs a prev link names"),
    F,
]


def _get(operation_id: str, summary: str, ok: dict[str, Any], parameters: list[dict[str, Any]], **more: Any) -> Any:
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters,
        "responses": {"200": ok, **more, **ERRORS},
    }


def document(urls: Urls, title: str, description: str, version: str) -> dict[str, Any]:
    job_status = _encoded(ref("statusInfo"), "the job's status")
    execution_ok = {
        "description": "synchronous execution: the results document (response=document), or the one output as it is",
        "content": {JSON: {"schema": {}}, "*/*": {"schema": {}}},
    }
    accepted = _encoded(ref("statusInfo"), "asynchronous execution: the job, created")
    accepted["headers"] = {"Location": {"schema": STRING, "description": "the job's status"}}
    execution = {
        "operationId": "execute",
        "summary": "execute a process (asynchronously with Prefer: respond-async)",
        "parameters": [PROCESS_ID, {"name": "Prefer", "in": "header", "required": False, "schema": STRING}],
        "requestBody": {"required": True, "content": {JSON: {"schema": ref("execute")}}},
        "responses": {
            "200": execution_ok,
            "201": accepted,
            "204": {"description": "synchronous execution, raw, one output by reference: a Link header"},
            **NOT_FOUND,
            "413": _problem("the request body is too large"),
            "415": _problem("the request body is not JSON"),
            "429": _problem("a quota of the user is reached"),
            "500": _problem("the process failed"),
            **ERRORS,
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "description": description, "version": version},
        "servers": [{"url": urls.root}],
        "paths": {
            "/": {"get": _get("getLandingPage", "landing page", _encoded(ref("landingPage"), "landing page"), [F])},
            "/conformance": {
                "get": _get("getConformance", "conformance classes", _encoded(ref("confClasses"), "conformance"), [F])
            },
            "/api": {
                "get": _get("getAPI", "this document", {"description": "OpenAPI 3.0", "content": {OPENAPI: {}}}, [])
            },
            "/processes": {
                "get": _get("getProcesses", "processes", _encoded(ref("processList"), "process summaries"), [F])
            },
            "/processes/{processId}": {
                "get": _get(
                    "getProcessDescription",
                    "process description",
                    _encoded(ref("process"), "process"),
                    [PROCESS_ID, F],
                    **NOT_FOUND,
                )
            },
            "/processes/{processId}/execution": {"post": execution},
            "/jobs": {
                "get": _get("getJobs", "jobs, newest first", _encoded(ref("jobList"), "job list"), JOB_LIST_PARAMETERS)
            },
            "/jobs/{jobId}": {
                "get": _get("getStatus", "a job's status", job_status, [JOB_ID, F], **NOT_FOUND),
                "delete": _get(
                    "dismiss",
                    "dismiss a job",
                    _encoded(ref("statusInfo"), "the job, dismissed"),
                    [JOB_ID, F],
                    **NOT_FOUND,
                ),
            },
            "/jobs/{jobId}/results": {
                "get": _get(
                    "getResult",
                    "a job's results",
                    _encoded(ref("results"), "the outputs"),
                    [JOB_ID, F],
                    **NOT_FOUND,
                    **{"500": _problem("the job failed")},
                )
            },
        },
        "components": {"schemas": SCHEMAS},
    }
