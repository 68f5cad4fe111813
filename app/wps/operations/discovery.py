"""GetCapabilities and DescribeProcess: what the service offers, the same until its configuration changes.

What a caller sees depends on the processes its roles open (``[processes] <id>.roles``): a process it
may not use is not listed, and describing it answers as for a process that does not exist. The
documents are rendered once per set of visible processes (once in all, without roles); a
DescribeProcess of some processes copies the ready elements of each into a new document.
"""

from __future__ import annotations

import copy

from app.settings import Settings
from app.wps.operations.context import Context, Reply
from app.wps.render.capabilities import capabilities_10, capabilities_20
from app.wps.render.describe import describe_10, describe_20, process_description_10, process_offering_20
from app.wps.requests import DescribeProcess, GetCapabilities
from app.wps.versions import check_version, negotiate
from processes.registry import Registry
from scheduler.access import Caller

# Distinct sets of visible processes whose documents are kept; only roles on many processes reach it.
MAX_RENDERED_SETS = 64


class Discovery:
    def __init__(self, settings: Settings, context: Context) -> None:
        self.settings = settings
        self.context = context
        registry = context.jobs.registry
        megabytes = settings.inputs.default_megabytes
        self._descriptions_10 = {p.identifier: process_description_10(p, megabytes) for p in registry}
        self._offerings_20 = {p.identifier: process_offering_20(p, megabytes) for p in registry}
        self._rendered: dict[tuple[str, ...], dict[str, bytes]] = {}
        self._documents(tuple(p.identifier for p in registry))  # every process: rendered now, not on a request

    def _documents(self, visible: tuple[str, ...]) -> dict[str, bytes]:
        """Capabilities and the DescribeProcess of all, per version, for these processes."""
        documents = self._rendered.get(visible)
        if documents is None:
            if len(self._rendered) >= MAX_RENDERED_SETS:
                self._rendered.clear()
            registry = Registry(p for p in self.context.jobs.registry if p.identifier in visible)
            documents = {
                "caps 1.0.0": capabilities_10(self.settings, registry),
                "caps 2.0.0": capabilities_20(self.settings, registry),
                "all 1.0.0": describe_10(
                    [copy.deepcopy(self._descriptions_10[i]) for i in visible], self.context.language
                ),
                "all 2.0.0": describe_20([copy.deepcopy(self._offerings_20[i]) for i in visible]),
            }
            self._rendered[visible] = documents
        return documents

    def _visible(self, caller: Caller) -> dict[str, bytes]:
        return self._documents(tuple(p.identifier for p in self.context.jobs.processes(caller)))

    def get_capabilities(self, request: GetCapabilities, caller: Caller) -> Reply:
        return Reply(self._visible(caller)[f"caps {negotiate(request.accept_versions)}"])

    def describe(self, request: DescribeProcess, caller: Caller) -> Reply:
        check_version(request.version)
        if any(i.lower() == "all" for i in request.identifiers):
            return Reply(self._visible(caller)[f"all {request.version}"])
        processes = [self.context.jobs.process(i, caller) for i in request.identifiers]
        if request.version == "1.0.0":
            elements = [copy.deepcopy(self._descriptions_10[p.identifier]) for p in processes]
            return Reply(describe_10(elements, self.context.language))
        return Reply(describe_20([copy.deepcopy(self._offerings_20[p.identifier]) for p in processes]))
