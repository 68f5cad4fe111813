"""Container processes: declared in code (:func:`container_process`) or in a TOML file named by
``[docker] processes`` (always offered, see ``config.configured``); run by the docker executor
(asynchronous jobs) or by their handler (synchronous Execute, the local pool). See docs/docker.md.
"""

from __future__ import annotations

from processes.container.declare import container_process, container_spec, is_container_process
from processes.container.spec import (
    STDOUT,
    ContainerSpec,
    OutputSource,
    Relaxations,
    TemplateError,
    render_command,
)

__all__ = [
    "STDOUT",
    "ContainerSpec",
    "OutputSource",
    "Relaxations",
    "TemplateError",
    "container_process",
    "container_spec",
    "is_container_process",
    "render_command",
]
