"""What a subscriber of an OGC API job receives (the callback class): the results document at
``successUri``, the statusInfo at ``failedUri`` and ``inProgressUri``, from the same functions the
views answer with. Only jobs submitted through this API have subscribers.

Rendered in the dispatcher's delivery threads (``hpc-wps dispatcher`` hands it to the dispatcher),
where there is no request: the links start at ``[server] url``, as in the views.
"""

from __future__ import annotations

import json

from app.ogcapi.jobs import status_info
from app.ogcapi.results import results
from app.ogcapi.urls import Urls
from scheduler.job import Job
from scheduler.service import OUTPUTS
from scheduler.settings import JobSettings
from scheduler.subscribers import Event, Notification, NotificationBody


def notification_body(wps_url: str, jobs: JobSettings) -> NotificationBody:
    """The renderer for a service whose WPS endpoint is ``wps_url``."""
    urls = Urls(wps_url)

    def render(job: Job, event: Event) -> Notification:
        if event is Event.SUCCESS:
            document = results(job, urls, jobs.job_dir(job.id) / OUTPUTS)
        else:
            document = status_info(job, urls)
        return Notification(json.dumps(document).encode("utf-8"))

    return render
