"""``pywps.configuration`` answered from this service's settings while a job of a PyWPS process runs.

Processes read ``get_config_value("server", "url")``, ``outputurl``/``outputpath`` (to publish files of
their own) and ``workdir``. They get the service's public URL, the job's output directory and the URL it
is served under, and the job's working directory. Other keys keep what PyWPS reads from its own files
(``PYWPS_CFG``), so a process's own sections still answer.

PyWPS keeps one configuration per Python process (``configuration.CONFIG``), but a web worker runs
synchronous jobs in several threads at once. So the job's keys are not written into it: they are held
in a context variable for the block :func:`configured` covers, and ``CONFIG`` is made to read them
first, each thread seeing its own job's.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pywps import configuration

from processes.pywps_adapter.load import PywpsSettings

OUTPUTS_DIR = "outputs"  # a job's output directory inside its job directory (the runtime's choice)


def outputs_url(settings: PywpsSettings, job_id: str) -> str:
    """Where a job's output files are served (the WPS binding's ``/jobs/<id>/outputs/<file>``)."""
    return f"{settings.server_url.rstrip('/')}/jobs/{job_id}/{OUTPUTS_DIR}"


_JOB_SERVER_KEYS: ContextVar[dict[str, str] | None] = ContextVar("pywps_job_server_keys", default=None)


class _JobFirst(configparser.ConfigParser):
    """PyWPS's ``CONFIG``, answering ``[server]`` keys from the job running in this thread first.
    Every typed getter (``getboolean``...) goes through :meth:`get`, and so does ``get_config_value``."""

    def get(self, section: str, option: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        job = _JOB_SERVER_KEYS.get()
        if job is not None and section == "server" and option in job:
            return job[option]
        return super().get(section, option, *args, **kwargs)

    def has_option(self, section: str, option: str) -> bool:
        job = _JOB_SERVER_KEYS.get()
        return (job is not None and section == "server" and option in job) or super().has_option(section, option)


@contextmanager
def configured(settings: PywpsSettings, job_dir: Path, workdir: Path) -> Iterator[None]:
    """PyWPS's configuration answers for this job within the block, in this thread only."""
    if configuration.CONFIG is None:
        configuration.load_configuration()
    config = configuration.CONFIG
    if type(config) is configparser.ConfigParser:
        config.__class__ = _JobFirst  # the same object, so a module holding CONFIG sees the job's keys too
    token = _JOB_SERVER_KEYS.set(
        {
            "url": settings.server_url,
            "outputurl": outputs_url(settings, job_dir.name),
            "outputpath": str(job_dir / OUTPUTS_DIR),
            "workdir": str(workdir),
            "storagetype": "file",
            "storage_copy_function": "copy",
            "cleantempdir": "false",  # the job system removes the job's working directory itself
            "sethomedir": "false",
        }
    )
    try:
        yield
    finally:
        _JOB_SERVER_KEYS.reset(token)
