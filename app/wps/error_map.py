"""The job service's errors as OWS exceptions, per WPS version: the one place that knows both.

WPS 2.0 names most refusals itself (NoSuchProcess, WrongInputData...); WPS 1.0.0 has fewer codes and
says the same with InvalidParameterValue and a locator. HTTP statuses follow from the codes
(``app/wps/errors.py``); the routes of stored documents answer 404 for what they cannot find.
"""

from __future__ import annotations

from app.wps.errors import OWSException
from scheduler.errors import (
    InvalidInput,
    InvalidResource,
    InvalidSubscriber,
    JobFailed,
    JobServiceError,
    NoSuchJob,
    NoSuchOutput,
    NoSuchProcess,
    OutputNotProduced,
    QueueFull,
    QuotaExceeded,
    ResultNotReady,
    SyncSlotsBusy,
)

# InvalidInput.reason -> (WPS 1.0.0 code, WPS 2.0 code)
INPUT_CODES = {
    "invalid": ("InvalidParameterValue", "WrongInputData"),
    "not_accessible": ("InvalidParameterValue", "DataNotAccessible"),
    "too_large": ("FileSizeExceeded", "SizeExceeded"),
}


def to_ows(error: JobServiceError, version: str) -> OWSException:
    """``version``: of the request that met the error (1.0.0 for the stored documents' routes)."""
    text = str(error)
    v2 = version.startswith("2")
    match error:
        case NoSuchProcess():
            if v2:
                return OWSException("NoSuchProcess", text, error.identifier)
            return OWSException("InvalidParameterValue", text, "Identifier")
        case InvalidResource():  # refused with the request, before a job exists: the same in both versions
            return OWSException("InvalidParameterValue", text, error.input_id)
        case InvalidInput():
            codes = INPUT_CODES.get(error.reason, INPUT_CODES["invalid"])
            return OWSException(codes[1] if v2 else codes[0], text, error.input_id)
        case QueueFull() | SyncSlotsBusy():
            return OWSException("ServerBusy", text, "Execute")
        case QuotaExceeded():  # the user's own limit, not the server's: 429, so it is not taken for an outage
            return OWSException("ServerBusy", text, "Execute", status=429)
        case NoSuchJob():
            return OWSException("NoSuchJob", text, error.job_id)
        case ResultNotReady():
            return OWSException("ResultNotReady", text, error.job_id)
        case JobFailed():
            return OWSException("NoApplicableCode", text, error.job_id)
        case NoSuchOutput():
            return OWSException("InvalidParameterValue", text, error.filename)
        case OutputNotProduced():  # as for an output the process does not declare (400)
            return OWSException("NoSuchOutput" if v2 else "InvalidParameterValue", text, error.output_id)
        case InvalidSubscriber():  # WPS takes no subscribers; a binding that does may borrow this mapping
            return OWSException("InvalidParameterValue", text, error.subscriber)
    raise TypeError(f"no OWS exception for {error!r}")  # a new error class must be given its codes here
