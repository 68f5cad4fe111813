"""The entry point on a compute node (and in a Python process's container): ``python -m
scheduler.run_job DIR`` runs the batch job whose directory is DIR.

No configuration is read there: the job directory's payload carries everything. Logs go to standard
error (the batch job's error file) as text, each record tagged with the job id, which is the
directory's name. It lives with the job system, so a node needs nothing of the web application.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from scheduler.launcher import run_job_dir
from scheduler.logs import LoggingSettings, configure_logging, job_context

MODULE = "scheduler.run_job"  # what executors put on a node's command line after the interpreter


def run(job_dir: str) -> int:
    configure_logging(LoggingSettings())
    resolved = Path(job_dir).resolve()
    with job_context(resolved.name):
        return run_job_dir(resolved)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m {MODULE} JOB_DIR", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
