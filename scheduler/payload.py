"""What a batch job needs on a compute node, serialized with dill into its job directory.

The process travels by reference (dill pickles an importable handler by module and name), so a node
whose Python cannot import the process fails the job with that reason instead of running something
else. The database URL travels too: the launcher reports to the job table when it can reach it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.container.settings import DockerSettings
from processes.fetch import FetchLimits
from processes.model import Process

PAYLOAD_FILE = "payload.dill"


@dataclass(frozen=True)
class Payload:
    job_id: str
    process: Process
    request: dict[str, Any]
    database_url: str
    fetch_limits: FetchLimits
    retention: float
    docker: DockerSettings  # for a container process run on the node: the configuration is not read there


def write_payload(job_dir: Path, payload: Payload) -> Path:
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / PAYLOAD_FILE
    tmp = job_dir / f".{PAYLOAD_FILE}.{os.getpid()}"
    import dill  # the [scheduler] extra: only batch executors need it

    with tmp.open("wb") as handle:
        dill.dump(payload, handle)
    os.replace(tmp, path)
    return path


def read_payload(job_dir: Path) -> Payload:
    import dill

    with (job_dir / PAYLOAD_FILE).open("rb") as handle:
        payload = dill.load(handle)
    if not isinstance(payload, Payload):
        raise TypeError(f"{job_dir / PAYLOAD_FILE} holds no job payload")
    return payload
