"""Run a process from a stored request: materialize inputs, call the handler, record outputs.

Every executor ends here (the web worker for synchronous jobs, the local pool's forked children, the
launcher on compute nodes and in containers), so a process behaves the same wherever it runs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from processes.container.settings import DockerSettings
from processes.context import JobContext, ProcessError, Reporter
from processes.fetch import FetchLimits, InputError, fetch_http, inline_bytes, redact_url, resolve_file, unseal_inputs
from processes.model import (
    BoundingBoxInput,
    ComplexInput,
    ComplexOutput,
    Format,
    LiteralInput,
    LiteralOutput,
    Process,
)
from processes.values import BoundingBox, ComplexValue, InputValue, LiteralValue


def _pick_format(
    formats: tuple[Format, ...], mime_type: str | None, encoding: str | None, schema: str | None
) -> Format:
    for fmt in formats:
        if fmt.matches(mime_type, encoding, schema):
            return fmt
    return formats[0]


def _source_file(spec: dict[str, Any], work: Path, index: int, limits: FetchLimits) -> Path:
    """The bytes of a complex or by-reference input as a file (references fetched here, not earlier)."""
    ident = spec["id"]
    href = spec.get("href")
    if href:
        if href.startswith("file:"):
            return resolve_file(ident, href, limits)
        if not href.startswith(("http://", "https://")):
            raise InputError(ident, f"unsupported reference scheme in {redact_url(href)}", "not_accessible")
        dest = work / f"{ident}.{index}.ref"
        fetch_http(ident, href, dest, limits, spec.get("method") or "GET", spec.get("body"), spec.get("headers"))
        return dest
    dest = work / f"{ident}.{index}.in"
    dest.write_bytes(inline_bytes(ident, spec, limits))
    return dest


def materialize_inputs(
    process: Process, specs: list[dict[str, Any]], work: Path, limits: FetchLimits
) -> dict[str, list[InputValue]]:
    inputs: dict[str, list[InputValue]] = {}
    for index, spec in enumerate(specs):
        declared = process.input(spec["id"])
        value: InputValue
        if isinstance(declared, LiteralInput):
            if spec.get("href"):
                text = _source_file(spec, work, index, limits).read_text(encoding="utf-8", errors="replace").strip()
            else:
                text = spec.get("value", "")
            try:
                value = LiteralValue(declared.read(text), spec.get("uom"))
            except ValueError as exc:
                raise InputError(declared.identifier, str(exc)) from None
        elif isinstance(declared, ComplexInput):
            # The process's own maximum, when it declares one, stops a fetch as early as max_size does.
            within = replace(limits, max_size=limits.size_for(declared.maximum_megabytes))
            path = _source_file(spec, work, index, within)
            if declared.maximum_megabytes and path.stat().st_size > declared.maximum_megabytes * 1024**2:
                raise InputError(declared.identifier, f"larger than {declared.maximum_megabytes} MB", "too_large")
            fmt = _pick_format(declared.formats, spec.get("mime_type"), spec.get("encoding"), spec.get("schema"))
            encoding = spec.get("encoding")
            value = ComplexValue(
                path,
                spec.get("mime_type") or fmt.mime_type,
                None if (encoding or "").lower() == "base64" else encoding,
                spec.get("schema") or fmt.schema,
                spec.get("href"),
            )
        elif isinstance(declared, BoundingBoxInput):
            value = BoundingBox(tuple(spec["lower"]), tuple(spec["upper"]), spec.get("crs"))
        else:
            raise InputError(spec["id"], f"{spec['id']} is not an input of {process.identifier}")
        inputs.setdefault(spec["id"], []).append(value)
    for declared_input in process.inputs:
        if (
            declared_input.identifier not in inputs
            and isinstance(declared_input, LiteralInput)
            and declared_input.default is not None
        ):
            inputs[declared_input.identifier] = [LiteralValue(declared_input.read(declared_input.default))]
    return inputs


def _write_complex(value: Any, path: Path) -> None:
    if isinstance(value, ComplexValue):
        shutil.copyfile(value.path, path)
    elif isinstance(value, Path):
        if value.resolve() != path.resolve():
            shutil.copyfile(value, path)
    elif isinstance(value, bytes):
        path.write_bytes(value)
    elif isinstance(value, str):
        path.write_text(value, encoding="utf-8")
    else:
        path.write_text(json.dumps(value), encoding="utf-8")


class OutputsNotProduced(ProcessError):
    """The run ended without an output the request asked for (an optional output the handler produces
    only for some inputs): the job fails, and a synchronous request is answered as asking for an output
    that its inputs do not give, not as the server's failure."""

    def __init__(self, identifiers: list[str]) -> None:
        super().__init__(f"the process did not produce the requested output {', '.join(identifiers)}")
        self.identifiers = identifiers


