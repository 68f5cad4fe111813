"""Why the job service refuses a request, one class per reason.

The service raises these instead of answering in a protocol, so each binding (WPS today, OGC API -
Processes next) decides once, in its own error map, which code and HTTP status a reason becomes. The
message is plain English a client may read; the attributes are what a binding needs besides it.
"""

from __future__ import annotations


class JobServiceError(Exception):
    """A request the job service does not carry out."""


class NoSuchProcess(JobServiceError):
    def __init__(self, identifier: str) -> None:
        super().__init__(f"no process {identifier}")
        self.identifier = identifier


class NoSuchJob(JobServiceError):
    """No job by that id: never one, gone with its retention, dismissed, or of a process no longer offered."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(message or f"no job {job_id}")
        self.job_id = job_id


class ResultNotReady(JobServiceError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} has not finished")
        self.job_id = job_id


class JobFailed(JobServiceError):
    """A result asked of a job that failed; ``reason`` is the job's own message."""

    def __init__(self, job_id: str, reason: str | None) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason


class QueueFull(JobServiceError):
    """As many jobs wait as ``[processing] queue_length`` allows: a passing condition, worth a retry."""

    def __init__(self) -> None:
        super().__init__("the job queue is full; try again later")


class QuotaExceeded(JobServiceError):
    """The submitting user is at one of the ``[quotas]`` limits: a condition of that user alone, which
    passes as their jobs start, end, are dismissed or expire. ``quota``: the key that refused it."""

    def __init__(self, quota: str, message: str) -> None:
        super().__init__(f"quota {quota} reached: {message}")
        self.quota = quota


class SyncSlotsBusy(JobServiceError):
    """As many jobs run in the web tier as ``[processing] sync_slots`` allows (GeoServer's
    maxSynchronousProcesses): a passing condition, worth a retry, or an asynchronous Execute."""

    def __init__(self, slots: int) -> None:
        super().__init__(
            f"all {slots} synchronous execution slots ([processing] sync_slots) are busy; "
            "try again later or execute asynchronously"
        )
        self.slots = slots


class InvalidInput(JobServiceError):
    """An input the job cannot use, found when it ran (a synchronous job) or before it was created.

    ``reason``: invalid (a wrong value), not_accessible (a reference that cannot be read) or too_large,
    as ``processes.fetch.InputError`` tells them apart.
    """

    def __init__(self, input_id: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.input_id = input_id
        self.reason = reason


class InvalidResource(InvalidInput):
    """A ``resources.<name>`` request outside the administrator's limits: the request is refused
    before a job exists, which protocols may answer differently from data a running job rejects."""

    def __init__(self, input_id: str, message: str) -> None:
        super().__init__(input_id, "invalid", message)


class InvalidSubscriber(JobServiceError):
    """A subscriber URI that is not an http(s) URL with a host, refused before a job exists.
    ``subscriber``: the field of ``scheduler.subscribers.Subscribers`` it was given as."""

    def __init__(self, subscriber: str, message: str) -> None:
        super().__init__(message)
        self.subscriber = subscriber


class OutputNotProduced(JobServiceError):
    """A synchronous run that ended without an output the request asked for: the process produces it
    only for some inputs, and these were not among them. The request's fault, not the server's."""

    def __init__(self, output_id: str, message: str) -> None:
        super().__init__(message)
        self.output_id = output_id


class NoSuchOutput(JobServiceError):
    """A file name a succeeded job did not record, or whose file is gone."""

    def __init__(self, job_id: str, filename: str) -> None:
        super().__init__(f"job {job_id} has no output {filename}")
        self.job_id = job_id
        self.filename = filename
