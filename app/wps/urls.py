"""Where the service publishes a job's status document and outputs; one place for both."""

from __future__ import annotations


def status_url(base: str, job_id: str) -> str:
    return f"{base}/jobs/{job_id}"


def output_url(base: str, job_id: str, filename: str) -> str:
    return f"{base}/jobs/{job_id}/outputs/{filename}"
