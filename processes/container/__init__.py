"""Container processes: declared in code (:func:`container_process`) or in a TOML file named by
``[docker] processes``; run by the docker executor (asynchronous jobs) or by their handler (synchronous
Execute, the local pool). See docs/docker.md.

``processes.container:configured`` is the list of processes the ``[docker] processes`` file declares,
for ``[processing] processes`` (the configuration is the one named by HPC_WPS_CONFIG, as the command
line sets it).
"""

from __future__ import annotations

from typing import Any

from processes.container.spec import (
    STDOUT,
    ContainerSpec,
    OutputSource,
    Relaxations,
    TemplateError,
    container_process,
    container_spec,
    is_container_process,
    render_command,
)


def __getattr__(name: str) -> Any:
    if name == "configured":
        from app.settings import load_settings
        from processes.container.config import configured

        return configured(load_settings()).processes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
