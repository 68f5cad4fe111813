"""Where the API's resources are: one place that knows every path, for links and for the views.

The service's public URL (``[server] url``) names the WPS endpoint; the API lives at the root above
it, so behind a proxy that publishes ``https://example.org/hpc/wps`` the landing page is
``https://example.org/hpc/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote, urlencode

from app.wps.urls import output_url

JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"


def api_root(wps_url: str) -> str:
    """``http://host/hpc/wps`` -> ``http://host/hpc``: the WPS endpoint's parent."""
    return wps_url.rstrip("/").rsplit("/", 1)[0]


@dataclass(frozen=True)
class Urls:
    wps: str  # the public URL of the WPS endpoint, which output downloads start with

    @cached_property
    def root(self) -> str:  # kept: every link of a job list starts with it
        return api_root(self.wps)

    def landing(self) -> str:
        return f"{self.root}/"

    def of(self, path: str, query: dict[str, str] | None = None) -> str:
        """``path`` below the root, with ``query`` (in the order given)."""
        return f"{self.root}{path}" + (f"?{urlencode(query)}" if query else "")

    def process(self, process_id: str) -> str:
        return self.of(f"/processes/{quote(process_id, safe='')}")

    def execution(self, process_id: str) -> str:
        return self.process(process_id) + "/execution"

    def job(self, job_id: str) -> str:
        return self.of(f"/jobs/{job_id}")

    def results(self, job_id: str) -> str:
        return self.job(job_id) + "/results"

    def output(self, job_id: str, filename: str) -> str:
        """An output file, served where WPS serves it (the same file, headers and ownership)."""
        return output_url(self.wps, job_id, filename)


def link(href: str, rel: str, title: str, media_type: str = JSON) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": media_type, "title": title}
