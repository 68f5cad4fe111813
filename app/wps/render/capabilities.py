"""GetCapabilities documents for WPS 1.0.0 and 2.0; rendered once per configuration."""

from __future__ import annotations

from app.settings import Settings
from app.wps.namespaces import OWS1, OWS2, WPS1, WPS2, WPS10, WPS10_SCHEMA, WPS20, WPS20_SCHEMA, XML_LANG
from app.wps.render.common import (
    OPERATIONS_10,
    OPERATIONS_20,
    operations_metadata,
    process_version_20,
    serialize,
    service_identification,
    service_provider,
)
from processes.registry import Registry

PROCESS_VERSION_10 = f"{{{WPS10}}}processVersion"


def capabilities_10(settings: Settings, registry: Registry) -> bytes:
    lang = settings.server.language
    root = WPS1.Capabilities(
        service_identification(OWS1, settings, "1.0.0"),
        service_provider(OWS1, settings),
        operations_metadata(OWS1, settings.server.url, OPERATIONS_10),
        WPS1.ProcessOfferings(
            [
                WPS1.Process(
                    OWS1.Identifier(p.identifier),
                    OWS1.Title(p.title),
                    OWS1.Abstract(p.abstract) if p.abstract else None,
                    {PROCESS_VERSION_10: p.version},
                )
                for p in registry
            ]
        ),
        WPS1.Languages(WPS1.Default(OWS1.Language(lang)), WPS1.Supported(OWS1.Language(lang))),
        {XML_LANG: lang},
        service="WPS",
        version="1.0.0",
    )
    return serialize(root, f"{WPS10} {WPS10_SCHEMA}/wpsGetCapabilities_response.xsd")


def capabilities_20(settings: Settings, registry: Registry) -> bytes:
    root = WPS2.Capabilities(
        service_identification(OWS2, settings, "2.0.0"),
        service_provider(OWS2, settings),
        operations_metadata(OWS2, settings.server.url, OPERATIONS_20, post_only=("Execute",)),
        OWS2.Languages(OWS2.Language(settings.server.language)),
        WPS2.Contents(
            [
                WPS2.ProcessSummary(
                    OWS2.Title(p.title),
                    OWS2.Identifier(p.identifier),
                    jobControlOptions=" ".join(p.job_control_options),
                    outputTransmission="value reference",
                    processVersion=process_version_20(p.version),
                )
                for p in registry
            ]
        ),
        service="WPS",
        version="2.0.0",
    )
    return serialize(root, f"{WPS20} {WPS20_SCHEMA}")
