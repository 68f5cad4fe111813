"""GetCapabilities and DescribeProcess: what the service offers, the same until its configuration changes.

Every document is rendered once, when the app is built; a DescribeProcess of some processes copies the
ready elements of each into a new document.
"""

from __future__ import annotations

import copy

from app.settings import Settings
from app.wps.operations.context import Context, Reply
from app.wps.render.capabilities import capabilities_10, capabilities_20
from app.wps.render.describe import describe_10, describe_20, process_description_10, process_offering_20
from app.wps.requests import DescribeProcess, GetCapabilities
from app.wps.versions import check_version, negotiate


class Discovery:
    def __init__(self, settings: Settings, context: Context) -> None:
        self.context = context
        registry = context.jobs.registry
        self.capabilities = {"1.0.0": capabilities_10(settings, registry), "2.0.0": capabilities_20(settings, registry)}
        megabytes = settings.inputs.default_megabytes
        self._descriptions_10 = {p.identifier: process_description_10(p, megabytes) for p in registry}
        self._offerings_20 = {p.identifier: process_offering_20(p, megabytes) for p in registry}
        self._describe_all = {
            "1.0.0": describe_10([copy.deepcopy(e) for e in self._descriptions_10.values()], context.language),
            "2.0.0": describe_20([copy.deepcopy(e) for e in self._offerings_20.values()]),
        }

    def get_capabilities(self, request: GetCapabilities) -> Reply:
        return Reply(self.capabilities[negotiate(request.accept_versions)])

    def describe(self, request: DescribeProcess) -> Reply:
        check_version(request.version)
        if any(i.lower() == "all" for i in request.identifiers):
            return Reply(self._describe_all[request.version])
        processes = [self.context.jobs.process(i) for i in request.identifiers]
        if request.version == "1.0.0":
            elements = [copy.deepcopy(self._descriptions_10[p.identifier]) for p in processes]
            return Reply(describe_10(elements, self.context.language))
        return Reply(describe_20([copy.deepcopy(self._offerings_20[p.identifier]) for p in processes]))
