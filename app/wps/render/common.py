"""Pieces both protocol versions share: OWS service sections, timestamps, serialization."""

from __future__ import annotations

import datetime as dt
import re

from lxml import etree

from app.settings import Settings
from app.wps.namespaces import XLINK_HREF, XSI_SCHEMA_LOCATION, Maker

OPERATIONS_10 = ("GetCapabilities", "DescribeProcess", "Execute")
OPERATIONS_20 = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")


def iso(moment: dt.datetime | None) -> str | None:
    """xs:dateTime in UTC with a Z; the table keeps naive UTC."""
    if moment is None:
        return None
    return moment.replace(microsecond=0).isoformat() + "Z"


def serialize(root: etree._Element, schema_location: str | None = None) -> bytes:
    if schema_location:
        root.set(XSI_SCHEMA_LOCATION, schema_location)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def service_identification(ows: Maker, settings: Settings, version: str) -> etree._Element:
    meta = settings.metadata
    return ows.ServiceIdentification(
        ows.Title(meta.title),
        ows.Abstract(meta.abstract) if meta.abstract else None,
        ows.Keywords([ows.Keyword(k) for k in meta.keywords]) if meta.keywords else None,
        ows.ServiceType("WPS"),
        ows.ServiceTypeVersion(version),
        ows.Fees(meta.fees),
        ows.AccessConstraints(meta.access_constraints),
    )


def service_provider(ows: Maker, settings: Settings) -> etree._Element:
    meta = settings.metadata
    contact_info = None
    if meta.contact_email:
        contact_info = ows.ContactInfo(ows.Address(ows.ElectronicMailAddress(meta.contact_email)))
    return ows.ServiceProvider(
        ows.ProviderName(meta.provider_name),
        ows.ProviderSite({XLINK_HREF: meta.provider_site}) if meta.provider_site else None,
        ows.ServiceContact(ows.IndividualName(meta.contact_name) if meta.contact_name else None, contact_info),
    )


def operations_metadata(
    ows: Maker, url: str, operations: tuple[str, ...], post_only: tuple[str, ...] = ()
) -> etree._Element:
    def operation(name: str) -> etree._Element:
        get = None if name in post_only else ows.Get({XLINK_HREF: url})
        return ows.Operation(ows.DCP(ows.HTTP(get, ows.Post({XLINK_HREF: url}))), name=name)

    return ows.OperationsMetadata([operation(name) for name in operations])


# ows:VersionType of OWS 2.0: WPS 2.0 documents may only carry a processVersion of this form.
_VERSION_20 = re.compile(r"\d+\.\d?\d\.\d?\d")


def process_version_20(version: str) -> str | None:
    """The processVersion a WPS 2.0 document shows, or None (the attribute is optional) for one such as
    PyWPS's "2.1" or "None" that WPS 1.0.0, whose attribute is free text, shows as it is."""
    return version if _VERSION_20.fullmatch(version) else None
