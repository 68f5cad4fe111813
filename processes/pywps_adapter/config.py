"""``pywps.configuration`` answered from this service's settings while a job of a PyWPS process runs.

Processes read ``get_config_value("server", "url")``, ``outputurl``/``outputpath`` (to publish files of
their own) and ``workdir``. They get the service's public URL, the job's output directory and the URL it
is served under, and the job's working directory. Other keys keep what PyWPS reads from its own files
(``PYWPS_CFG``), so a process's own sections still answer.
"""

from __future__ import annotations

from pathlib import Path

from pywps import configuration

from processes.pywps_adapter.load import PywpsSettings

OUTPUTS_DIR = "outputs"  # a job's output directory inside its job directory (the runtime's choice)


def outputs_url(settings: PywpsSettings, job_id: str) -> str:
    """Where a job's output files are served (the WPS binding's ``/jobs/<id>/outputs/<file>``)."""
    return f"{settings.server_url.rstrip('/')}/jobs/{job_id}/{OUTPUTS_DIR}"


def configure(settings: PywpsSettings, job_dir: Path, workdir: Path) -> None:
    """Point PyWPS's configuration at this job (one job at a time runs in a Python process)."""
    if configuration.CONFIG is None:
        configuration.load_configuration()
    config = configuration.CONFIG
    values = {
        "url": settings.server_url,
        "outputurl": outputs_url(settings, job_dir.name),
        "outputpath": str(job_dir / OUTPUTS_DIR),
        "workdir": str(workdir),
        "storagetype": "file",
        "storage_copy_function": "copy",
        "cleantempdir": "false",  # the job system removes the job's working directory itself
        "sethomedir": "false",
    }
    for key, value in values.items():
        config.set("server", key, value.replace("%", "%%"))  # PyWPS's parser interpolates %(name)s