def collect_outputs(
    process: Process, values: dict[str, Any], requested: list[dict[str, Any]], output_dir: Path
) -> list[dict[str, Any]]:
    """Output records for the job table: literals inline, complex data as files in ``output_dir``.

    Every output the handler set is recorded; which of them a response shows is the renderer's choice.
    A literal output asked for by reference also gets a file, so it can be served as one.
    """
    wanted = {r["id"]: r for r in requested}
    records = []
    for spec in process.outputs:
        if spec.identifier not in values:
            continue
        value = values[spec.identifier]
        request = wanted.get(spec.identifier, {})
        record: dict[str, Any] = {"id": spec.identifier, "kind": spec.kind}
        if isinstance(spec, LiteralOutput):
            chosen_uom = None
            if isinstance(value, LiteralValue):  # a value with the unit the handler chose
                value, chosen_uom = value.value, value.uom
            record["value"] = spec.type.format(value)
            record["data_type"] = spec.data_type
            record["uom"] = chosen_uom or request.get("uom") or (spec.uoms[0] if spec.uoms else None)
            if request.get("transmission") == "reference":
                name = f"{spec.identifier}.txt"
                (output_dir / name).write_text(record["value"], encoding="utf-8")
                record.update(file=name, mime_type="text/plain")
        elif isinstance(spec, ComplexOutput):
            mime = value.mime_type if isinstance(value, ComplexValue) else request.get("mime_type")
            fmt = _pick_format(spec.formats, mime, request.get("encoding"), request.get("schema"))
            name = f"{spec.identifier}{fmt.extension}"
            _write_complex(value, output_dir / name)
            record.update(
                file=name,
                mime_type=mime if mime and fmt.matches(mime) else fmt.mime_type,
                encoding=fmt.encoding,
                schema=fmt.schema,
            )
        else:
            bbox = value if isinstance(value, BoundingBox) else BoundingBox(*value)
            record.update(lower=list(bbox.lower), upper=list(bbox.upper), crs=bbox.crs or spec.crss[0])
        records.append(record)
    return records


def run_process(
    process: Process,
    request: dict[str, Any],
    job_dir: Path,
    limits: FetchLimits,
    report: Reporter,
    docker: DockerSettings | None = None,
) -> list[dict[str, Any]]:
    """Run ``process`` for ``request`` in ``job_dir``; returns the output records.

    Raises :class:`InputError` for unusable inputs; anything the handler raises propagates.
    """
    work = job_dir / "work"
    output_dir = job_dir / "outputs"
    work.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Credentials were sealed for the job table; the key is in the jobs directory, beside job_dir.
    inputs = materialize_inputs(process, unseal_inputs(request.get("inputs", []), job_dir.parent), work, limits)
    context = JobContext(
        process, inputs, work, output_dir, report, docker, request.get("outputs", []), request.get("resources")
    )
    process.handler(context)
    records = collect_outputs(process, context.outputs, request.get("outputs", []), output_dir)
    produced = {r["id"] for r in records}
    missing = [o["id"] for o in request.get("outputs", []) if o["id"] not in produced]
    if missing:
        raise OutputsNotProduced(missing)
    if not records:
        raise ProcessError("the process produced no output")
    if context.published:  # kept with the first record: the files are served while the outputs are
        records[0]["published"] = sorted(context.published)
    return records
